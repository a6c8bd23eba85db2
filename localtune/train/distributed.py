"""Data-parallel training on MLX's own distributed engine (`mlx.launch`, ring/MPI backends).

Each rank walks the *same* global batch order (the single-process order with batch size
B*world) and keeps rows r::world of every batch, so the union of the shards is exactly the batch
one process would take. Gradients are combined as sum(grad_r * ntok_r) / sum(ntok_r): the result
equals a single-process step on the whole global batch. Only rank 0 writes the run directory.

With one process (no launcher) every hook here is the identity, so plain runs do not change.
"""

from __future__ import annotations

import dataclasses
import os
from functools import lru_cache

import numpy as np

import localtune  # noqa: F401
import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from localtune.runs import RunDir

# Set by mlx.launch (ring/jaccl) or mpirun: only then is a distributed group worth creating.
_LAUNCH_ENV = ("MLX_RANK", "MLX_HOSTFILE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


@lru_cache(maxsize=1)
def group():
    """The distributed group, or None for a plain single-process run."""
    if not any(k in os.environ for k in _LAUNCH_ENV) or not mx.distributed.is_available():
        return None
    g = mx.distributed.init()
    return g if g.size() > 1 else None


def world() -> int:
    g = group()
    return g.size() if g is not None else 1


def rank() -> int:
    g = group()
    return g.rank() if g is not None else 0


def is_main() -> bool:
    return rank() == 0


def shard_rows(n: int, r: int, w: int) -> list[int]:
    """Rows of an n-row global batch that rank r trains on."""
    return list(range(n))[r::w]


def shard(batch, r: int, w: int):
    """Rank r's part of a global batch (an SFT Batch or a DPO PairBatch).

    The selected sequences are re-collated, so every derived field (padding width, target
    positions) is rebuilt by data.batching.collate exactly as for a batch of those rows.
    A rank left with no rows (a short last batch of an epoch) gets one row marked `dummy`:
    it still runs forward/backward (collectives need every rank) but with zero weight.
    """
    from localtune.data.batching import collate

    if getattr(batch, "segments", None) is not None:
        return _shard_packed(batch, r, w)
    pairs = hasattr(batch, "ref")
    n = len(batch.rows)
    mine, dummy = _mine(n, r, w)
    sel = mine + [n + i for i in mine] if pairs else mine
    ids, mask = np.array(batch.ids), np.array(batch.mask)
    seqs = [(ids[i, : batch.lengths[i]].tolist(), mask[i, : batch.lengths[i]].tolist()) for i in sel]
    b = collate(seqs, list(range(len(seqs))))
    own = {f.name for f in dataclasses.fields(batch)}
    fields = {f.name: getattr(b, f.name) for f in dataclasses.fields(b) if f.name != "rows" and f.name in own}
    if pairs:
        fields["ref"] = None if batch.ref is None else batch.ref[mx.array(sel)]
    out = dataclasses.replace(batch, rows=[batch.rows[i] for i in mine], **fields)
    out.dummy = dummy
    return out


def _mine(n: int, r: int, w: int) -> tuple[list[int], bool]:
    """Rank r's items of n; a rank left with none gets the last one, flagged dummy."""
    mine = shard_rows(n, r, w)
    return (mine, False) if mine else ([n - 1], True)


def _shard_packed(batch, r: int, w: int):
    """Rank r's packed sequences of a packed global batch, each re-collated from its own rows."""
    from localtune.data.packing import collate_packed

    ids, mask, seg = np.array(batch.ids), np.array(batch.mask), np.array(batch.segments)
    mine, dummy = _mine(ids.shape[0], r, w)
    counts = seg.max(axis=1)  # rows in each pack
    first = np.concatenate([[0], np.cumsum(counts)])
    rows, packs, originals = [], [], []
    for p in mine:
        packs.append([])
        for s in range(1, int(counts[p]) + 1):
            at = np.flatnonzero(seg[p] == s)
            packs[-1].append(len(rows))
            rows.append((ids[p, at].tolist(), mask[p, at].tolist()))
        originals += batch.rows[first[p]: first[p + 1]]
    out = collate_packed(rows, packs)
    out.rows = [int(i) for i in originals]
    out.dummy = dummy
    return out


def _all_sum(x):
    return mx.distributed.all_sum(x, group=group())


class DataParallel:
    """The hooks run_training plugs into the loop; all identities when world() == 1."""

    def __init__(self):
        self.world, self.rank = world(), rank()
        self.active = self.world > 1
        self.is_main = self.rank == 0

    def config(self, cfg):
        """The config the data pipeline sees: the global batch size."""
        return cfg.replace(batch_size=cfg.batch_size * self.world) if self.active else cfg

    def run(self, run: RunDir) -> RunDir:
        return run if self.is_main else FollowerRun(run.path)

    def batches(self, next_batch):
        if not self.active:
            return next_batch
        return lambda: shard(next_batch(), self.rank, self.world)

    def loss(self, loss_fn):
        if not self.active:
            return loss_fn

        def weighted(model, batch):
            loss, ntok, metrics = loss_fn(model, batch)
            if getattr(batch, "dummy", False):
                ntok = ntok * 0
            return loss, ntok, metrics

        return weighted

    def should_stop(self, should_stop):
        """A stop asked on any rank stops all of them at the same step (no rank left waiting)."""
        if not self.active:
            return should_stop
        return lambda: _all_sum(mx.array(float(bool(should_stop())))).item() > 0

    @property
    def all_reduce(self):
        return self._all_reduce if self.active else None

    def _all_reduce(self, grads, loss, ntok, tokens, metrics):
        """Token-weighted average of every rank's (grads, loss, metrics); summed counts."""
        ntok = mx.array(ntok, mx.float32)
        keys = sorted(metrics)
        # A rank with ntok == 0 (dummy shard) may hold 0/0 = NaN grads: weight them to exactly 0.
        w = lambda x: mx.where(ntok > 0, x * ntok, 0)  # noqa: E731
        scalars = mx.stack([w(loss), ntok, mx.array(float(tokens))] + [w(metrics[k]) for k in keys])
        flat = tree_flatten(grads)
        summed = _all_sum(mx.concatenate([w(g).reshape(-1).astype(mx.float32) for _, g in flat]))
        scalars = _all_sum(scalars.astype(mx.float32))
        total = scalars[1]
        out, offset = [], 0
        for name, g in flat:
            out.append((name, (summed[offset: offset + g.size] / total).reshape(g.shape).astype(g.dtype)))
            offset += g.size
        metrics = {k: scalars[3 + i] / total for i, k in enumerate(keys)}
        return tree_unflatten(out), scalars[0] / total, total, int(scalars[2].item()), metrics


class FollowerRun(RunDir):
    """A rank other than 0: reads the run directory (config and checkpoints, for resume) but
    never writes it, so one run directory has one writer."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass

    def exists(self) -> bool:
        return False  # rank 0 may already have created it: that is not a clash

    def write(self, info: dict) -> None:
        pass

    def update(self, **fields) -> dict:
        return fields

    def append_metric(self, event: dict) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def truncate_metrics(self, step: int) -> None:
        pass
