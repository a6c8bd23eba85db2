"""The blocks before the first adapter, run once per batch instead of once per pass.

LoRA sits on the last N blocks (`--lora-layers`, 16 of SmolLM2's 30 by default). The blocks before
the first adapted one compute the same hidden states whatever the adapter does: with the adapter
on (the policy), off (the reference) or swapped for the starting one, and no gradient reaches them.
GRPO/RLOO runs two passes over every answer in a step, the reference's log-probs and the update's
forward/backward, so it ran those blocks twice (online DPO's live reference could share them the
same way; not done yet). Here they run once: `prefix_hidden` gives the hidden states entering the
first adapted block, and `suffix_hidden` takes them through the rest (then the final norm), the
same operations in the same order as the model's own forward.

Only for the plain decoder layouts of train/logits.py (llama, qwen2, qwen3, mistral: embed,
blocks called as block(h, mask, cache), norm) with one causal mask for every block: a model with
sliding-window blocks or split across a pipeline gets 0 frozen blocks, and so the full forward.
"""

from __future__ import annotations

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from localtune.lora import LoRALinear


def frozen_blocks(model: nn.Module) -> int:
    """How many leading blocks hold no adapter and nothing trained: their output is the same for
    every policy. 0 where the model's layout is not one this module can split."""
    from localtune.train.logits import PLAIN_HEAD

    args = getattr(model, "args", None)
    inner = getattr(model, "model", None)
    if getattr(args, "model_type", None) not in PLAIN_HEAD or inner is None:
        return 0
    if getattr(inner, "pipeline_size", 1) != 1:
        return 0
    blocks = getattr(inner, "layers", None)
    if not blocks or any(getattr(b, "use_sliding", False) for b in blocks):
        return 0
    for i, block in enumerate(blocks):
        # Trained parameters (an adapter, or anything a mode unfreezes) or a switchable adapter:
        # from here on the output depends on the policy.
        if tree_flatten(block.trainable_parameters()) or \
                any(isinstance(m, LoRALinear) for _, m in block.named_modules()):
            return i
    return 0  # nothing trained: nothing to share


def _causal(h: mx.array):
    from mlx_lm.models.base import create_attention_mask

    return create_attention_mask(h, None)


def prefix_hidden(model: nn.Module, inputs: mx.array, upto: int) -> mx.array:
    """(B, L) token ids -> (B, L, hidden) entering block `upto` (outside any gradient)."""
    inner = model.model
    h = inner.embed_tokens(inputs)
    mask = _causal(h)
    for block in inner.layers[:upto]:
        h = block(h, mask, None)
    return mx.stop_gradient(h)


def suffix_hidden(model: nn.Module, hidden: mx.array, start: int) -> mx.array:
    """prefix_hidden's output -> the backbone's output (after the final norm), as model.model(inputs)."""
    inner = model.model
    mask = _causal(hidden)
    h = hidden
    for block in inner.layers[start:]:
        h = block(h, mask, None)
    return inner.norm(h)


def batch_prefix(model: nn.Module, batch, rows: int = 0) -> tuple[int, mx.array] | None:
    """(first adapted block, the states entering it for every row of `batch`), computed `rows` rows
    at a time (0: all at once) at the batch's full width, so that any part data.batching.take_rows
    cuts from the batch can slice its own; None when no block is frozen."""
    from localtune.data.batching import row_chunks

    start = frozen_blocks(model)
    if not start or getattr(batch, "segments", None) is not None:  # packed rows need their own mask
        return None
    inputs = batch.ids[:, :-1]
    n = int(inputs.shape[0])
    parts = []
    for chunk in row_chunks(n, rows if 0 < rows < n else n):
        states = prefix_hidden(model, inputs[mx.array(chunk)], start)
        mx.eval(states)
        parts.append(states)
    return start, parts[0] if len(parts) == 1 else mx.concatenate(parts)
