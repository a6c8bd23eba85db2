"""Fast exp-based math for MLX's CPU backend: softmax, log-sum-exp, SwiGLU and attention.

Why: in the PyPI x86-64 build of MLX the CPU `exp` (and `sigmoid`, `softmax`, `logsumexp`, the
fallback attention) is scalar, ~70-85 M values/s, while plain multiply/add run at ~4 G/s and a
compiled (JIT-fused) chain of them at ~2 G/s. On SmolLM2 that made exp the largest single cost of
a training step: the attention softmax, SiLU and the cross-entropy over 49k logits (bench/NOTES.md).
`fast_exp` rebuilds exp from fusable ops (Cody-Waite range reduction, the Cephes expf polynomial,
2^n from the exponent bits): max relative error ~1e-7, i.e. float32 rounding, ~6x faster.

Each op is an `mx.custom_function` whose gradient reuses the forward output (softmax) or
recomputes the cheap part (SwiGLU), so no slow exp runs in the backward pass either.
`install(model)` swaps them into the model's architecture module; backend.fast_cpu_math()
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


def _softmax_fwd(x: mx.array) -> mx.array:
    e = fast_exp(x - mx.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@mx.custom_function
def softmax(x: mx.array) -> mx.array:
    """Softmax over the last axis (float32 in, float32 out)."""
    return _softmax_fwd(x)


@softmax.vjp
def _softmax_vjp(primals, cotangent, output):
    return (output * (cotangent - (cotangent * output).sum(axis=-1, keepdims=True)),)


@mx.custom_function
def logsumexp(x: mx.array) -> mx.array:
    """log sum exp over the last axis, keepdims=False."""
    m = mx.max(x, axis=-1, keepdims=True)
    return (m + mx.log(fast_exp(x - m).sum(axis=-1, keepdims=True))).squeeze(-1)


@logsumexp.vjp
def _logsumexp_vjp(primals, cotangent, output):
    x = primals[0] if isinstance(primals, (tuple, list)) else primals  # one input: MLX passes it bare
    return (cotangent[..., None] * fast_exp(x - output[..., None]),)


def _sigmoid(x: mx.array) -> mx.array:
    return 1.0 / (1.0 + fast_exp(-x))


@mx.custom_function
def swiglu(gate: mx.array, up: mx.array) -> mx.array:
    """silu(gate) * up, as mlx_lm.models.activations.swiglu."""
    return gate * _sigmoid(gate) * up


@swiglu.vjp
def _swiglu_vjp(primals, cotangent, output):
    gate, up = primals
    s = _sigmoid(gate)
    silu = gate * s
    return cotangent * up * (s + silu * (1.0 - s)), cotangent * silu


def _additive_mask(mask, L: int, S: int, dtype) -> mx.array | None:
    if mask is None:
        return None
    if isinstance(mask, str):  # "causal": query i (the last L of S positions) sees keys <= i
        q = mx.arange(S - L, S)[:, None]
        return mx.where(mx.arange(S)[None] <= q, 0.0, _MASKED).astype(dtype)
    if mask.dtype == mx.bool_:
        return mx.where(mask, 0.0, _MASKED).astype(dtype)
    return mask


def attention(queries, keys, values, scale: float, mask=None) -> mx.array:
    """softmax(q k^T * scale + mask) v with grouped kv heads, as mx.fast.scaled_dot_product_attention."""
    B, H, L, D = queries.shape
    Hk, S = keys.shape[1], keys.shape[2]
    rep = H // Hk
    q = (queries * scale).reshape(B, Hk, rep, L, D)
    scores = q @ keys[:, :, None].swapaxes(-1, -2)  # (B, Hk, rep, L, S)
    add = _additive_mask(mask, L, S, scores.dtype)
    if add is not None:
        scores = scores + (add.reshape(B, Hk, rep, L, S) if add.ndim == 4 and add.shape[1] == H else
                           add[:, :, None] if add.ndim == 4 else add)
    probs = softmax(scores.astype(mx.float32)).astype(values.dtype)
    return (probs @ values[:, :, None]).reshape(B, H, L, -1)


def _fast_sdpa(original):
    def scaled_dot_product_attention(queries, keys, values, cache, scale, mask, sinks=None):
        if sinks is not None or hasattr(cache, "bits"):
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
