"""Batches for training: length bucketing, padding to the batch's own longest row, and an epoch
order that is a pure function of (seed, epoch), so a resumed run sees exactly the same batches.

A row is (ids, mask): mask[i] True when token i is a training target.

Data parallel: every rank walks the same global order (batches of batch_size * world items) and
collates only its own items of each batch (`Shard.take`), so the union of the ranks' batches is
exactly the batch one process would take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

import localtune  # noqa: F401
import mlx.core as mx

BUCKET_WINDOW = 16  # batches' worth of rows sorted together: similar lengths, still shuffled


@dataclass(frozen=True)
class Shard:
    """This process's part of each global batch: items rank, rank + world, ..."""

    rank: int = 0
    world: int = 1

    def take(self, items: list) -> tuple[list, bool]:
        """(this rank's items, dummy). A rank left with none (a short last batch of an epoch) gets
        the last item as a stand-in: it still runs forward and backward (collectives need every
        rank) but with zero weight."""
        mine = items[self.rank :: self.world]
        return (mine, False) if mine else (items[-1:], True)


@dataclass
class Batch:
    ids: mx.array  # (B, L) int32, padded with 0
    mask: mx.array  # (B, L) bool, False on padding
    lengths: list[int]  # real tokens per row
    rows: list[int]  # indices into the dataset
    positions: mx.array | None = None  # flat indices into (B, L-1) of the predicting positions
    targets: mx.array | None = None  # the token predicted at each of those positions
    target_rows: mx.array | None = None  # which row each target belongs to
    segments: mx.array | None = None  # (B, L) packed batches only: row number inside the pack, 0 on padding
    dummy: bool = False  # a zero-weight stand-in (see Shard.take)
    # Per-row model state that travels with the rows (take_rows slices it; nothing here reads it):
    # (first adapted block, (B, >= L-1, hidden) states entering it), set by GRPO so its two passes
    # skip the blocks before the adapter (train/frozen_prefix.py).
    prefix: tuple[int, mx.array] | None = None

    @property
    def ntokens(self) -> int:
        """Real (non-padding) tokens, what tokens/s counts."""
        return int(sum(self.lengths))

    @property
    def ntargets(self) -> int:
        """Tokens the loss is computed on."""
        return int(self.targets.size) if self.targets is not None else 0


def fit_rows(rows: list[tuple[list[int], list[bool]]], max_seq_len: int, overlong: str = "truncate"):
    """Apply the max length. Returns (kept rows, their original indices, counts)."""
    kept, index = [], []
    truncated = dropped = 0
    for i, (ids, mask) in enumerate(rows):
        if len(ids) > max_seq_len:
            if overlong == "drop":
                dropped += 1
                continue
            ids, mask = ids[:max_seq_len], mask[:max_seq_len]
            truncated += 1
        if not any(mask[1:]):  # nothing left to learn from (position 0 is never a target)
            dropped += 1
            continue
        kept.append((ids, mask))
        index.append(i)
    return kept, index, {"truncated": truncated, "dropped": dropped}


def epoch_order(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Every row exactly once: shuffle, sort by length inside windows, cut into batches, shuffle
    the batches. Sorting only inside windows keeps padding low without a fixed batch order."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    window = batch_size * BUCKET_WINDOW
    batches = []
    for start in range(0, len(perm), window):
        chunk = sorted(perm[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    order = rng.permutation(len(batches))
    return [[int(i) for i in batches[k]] for k in order]


def collate(rows: list[tuple[list[int], list[bool]]], indices: list[int]) -> Batch:
    sel = [rows[i] for i in indices]
    width = max(len(ids) for ids, _ in sel)
    ids = np.zeros((len(sel), width), np.int32)
    mask = np.zeros((len(sel), width), bool)
    for r, (row_ids, row_mask) in enumerate(sel):
        ids[r, : len(row_ids)] = row_ids
        mask[r, : len(row_mask)] = row_mask
    positions, targets = target_positions(ids, mask)
    return Batch(mx.array(ids), mx.array(mask), [len(i) for i, _ in sel], list(indices),
                 mx.array(positions.astype(np.int32)), mx.array(targets),
                 mx.array((positions // max(width - 1, 1)).astype(np.int32)))


def target_positions(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices into (B, L-1) of the positions that predict a target, and those targets.
    Found on the host, once: the loss then computes logits at these positions only."""
    positions = np.flatnonzero(mask[:, 1:])
    return positions, ids[:, 1:].reshape(-1)[positions]


def take_rows(batch, rows: list[int]) -> tuple[Batch, np.ndarray]:
    """Rows `rows` of a collated batch (anything with ids, mask, lengths in this module's
    convention, not packed) as a Batch of their own, padded to their own longest row; and where
    each of its targets sits in the whole batch's flat target order. Micro-batches of one batch
    (the update and the log-prob passes of online RL) are made with it."""
    ids, mask = np.array(batch.ids)[rows], np.array(batch.mask)[rows]
    lengths = [batch.lengths[r] for r in rows]
    width = max(max(lengths), 2)
    ids, mask = ids[:, :width], mask[:, :width]  # the rest is padding: mask is False there
    positions, targets = target_positions(ids, mask)
    per_row = np.array(batch.mask)[:, 1:].sum(axis=1)  # targets are row-major: a row's are contiguous
    first = np.concatenate([[0], np.cumsum(per_row)[:-1]])
    index = np.concatenate([np.arange(first[r], first[r] + per_row[r]) for r in rows]).astype(np.int64)
    prefix = getattr(batch, "prefix", None)
    if prefix is not None:  # causal: a row's states up to width-1 do not depend on what follows
        prefix = (prefix[0], prefix[1][mx.array(rows)][:, :width - 1])
    part = Batch(mx.array(ids), mx.array(mask), lengths, list(rows), mx.array(positions.astype(np.int32)),
                 mx.array(targets), mx.array((positions // (width - 1)).astype(np.int32)),
                 dummy=getattr(batch, "dummy", False), prefix=prefix)
    return part, index


def row_chunks(n: int, size: int) -> list[list[int]]:
    """0..n-1 in consecutive chunks of at most `size` (the last may be shorter)."""
    return [list(range(start, min(n, start + size))) for start in range(0, n, size)]


def by_row_chunks(batch, rows: int, fn) -> mx.array:
    """fn(part) over consecutive parts of `rows` rows (0 or >= the batch: fn(batch) once), each
    evaluated before the next so a pass outside the gradient holds one part's activations, not
    the whole batch's; the results concatenated. fn returns per-row or per-target values: parts
    are consecutive rows and targets are row-major, so the concatenation is in the batch's order."""
    n = int(batch.ids.shape[0])
    if not rows or rows >= n:
        return fn(batch)
    outs = []
    for chunk in row_chunks(n, rows):
        out = fn(take_rows(batch, chunk)[0])
        mx.eval(out)
        outs.append(out)
    return mx.concatenate(outs)


class BatchStream:
    """Endless training batches over epochs; `position` is all that resume needs.

    Items are (ids, mask) rows by default; a subclass with its own `collate` and `lengths`
    batches other items (DPO's pairs) in the same order. `batch_size` is the global batch size;
    `shard` picks this process's items of each batch (data parallel)."""

    def __init__(self, rows, batch_size: int, seed: int, epoch: int = 0, index: int = 0,
                 lengths: list[int] | None = None, shard: Shard = Shard()):
        if not rows:
            raise ValueError("no rows to batch")
        self.rows = rows
        self.batch_size = batch_size
        self.seed = seed
        self.shard = shard
        self.lengths = lengths if lengths is not None else [len(ids) for ids, _ in rows]
        self.epoch, self.index = epoch, index
        self._order = self.make_order(epoch)
        # (ids, mask) rows: the epoch's mean target tokens per batch (train/loop.py weights steps by it).
        self.targets_per_batch = (sum(sum(mask[1:]) for _, mask in rows) / len(self._order)
                                  if lengths is None else None)

    def make_order(self, epoch: int) -> list:
        """The epoch's batches (lists of items for `collate`), a pure function of (seed, epoch)."""
        return epoch_order(self.lengths, self.batch_size, self.seed, epoch)

    @property
    def batches_per_epoch(self) -> int:
        return len(self._order)

    @property
    def position(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def seek(self, position: dict) -> None:
        """Continue from a saved `position` (resume)."""
        self.epoch, self.index = int(position["epoch"]), int(position["index"])
        self._order = self.make_order(self.epoch)

    def take(self) -> tuple[list, bool, tuple[int, int]]:
        """The next global batch: this rank's items, whether they are a stand-in (Shard.take), and
        the batch's place (epoch, index) in the data order (a generating stream seeds by it)."""
        if self.index >= len(self._order):
            self.epoch, self.index = self.epoch + 1, 0
            self._order = self.make_order(self.epoch)
        place = (self.epoch, self.index)
        mine, dummy = self.shard.take(self._order[self.index])
        self.index += 1
        return mine, dummy, place

    def next(self) -> Batch:
        mine, dummy, _ = self.take()
        batch = self.collate(mine)
        batch.dummy = dummy
        return batch

    def collate(self, indices: list[int]):
        return collate(self.rows, indices)


class EvalBatches:
    """Validation batches, collated one at a time as they are iterated; len() is their count (the
    loop reports evaluation progress with it)."""

    def __init__(self, groups: list[list[int]], collate_one: Callable[[list[int]], object]):
        self.groups, self.collate_one = groups, collate_one

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator:
        return (self.collate_one(g) for g in self.groups)


def eval_groups(lengths: list[int], batch_size: int, limit: int = -1) -> list[list[int]]:
    """Item indices of the validation batches: a fixed, length-sorted order (little padding, the
    same every time), the first `limit` batches when limit > 0."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups = [order[j : j + batch_size] for j in range(0, len(order), batch_size)]
    return groups[:limit] if limit > 0 else groups


def eval_batches(rows, batch_size: int, limit: int = -1) -> EvalBatches:
    """Validation batches of (ids, mask) rows."""
    return EvalBatches(eval_groups([len(ids) for ids, _ in rows], batch_size, limit),
                       lambda g: collate(rows, g))
