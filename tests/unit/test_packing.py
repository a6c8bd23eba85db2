"""Packing: every row exactly once per epoch, packs within capacity, and a packed batch gives each
row the same per-token log-probs and the same gradients as the rows batched unpacked (1e-5)."""

from __future__ import annotations

import random

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from localtune.data.batching import collate
from localtune.data.packing import PackedStream, collate_packed, pack_rows, packed_epoch_order
from localtune.errors import ModelError


def lengths(n, seed=0, low=5, high=300):
    rng = random.Random(seed)
    return [rng.randrange(low, high) for _ in range(n)]


@pytest.mark.parametrize("n,batch,capacity", [(1, 4, 512), (7, 2, 64), (300, 4, 512), (50, 1, 100)])
def test_every_row_exactly_once_per_epoch_and_packs_within_capacity(n, batch, capacity):
    lens = lengths(n)
    for epoch in range(3):
        order = packed_epoch_order(lens, batch, capacity, seed=3, epoch=epoch)
        flat = [i for b in order for pack in b for i in pack]
        assert sorted(flat) == list(range(n))
        assert all(1 <= len(b) <= batch for b in order)
        for b in order:
            for pack in b:  # a row over capacity travels alone; otherwise the pack fits
                assert len(pack) == 1 or sum(lens[i] for i in pack) <= capacity


def test_packing_fills_sequences_and_order_is_a_function_of_seed_and_epoch():
    lens = lengths(400, seed=1, high=200)
    packs = pack_rows(list(range(len(lens))), lens, 512)
    # First-fit decreasing: all but the last few packs are nearly full.
    assert sum(lens) / (len(packs) * 512) > 0.95
    a = packed_epoch_order(lens, 4, 512, seed=1, epoch=0)
    assert a == packed_epoch_order(lens, 4, 512, seed=1, epoch=0)
    assert a != packed_epoch_order(lens, 4, 512, seed=1, epoch=1)


def test_stream_seek_resumes_the_same_packed_batches():
    rows = [([1] * n, [False] + [True] * (n - 1)) for n in lengths(60, seed=2, high=100)]
    s = PackedStream(rows, 2, seed=4, capacity=128)
    seen = [s.next().rows for _ in range(s.batches_per_epoch + 3)]
    t = PackedStream(rows, 2, seed=4, capacity=128)
    t.seek({"epoch": 1, "index": 1})
    assert t.next().rows == seen[s.batches_per_epoch + 1]


def test_collate_packed_marks_segments_and_never_predicts_across_rows():
    rows = [([5, 6, 7], [False, True, True]), ([8, 9], [True, True]), ([3, 4, 4, 4], [False, False, True, True])]
    b = collate_packed(rows, [[0, 1], [2]])
    assert b.ids.tolist() == [[5, 6, 7, 8, 9], [3, 4, 4, 4, 0]]
    assert b.segments.tolist() == [[1, 1, 1, 2, 2], [1, 1, 1, 1, 0]]
    # Row 1's first token (8) is not a target even though its own mask says so.
    assert b.targets.tolist() == [6, 7, 9, 4, 4]
    assert b.target_rows.tolist() == [0, 0, 1, 2, 2]
    assert b.rows == [0, 1, 2] and b.lengths == [3, 2, 4] and b.ntokens == 9


def _model(tiny_model_dir):
    from localtune.lora import LoraSpec, adapter_layers, attach_lora
    from localtune.models.load import load_model

    model, _ = load_model(tiny_model_dir)
    mx.random.seed(7)
    attach_lora(model, LoraSpec(rank=4, layers=-1))
    for layer in adapter_layers(model):  # B != 0: the adapter changes the outputs and gets gradients
        layer.lora_b = mx.random.normal(layer.lora_b.shape) * 0.05
    return model


def _rows(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in (37, 12, 60, 25, 8, 51):
        k = int(rng.integers(1, n - 1))
        out.append(([int(t) for t in rng.integers(3, 250, n)], [False] * k + [True] * (n - k)))
    return out


def _per_row_sums(logp, batch, nrows):
    return mx.zeros((nrows,)).at[batch.target_rows].add(logp)


@pytest.mark.parametrize("fast", ["1", "0"])
def test_packed_rows_have_the_unpacked_per_row_loss_and_gradients(tiny_model_dir, monkeypatch, fast):
    from localtune.train.logits import target_logprobs

    monkeypatch.setenv("LOCALTUNE_FAST_MATH", fast)  # the CPU attention op, and MLX's own kernel
    model = _model(tiny_model_dir)
    rows = _rows()
    packs = pack_rows(list(range(len(rows))), [len(r[0]) for r in rows], 96)
    assert any(len(p) > 1 for p in packs)
    packed = collate_packed(rows, packs)

    def per_row(model, batch):
        return _per_row_sums(target_logprobs(model, batch), batch, len(rows))

    # The same rows in the same order, one per batch row. (A row's first token is never a target
    # in a pack; these rows' masks start False anyway.)
    plain = collate(rows, packed.rows)
    a, b = per_row(model, packed), per_row(model, plain)
    assert packed.targets.size == plain.targets.size
    assert np.max(np.abs(np.array(a) - np.array(b))) < 1e-5 * max(1.0, float(mx.abs(b).max()))

    ga = nn.value_and_grad(model, lambda m: per_row(m, packed).sum())(model)[1]
    gb = nn.value_and_grad(model, lambda m: per_row(m, plain).sum())(model)[1]
    fa, fb = dict(tree_flatten(ga)), dict(tree_flatten(gb))
    assert fa.keys() == fb.keys() and fa
    for k in fa:
        scale = max(float(mx.abs(fb[k]).max()), 1e-6)
        assert float(mx.abs(fa[k] - fb[k]).max()) / scale < 1e-5, k
    # And packing changed something real: without the segment mask the rows would see each other.
    from localtune.models import packed_attention

    leaky = collate_packed(rows, packs)
    leaky.segments = mx.ones_like(leaky.segments)
    c = per_row(model, leaky)
    assert np.max(np.abs(np.array(c) - np.array(b))) > 1e-2
    assert packed_attention._mask is None  # the context never leaks out of a forward


def test_a_model_whose_attention_is_not_wrapped_refuses_packed_batches(tiny_model_dir):
    from mlx_lm.utils import load

    import mlx_lm.models.llama as llama
    from mlx_lm.models import base
    from localtune.train.logits import target_logprobs

    saved = llama.scaled_dot_product_attention
    llama.scaled_dot_product_attention = base.scaled_dot_product_attention
    try:
        model, _ = load(str(tiny_model_dir))
        with pytest.raises(ModelError, match="without --pack"):
            target_logprobs(model, collate_packed(_rows(), [[0, 1], [2]]))
    finally:
        llama.scaled_dot_product_attention = saved


def test_streams_know_their_mean_targets_per_batch_for_token_weighting():
    from localtune.config import TrainConfig
    from localtune.data.batching import BatchStream
    from localtune.train.session import targets_per_step

    rows = [([1] * n, [False] * 3 + [True] * (n - 3)) for n in lengths(50, seed=6, low=8, high=120)]
    total = sum(n - 3 for n in (len(r[0]) for r in rows))
    for stream in (BatchStream(rows, 4, seed=0), PackedStream(rows, 2, seed=0, capacity=256)):
        assert stream.targets_per_batch == pytest.approx(total / stream.batches_per_epoch)
        cfg = TrainConfig(grad_accum=3)
        assert targets_per_step(cfg, stream) == pytest.approx(3 * total / stream.batches_per_epoch)
        assert targets_per_step(cfg.replace(weight_by_tokens=False), stream) is None
    pairs = BatchStream(rows, 4, seed=0, lengths=[len(r[0]) for r in rows])  # DPO: pairs, not tokens
    assert targets_per_step(TrainConfig(), pairs) is None
    assert targets_per_step(TrainConfig(), BatchStream(rows, 4, seed=0), weight_unit="pairs") is None
