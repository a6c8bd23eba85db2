"""Data-parallel training on MLX's own distributed engine (`mlx.launch`, ring/MPI backends).

Each rank walks the *same* global batch order (the single-process order with batch size
B*world) and its stream collates only items r::world of every batch (data.batching.Shard), so the
union of the shards is exactly the batch one process would take. Gradients are combined as
sum(grad_r * weight_r) / sum(weight_r): the result equals a single-process step on the whole
global batch. Only rank 0 writes the run directory.

With one process (no launcher) every hook here is the identity, so plain runs do not change.
"""

from __future__ import annotations

import os
from functools import lru_cache

import localtune  # noqa: F401
import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from localtune.data.batching import Shard
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

    @property
    def shard(self) -> Shard:
        """The part of each global batch this rank's stream collates."""
        return Shard(self.rank, self.world)

    def run(self, run: RunDir) -> RunDir:
        return run if self.is_main else FollowerRun(run.path)

    def loss(self, loss_fn):
        if not self.active:
            return loss_fn

        def weighted(model, batch):
            loss, weight, metrics = loss_fn(model, batch)
            if batch.dummy:  # a stand-in for a rank with no items: it must not count
                weight = weight * 0
            return loss, weight, metrics

        return weighted

    def should_stop(self, should_stop):
        """A stop asked on any rank stops all of them at the same step (no rank left waiting)."""
        if not self.active:
            return should_stop
        return lambda: _all_sum(mx.array(float(bool(should_stop())))).item() > 0

    @property
    def all_reduce(self):
        return self._all_reduce if self.active else None

    def _all_reduce(self, grads, loss, weight, counts: dict[str, int], metrics):
        """Weighted average of every rank's (grads, loss, metrics); summed weight and counts."""
        weight = mx.array(weight, mx.float32)
        keys, names = sorted(metrics), sorted(counts)
        # A rank with weight 0 (dummy shard) may hold 0/0 = NaN grads: weight them to exactly 0.
        w = lambda x: mx.where(weight > 0, x * weight, 0)  # noqa: E731
        scalars = mx.stack([w(loss), weight] + [mx.array(float(counts[n])) for n in names]
                           + [w(metrics[k]) for k in keys])
        flat = tree_flatten(grads)
        summed = _all_sum(mx.concatenate([w(g).reshape(-1).astype(mx.float32) for _, g in flat]))
        scalars = _all_sum(scalars.astype(mx.float32))
        total = scalars[1]
        out, offset = [], 0
        for name, g in flat:
            out.append((name, (summed[offset: offset + g.size] / total).reshape(g.shape).astype(g.dtype)))
            offset += g.size
        counts = {n: int(scalars[2 + i].item()) for i, n in enumerate(names)}
        metrics = {k: scalars[2 + len(names) + i] / total for i, k in enumerate(keys)}
        return tree_unflatten(out), scalars[0] / total, total, counts, metrics


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
