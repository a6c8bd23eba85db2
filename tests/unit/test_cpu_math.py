"""localtune.cpu_math: the exp-based CPU ops equal MLX's own (values and gradients), and a model
with them installed computes the same logits and gradients as the stock mlx_lm model."""

from __future__ import annotations

import sys

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from localtune import _malloc, backend, cpu_math


def rel_err(a, b) -> float:
    a, b = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def test_fast_exp_is_float32_accurate_over_the_whole_range():
    x = mx.concatenate([mx.linspace(-87.0, 88.0, 200_001), mx.random.normal((10_000,)) * 3])
    got = np.array(cpu_math.fast_exp(x), dtype=np.float64)
    ref = np.exp(np.array(x, dtype=np.float64))
    assert np.max(np.abs(got - ref) / ref) < 3e-7
    # The ends: masked scores (-inf, -1e30) underflow to ~0, never NaN.
    ends = np.array(cpu_math.fast_exp(mx.array([-mx.inf, -1e30, -100.0, 0.0])))
    assert np.all(np.isfinite(ends)) and np.all(ends[:3] < 2e-38) and ends[3] == 1.0


@pytest.mark.parametrize("shape", [(3, 7, 50), (2, 49152)])
def test_softmax_and_logsumexp_pieces_match_mlx_with_gradients(shape):
    # The building blocks of attention and the loss head (each tested whole below too).
    mx.random.seed(0)
    x = mx.random.normal(shape) * 5
    w = mx.random.normal(shape)
    s = cpu_math._softmax_fwd(x)
    assert rel_err(s, mx.softmax(x, axis=-1)) < 1e-6
    assert rel_err(cpu_math._logsumexp_fwd(x), mx.logsumexp(x, axis=-1)) < 1e-6
    _, (g_mlx,) = mx.vjp(lambda x: mx.softmax(x, axis=-1), [x], [w])
    assert rel_err(cpu_math._softmax_bwd(s, w), g_mlx) < 1e-5


def test_swiglu_matches_silu_times_up_with_gradients():
    mx.random.seed(1)
    gate, up, w = (mx.random.normal((4, 9, 64)) * 4 for _ in range(3))
    assert rel_err(cpu_math.swiglu(gate, up), nn.silu(gate) * up) < 1e-6
    ours = mx.grad(lambda g, u: (cpu_math.swiglu(g, u) * w).sum(), argnums=(0, 1))(gate, up)
    ref = mx.grad(lambda g, u: (nn.silu(g) * u * w).sum(), argnums=(0, 1))(gate, up)
    for a, b in zip(ours, ref):
        assert rel_err(a, b) < 1e-5


@pytest.mark.parametrize("mask", [None, "causal", "bool", "offset"])
def test_attention_matches_fast_sdpa_with_gradients(mask):
    mx.random.seed(2)
    B, H, Hk, S, D = 2, 6, 2, 11, 16
    L = 3 if mask == "offset" else S  # offset: the last 3 queries over 11 cached keys
    q, k, v = mx.random.normal((B, H, L, D)), mx.random.normal((B, Hk, S, D)), mx.random.normal((B, Hk, S, D))
    m = mask
    if mask == "offset":
        m = "causal"
    elif mask == "bool":  # a padding-style mask; the diagonal stays visible so no row is empty
        m = (mx.random.uniform(shape=(B, 1, L, S)) > 0.3) | mx.eye(S, dtype=mx.bool_)

    def ours(q, k, v):
        return cpu_math.attention(q, k, v, 0.25, m)

    def ref(q, k, v):
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=0.25, mask=m)

    assert rel_err(ours(q, k, v), ref(q, k, v)) < 1e-6
    g_ours = mx.grad(lambda *a: (ours(*a) ** 2).sum(), argnums=(0, 1, 2))(q, k, v)
    g_ref = mx.grad(lambda *a: (ref(*a) ** 2).sum(), argnums=(0, 1, 2))(q, k, v)
    for a, b in zip(g_ours, g_ref):
        assert rel_err(a, b) < 1e-5


def test_head_logprobs_equal_cross_entropy_over_vocab_blocks_with_gradients():
    mx.random.seed(4)
    rows, hidden, vocab = 600, 32, 5000  # 600 rows -> blocks of 3495: two blocks, the last ragged
    assert cpu_math.vocab_block(rows, vocab) < vocab
    h, w = mx.random.normal((rows, hidden)), mx.random.normal((vocab, hidden)) * 0.3
    t = mx.random.randint(0, vocab, (rows,))
    g = mx.random.normal((rows,))

    def ours(h):
        return cpu_math.head_logprobs(h, w, t)

    def ref(h):
        return -nn.losses.cross_entropy(h @ w.T, t)

    assert rel_err(ours(h), ref(h)) < 1e-5
    assert rel_err(mx.grad(lambda h: (ours(h) * g).sum())(h), mx.grad(lambda h: (ref(h) * g).sum())(h)) < 1e-5


def test_fast_and_stock_target_logprobs_agree_on_a_model(tiny_model_dir, monkeypatch):
    from localtune.data.batching import collate
    from localtune.models.load import load_model
    from localtune.train.logits import _dense_head_weight, target_logprobs

    model, _ = load_model(tiny_model_dir)
    assert _dense_head_weight(model) is not None  # so the blocked head path is what runs
    rng = np.random.default_rng(0)
    seqs = [(list(rng.integers(0, 200, n)), [0] * (n // 2) + [1] * (n - n // 2)) for n in (9, 14, 5)]
    batch = collate(seqs, [0, 1, 2])
    fast = target_logprobs(model, batch)
    monkeypatch.setenv("LOCALTUNE_FAST_MATH", "0")
    stock = target_logprobs(model, batch)
    assert fast.shape == stock.shape and rel_err(fast, stock) < 1e-5


def test_installed_model_gives_the_same_logits_and_gradients(tiny_model_dir, monkeypatch):
    import mlx_lm.models.llama as llama
    from mlx_lm.models import activations, base
    from mlx_lm.utils import load

    from localtune.lora import LoraSpec, adapter_layers, attach_lora

    # A stock model (its module's functions reset to mlx_lm's own), then the same weights with ours.
    monkeypatch.setattr(llama, "scaled_dot_product_attention", base.scaled_dot_product_attention)
    monkeypatch.setattr(llama, "swiglu", activations.swiglu)
    model, _ = load(str(tiny_model_dir))
    model.freeze()
    mx.random.seed(3)
    attach_lora(model, LoraSpec(rank=4, layers=-1))
    for layer in adapter_layers(model):  # B != 0, so the LoRA paths carry gradient
        layer.lora_b = mx.random.normal(layer.lora_b.shape) * 0.1
    ids = mx.random.randint(0, 200, (2, 12))

    def loss(model):
        return (model(ids) ** 2).mean()

    stock_logits = model(ids)
    stock_loss, stock_grads = nn.value_and_grad(model, loss)(model)
    assert cpu_math.install(model) and not cpu_math.install(model)  # idempotent
    assert getattr(llama.scaled_dot_product_attention, "localtune_fast", False)
    fast_logits = model(ids)
    fast_loss, fast_grads = nn.value_and_grad(model, loss)(model)
    assert rel_err(fast_logits, stock_logits) < 1e-5
    assert abs(fast_loss.item() - stock_loss.item()) < 1e-5 * abs(stock_loss.item())
    for (name, a), (_, b) in zip(tree_flatten(fast_grads), tree_flatten(stock_grads)):
        assert rel_err(a, b) < 1e-4, name


def test_backend_uses_fast_math_on_cpu_only_and_honours_the_switch(monkeypatch):
    assert backend.fast_cpu_math() == (backend.kind() == "cpu")
    monkeypatch.setenv("LOCALTUNE_FAST_MATH", "0")
    assert not backend.fast_cpu_math()


def test_allocator_keeps_freed_memory_on_linux():
    if sys.platform.startswith("linux"):
        assert _malloc.applied, _malloc.reason
        assert backend.describe()["allocator"] == "glibc, freed memory kept"
    else:
        assert not _malloc.applied
