"""Attention kept inside each row of a packed sequence (data/packing.py).

mlx_lm's architectures build their own causal mask and call `scaled_dot_product_attention` from
their module at call time; `install` wraps that function once, and while `segments(...)` is active
the wrapper narrows the mask to "same segment and not in the future". Outside the context (normal
batches, generation) the wrapper passes everything through untouched.
"""

from __future__ import annotations

import contextlib
import sys

import localtune  # noqa: F401
import mlx.core as mx

from localtune.errors import ModelError

_mask: mx.array | None = None  # (B, 1, L, L) bool while a packed forward runs
_calls = 0


def _segmented(original):
    def scaled_dot_product_attention(queries, keys, values, cache, scale, mask, sinks=None):
        global _calls
        if _mask is not None and queries.shape[2] > 1:
            _calls += 1
            if not isinstance(mask, mx.array):  # "causal" or None: ours already is causal
                mask = _mask
            elif mask.dtype == mx.bool_:  # the model's own (e.g. sliding-window) mask, narrowed
                mask = mx.logical_and(mask, _mask)
            else:  # additive
                mask = mx.where(_mask, mask, mx.array(mx.finfo(mask.dtype).min, mask.dtype))
        return original(queries, keys, values, cache=cache, scale=scale, mask=mask, sinks=sinks)

    scaled_dot_product_attention.localtune_segments = True
    # cpu_math.install looks for its own marker: keep it visible through this wrapper.
    scaled_dot_product_attention.localtune_fast = getattr(original, "localtune_fast", False)
    return scaled_dot_product_attention


def install(model) -> bool:
    """Wrap the attention of `model`'s architecture module (after cpu_math.install). True if the
    architecture can train packed batches."""
    module = sys.modules.get(type(model).__module__)
    sdpa = getattr(module, "scaled_dot_product_attention", None)
    if sdpa is None:
        return False
    if not getattr(sdpa, "localtune_segments", False):
        module.scaled_dot_product_attention = _segmented(sdpa)
    return True


def segment_mask(segments: mx.array) -> mx.array:
    """(B, L) segment numbers -> (B, 1, L, L): query i sees key j <= i of its own segment.
    Padding (segment 0) sees earlier padding, so no row of the mask is empty (no NaN)."""
    L = segments.shape[1]
    causal = mx.arange(L)[:, None] >= mx.arange(L)[None, :]
    same = segments[:, :, None] == segments[:, None, :]
    return mx.logical_and(same, causal)[:, None]


@contextlib.contextmanager
def segments(seg: mx.array):
    """Run a forward pass whose inputs are packed rows numbered by `seg` (B, L)."""
    global _mask, _calls
    previous, _mask, _calls = _mask, segment_mask(seg), 0
    try:
        yield
    finally:
        calls, _mask = _calls, previous
    if calls == 0:
        raise ModelError("packed batches need attention through mlx_lm's scaled_dot_product_attention, "
                         "which this architecture does not use; train without --pack")
