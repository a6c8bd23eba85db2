"""Packing: several rows share one sequence, so a batch carries almost no padding.

Each pack is a list of row indices whose lengths sum to at most `capacity`. A packed batch keeps
every row's own loss exactly: its tokens carry a segment number (1, 2, ... inside the pack; 0 on
padding), attention is limited to the same segment (models/packed_attention.py), and a row's first
token is never a target (it would be predicted from the previous row). Positions are not reset
per row: rotary embeddings depend only on the distance between two tokens, so the scores inside a
row are those of the row alone (equal within float rounding; tests/unit/test_packing.py).
"""

from __future__ import annotations

import bisect

import numpy as np

import localtune  # noqa: F401
import mlx.core as mx

from localtune.data.batching import Batch, BatchStream, Shard, target_positions


def pack_rows(order: list[int], lengths: list[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing over `order`: longest rows first, each into the open pack with the least
    room that still fits it (a sorted list of (room, pack): O(log packs) per row, so 100k-row
    datasets pack in seconds). Every row lands in exactly one pack (a row longer than capacity
    gets a pack of its own)."""
    packs: list[list[int]] = []
    rooms: list[tuple[int, int]] = []  # (free tokens, pack index), sorted
    for i in sorted(order, key=lambda i: -lengths[i]):  # stable: equal lengths keep `order`
        k = bisect.bisect_left(rooms, (lengths[i], -1))
        if k < len(rooms):
            free, p = rooms.pop(k)
            packs[p].append(i)
        else:
            free, p = capacity, len(packs)
            packs.append([i])
        if free - lengths[i] > 0:
            bisect.insort(rooms, (free - lengths[i], p))
    return packs


def packed_epoch_order(lengths: list[int], batch_size: int, capacity: int, seed: int,
                       epoch: int) -> list[list[list[int]]]:
    """An epoch of packed batches: rows shuffled, packed, packs shuffled, `batch_size` packs per
    batch. A pure function of (seed, epoch), as batching.epoch_order, so resume is exact."""
    rng = np.random.default_rng([seed, epoch, 1])
    packs = pack_rows([int(i) for i in rng.permutation(len(lengths))], lengths, capacity)
    packs = [packs[k] for k in rng.permutation(len(packs))]
    return [packs[j : j + batch_size] for j in range(0, len(packs), batch_size)]


def collate_packed(rows: list[tuple[list[int], list[bool]]], packs: list[list[int]]) -> Batch:
    """A Batch whose row r is the concatenation of the rows in packs[r], with `segments`."""
    width = max(sum(len(rows[i][0]) for i in pack) for pack in packs)
    ids = np.zeros((len(packs), width), np.int32)
    mask = np.zeros((len(packs), width), bool)
    segments = np.zeros((len(packs), width), np.int32)
    lengths, flat = [], []
    for r, pack in enumerate(packs):
        at = 0
        for s, i in enumerate(pack, start=1):
            row_ids, row_mask = rows[i]
            n = len(row_ids)
            ids[r, at : at + n] = row_ids
            mask[r, at : at + n] = row_mask
            mask[r, at] = False  # never predicted from the row before it
            segments[r, at : at + n] = s
            at += n
            lengths.append(n)
            flat.append(i)
    positions, targets = target_positions(ids, mask)
    # target_rows: which packed row (0..len(flat)-1, in `flat` order) each target belongs to.
    seg_of_target = segments[:, 1:].reshape(-1)[positions]
    first = np.cumsum([0] + [len(p) for p in packs])[:-1]
    target_rows = first[positions // max(width - 1, 1)] + seg_of_target - 1
    return Batch(mx.array(ids), mx.array(mask), lengths, flat, mx.array(positions.astype(np.int32)),
                 mx.array(targets), mx.array(target_rows.astype(np.int32)), mx.array(segments))


class PackedStream(BatchStream):
    """BatchStream whose items are packs of rows (`batch_size` packs of up to `capacity` tokens)."""

    def __init__(self, rows, batch_size: int, seed: int, capacity: int, epoch: int = 0, index: int = 0,
                 shard: Shard = Shard()):
        self.capacity = capacity
        super().__init__(rows, batch_size, seed, epoch, index, shard=shard)

    def make_order(self, epoch: int):
        return packed_epoch_order(self.lengths, self.batch_size, self.capacity, self.seed, epoch)

    def collate(self, packs):
        return collate_packed(self.rows, packs)
