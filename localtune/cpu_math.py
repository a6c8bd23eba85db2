"""Fast exp-based math for MLX's CPU backend: attention, SwiGLU and the loss head's log-softmax.

Why: in the PyPI x86-64 build of MLX the CPU `exp` (and `sigmoid`, `softmax`, `logsumexp`, the
fallback attention) is scalar, ~70-85 M values/s, while plain multiply/add run at ~4 G/s and a
compiled (JIT-fused) chain of them at ~2 G/s. On SmolLM2 that made exp the largest single cost of
a training step: the attention softmax, SiLU and the cross-entropy over 49k logits (bench/NOTES.md).
`fast_exp` rebuilds exp from fusable ops (Cody-Waite range reduction, the Cephes expf polynomial,
2^n from the exponent bits): max relative error ~1e-7, i.e. float32 rounding, ~6x faster.

Each op is an `mx.custom_function` whose gradient reuses a forward output (the attention
probabilities, the head's log-sum-exp) or recomputes the cheap part (SwiGLU), so no slow exp runs
in the backward pass either. Note: inside a `value_and_grad` trace MLX runs `mx.compile`d
functions uncompiled, so in training the exp is ~20 separate passes; that is why the big tensors
are kept few and small (one L x L tensor per block; the head in vocabulary blocks).
`install(model)` swaps the ops into the model's architecture module; backend.fast_cpu_math()
decides where (CPU only: Metal and CUDA have fast exp kernels of their own).
"""

from __future__ import annotations

import sys

import localtune  # noqa: F401
import mlx.core as mx

_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4  # ln 2 split so r * _LN2_HI is exact
_ROUND = 12582912.0  # 1.5 * 2**23: (t + _ROUND) - _ROUND rounds t to the nearest integer
_EXPF_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
              5.0000001201e-1)  # Cephes expf on [-ln2/2, ln2/2]
_MASKED = -1e30  # additive mask value: exp underflows to ~0, never inf - inf


def _exp(x: mx.array) -> mx.array:
    x = mx.minimum(mx.maximum(x, -87.3), 88.37)  # keeps 2**n a normal float; -inf -> ~1e-38
    r = (x * _LOG2E + _ROUND) - _ROUND  # n = round(x / ln 2), kept in float (floor is scalar-slow)
    g = x - r * _LN2_HI - r * _LN2_LO  # |g| <= ln2 / 2
    p = _EXPF_POLY[0]
    for c in _EXPF_POLY[1:]:
        p = p * g + c
    p = p * g * g + g + 1.0
    two_n = ((r.astype(mx.int32) + 127) << 23).view(mx.float32)  # 2**n from the exponent bits
    return p * two_n


fast_exp = mx.compile(_exp)  # shape-specialised: View cannot be traced shapeless


# The forward and backward math, each compiled so its elementwise steps fuse into few passes.
@mx.compile
def _softmax_fwd(x: mx.array) -> mx.array:
    e = _exp(x - mx.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@mx.compile
def _softmax_bwd(s: mx.array, g: mx.array) -> mx.array:
    return s * (g - (g * s).sum(axis=-1, keepdims=True))


@mx.compile
def _logsumexp_fwd(x: mx.array) -> mx.array:
    m = mx.max(x, axis=-1, keepdims=True)
    return (m + mx.log(_exp(x - m).sum(axis=-1, keepdims=True))).squeeze(-1)


def _sigmoid(x: mx.array) -> mx.array:
    return 1.0 / (1.0 + _exp(-x))


@mx.compile
def _swiglu_fwd(gate: mx.array, up: mx.array) -> mx.array:
    return gate * _sigmoid(gate) * up


@mx.compile
def _swiglu_bwd(gate: mx.array, up: mx.array, g: mx.array) -> tuple[mx.array, mx.array]:
    s = _sigmoid(gate)
    silu = gate * s
    return g * up * (s + silu * (1.0 - s)), g * silu


def _only(primals):
    return primals[0] if isinstance(primals, (tuple, list)) else primals  # one input: MLX passes it bare


@mx.custom_function
def swiglu(gate: mx.array, up: mx.array) -> mx.array:
    """silu(gate) * up, as mlx_lm.models.activations.swiglu."""
    return _swiglu_fwd(gate, up)


@swiglu.vjp
def _swiglu_vjp(primals, cotangent, output):
    gate, up = primals
    return _swiglu_bwd(gate, up, _only(cotangent))


def vocab_block(rows: int, vocab: int) -> int:
    """Columns per vocabulary block of head_logprobs (localtune/plan.py sizes memory with it too):
    ~2M logits, a few MB, so the exp's intermediate passes stay in cache."""
    return min(vocab, max(1024, 2**21 // max(rows, 1)))


def head_logprobs(hidden: mx.array, weight: mx.array, targets: mx.array) -> mx.array:
    """log softmax(hidden @ weight.T)[targets] per row, never holding the (rows, vocab) logits.

    The vocabulary is walked in blocks: the forward keeps only each row's log-sum-exp, and the
    backward recomputes each block's logits (one extra head matmul) instead of storing them. The
    head weight is frozen (LoRA never adapts it), so no gradient flows to it.
    """
    rows, vocab = hidden.shape[0], weight.shape[0]
    step = vocab_block(rows, vocab)
    blocks = [(a, min(a + step, vocab)) for a in range(0, vocab, step)]
    w_target = weight[targets]  # (rows, hidden): the picked logit is a dot product with these

    def block_logits(h, a, b):
        return (h @ weight[a:b].T).astype(mx.float32)

    @mx.custom_function
    def logprobs(h):
        lse = mx.logsumexp(mx.stack([_logsumexp_fwd(block_logits(h, a, b)) for a, b in blocks]), axis=0)
        picked = (h * w_target).sum(axis=-1).astype(mx.float32)
        return picked - lse, lse  # lse is an output so the backward pass gets it for free

    @logprobs.vjp
    def logprobs_vjp(primals, cotangents, outputs):
        h = _only(primals)
        g, lse = cotangents[0], outputs[1]
        d_h = g[:, None].astype(h.dtype) * w_target
        for a, b in blocks:
            p = _exp(block_logits(h, a, b) - lse[:, None]) * g[:, None]
            d_h = d_h - p.astype(h.dtype) @ weight[a:b]
        return (d_h,)

    return logprobs(hidden)[0]


def _additive_mask(mask, L: int, S: int, dtype) -> mx.array | None:
    if mask is None:
        return None
    if isinstance(mask, str):  # "causal": query i (the last L of S positions) sees keys <= i
        q = mx.arange(S - L, S)[:, None]
        return mx.where(mx.arange(S)[None] <= q, 0.0, _MASKED).astype(dtype)
    if mask.dtype == mx.bool_:
        return mx.where(mask, 0.0, _MASKED).astype(dtype)
    return mask


@mx.custom_function
def _attend(q, k, v, add):
    """q (B, Hk, rep, L, D) already scaled, k and v (B, Hk, S, D), add broadcastable to the scores.

    Returns (output, probabilities): the probabilities are an output only so that the backward pass
    gets them without keeping the pre-softmax scores as well (one L x S tensor kept per layer, as
    MLX's own attention keeps, not two).
    """
    B, Hk, rep, L, D = q.shape
    scores = (q.reshape(B, Hk, rep * L, D) @ k.swapaxes(-1, -2)).reshape(B, Hk, rep, L, -1) + add
    probs = _softmax_fwd(scores.astype(mx.float32))
    out = probs.reshape(B, Hk, rep * L, -1).astype(v.dtype) @ v
    return out.reshape(B, Hk, rep, L, D), probs


@_attend.vjp
def _attend_vjp(primals, cotangents, outputs):
    q, k, v, add = primals
    B, Hk, rep, L, D = q.shape
    probs = outputs[1].reshape(B, Hk, rep * L, -1)
    g = cotangents[0].reshape(B, Hk, rep * L, D)
    d_v = probs.swapaxes(-1, -2).astype(v.dtype) @ g  # the rep query groups sum in the matmul
    d_scores = _softmax_bwd(probs, (g @ v.swapaxes(-1, -2)).astype(mx.float32))
    d_q = (d_scores.astype(q.dtype) @ k).reshape(q.shape)
    d_k = d_scores.swapaxes(-1, -2).astype(k.dtype) @ q.reshape(B, Hk, rep * L, D)
    return d_q, d_k, d_v, mx.zeros_like(add)


def attention(queries, keys, values, scale: float, mask=None) -> mx.array:
    """softmax(q k^T * scale + mask) v with grouped kv heads, as mx.fast.scaled_dot_product_attention."""
    B, H, L, D = queries.shape
    Hk, S = keys.shape[1], keys.shape[2]
    rep = H // Hk
    add = _additive_mask(mask, L, S, mx.float32)
    if add is None:
        add = mx.zeros((1,), mx.float32)
    elif add.ndim == 4:  # (B or 1, H or 1, L, S) -> broadcastable to (B, Hk, rep, L, S)
        add = add.reshape(add.shape[0], Hk, rep, L, S) if add.shape[1] == H else add[:, :, None]
    out, _ = _attend((queries * scale).reshape(B, Hk, rep, L, D), keys, values, add)
    return out.reshape(B, H, L, D)


def _fast_sdpa(original):
    def scaled_dot_product_attention(queries, keys, values, cache, scale, mask, sinks=None):
        # One new token (generation): its scores are a single row, MLX's fused kernel is cheaper.
        if sinks is not None or hasattr(cache, "bits") or queries.shape[2] == 1:
            return original(queries, keys, values, cache=cache, scale=scale, mask=mask, sinks=sinks)
        return attention(queries, keys, values, scale, mask)

    scaled_dot_product_attention.localtune_fast = True
    return scaled_dot_product_attention


def install(model) -> bool:
    """Use the fast ops in `model`'s architecture module (mlx_lm models look up
    `scaled_dot_product_attention` and `swiglu` there at call time). True if anything changed."""
    module = sys.modules.get(type(model).__module__)
    if module is None:
        return False
    changed = False
    sdpa = getattr(module, "scaled_dot_product_attention", None)
    if sdpa is not None and not getattr(sdpa, "localtune_fast", False):
        module.scaled_dot_product_attention = _fast_sdpa(sdpa)
        changed = True
    if getattr(module, "swiglu", None) not in (None, swiglu):
        module.swiglu = swiglu
        changed = True
    return changed
