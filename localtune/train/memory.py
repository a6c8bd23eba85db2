"""Gradient checkpointing: recompute each transformer block's activations in the backward pass."""

from __future__ import annotations

import localtune  # noqa: F401
import mlx.core as mx


def enable_grad_checkpoint(blocks) -> None:
    """Swap each block's class for a subclass whose __call__ is checkpointed.

    Per instance (not a patch of the shared class, as mlx_lm does), so other models in the
    process are untouched and parameter names stay the same (adapters stay compatible).
    """
    for block in blocks:
        cls = type(block)
        if getattr(cls, "_localtune_checkpointed", False):
            continue
        call = cls.__call__

        def checkpointed(self, *args, _call=call, **kwargs):
            def inner(params, *args, **kwargs):
                self.update(params)
                return _call(self, *args, **kwargs)

            return mx.checkpoint(inner)(self.trainable_parameters(), *args, **kwargs)

        block.__class__ = type(cls.__name__, (cls,), {"__call__": checkpointed, "_localtune_checkpointed": True})
