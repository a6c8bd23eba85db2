"""Length bucketing: every row exactly once per epoch, similar lengths batched together, padding
only up to the batch's longest row, and the order a pure function of (seed, epoch) for resume."""

import random

import localtune  # noqa: F401
import numpy as np
import pytest

from localtune.data.batching import BUCKET_WINDOW, BatchStream, collate, epoch_order


def lengths(n, seed=0):
    rng = random.Random(seed)
    return [rng.randrange(5, 400) for _ in range(n)]


@pytest.mark.parametrize("n,batch", [(1, 4), (7, 4), (64, 4), (101, 8), (1000, 16), (33, 1)])
def test_every_row_exactly_once_per_epoch(n, batch):
    lens = lengths(n)
    for epoch in range(3):
        order = epoch_order(lens, batch, seed=5, epoch=epoch)
        flat = [i for b in order for i in b]
        assert sorted(flat) == list(range(n))
        assert all(1 <= len(b) <= batch for b in order)


def test_epochs_differ_and_are_reproducible():
    lens = lengths(200)
    a = epoch_order(lens, 4, seed=1, epoch=0)
    assert a == epoch_order(lens, 4, seed=1, epoch=0)
    assert a != epoch_order(lens, 4, seed=1, epoch=1)
    assert a != epoch_order(lens, 4, seed=2, epoch=0)


def test_bucketing_cuts_padding_versus_random_batches():
    lens = lengths(4096, seed=3)
    b = 8

    def padding(order):
        return sum(max(lens[i] for i in g) * len(g) - sum(lens[i] for i in g) for g in order)

    rng = np.random.default_rng(0)
    perm = rng.permutation(len(lens))
    unbucketed = [[int(i) for i in perm[j:j + b]] for j in range(0, len(perm), b)]
    # Sorting within windows of BUCKET_WINDOW batches: padding falls several-fold.
    assert padding(epoch_order(lens, b, 0, 0)) < padding(unbucketed) / 4, BUCKET_WINDOW


def test_collate_pads_to_the_batch_maximum_and_targets_match_the_mask():
    rows = [([1, 2, 3], [False, True, True]), ([4, 5, 6, 7, 8], [False, False, True, True, True])]
    batch = collate(rows, [0, 1])
    assert batch.ids.shape == (2, 5) and batch.ntokens == 8
    assert batch.targets.tolist() == [2, 3, 6, 7, 8]
    assert batch.target_rows.tolist() == [0, 0, 1, 1, 1]
    assert not batch.mask[0, 3:].any().item()


def test_stream_walks_epochs_and_seek_resumes_the_same_batches():
    rows = [([1] * n, [False] + [True] * (n - 1)) for n in lengths(30, seed=9)]
    s = BatchStream(rows, 4, seed=7)
    per_epoch = s.batches_per_epoch
    seen, saved, rest = [], None, []
    for k in range(2 * per_epoch + 3):
        if k == per_epoch + 2:
            saved = dict(s.position)
        batch = s.next()
        (rest if saved is not None else seen).append(batch.rows)
    assert sorted(i for r in seen[:per_epoch] for i in r) == list(range(30))
    resumed = BatchStream(rows, 4, seed=7)
    resumed.seek(saved)
    assert [resumed.next().rows for _ in rest] == rest
