"""Logits only where the loss needs them.

The vocabulary projection and its softmax are a large share of a small model's step (SmolLM2:
49,152 × 576 per token), and the loss looks at target positions only (assistant tokens; about
half of a chat row). For architectures whose head is a plain projection of the backbone's output,
we run the backbone, gather the target positions, and project just those; other architectures
fall back to full logits. Either way the result is the same numbers.
"""

from __future__ import annotations

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn

from localtune import backend, cpu_math
from localtune.models import packed_attention

# mlx_lm architectures whose Model.__call__ is `head(self.model(inputs))` with nothing after it.
PLAIN_HEAD = {"llama", "qwen2", "qwen3", "mistral"}


def _head(model):
    args = getattr(model, "args", None)
    if getattr(args, "model_type", None) not in PLAIN_HEAD or not hasattr(model, "model"):
        return None
    if getattr(args, "tie_word_embeddings", False):
        return model.model.embed_tokens.as_linear
    return model.lm_head


def target_logits(model: nn.Module, inputs: mx.array, positions: mx.array, prefix=None) -> mx.array:
    """Logits (N, V) at `positions`, flat indices into inputs' (B, L) grid. `prefix`: the frozen
    blocks' stored output (train/frozen_prefix.py; only ever set for plain-head architectures)."""
    head = _head(model)
    if head is None:
        logits = model(inputs)
        return logits.reshape(-1, logits.shape[-1])[positions]
    return head(_target_hidden(model, inputs, positions, prefix))


def _target_hidden(model: nn.Module, inputs: mx.array, positions: mx.array, prefix=None) -> mx.array:
    """The backbone's output rows (N, hidden) at `positions` (plain-head architectures only);
    from the frozen blocks' stored output when the batch carries it (train/frozen_prefix.py)."""
    if prefix is None:
        hidden = model.model(inputs)
    else:
        from localtune.train.frozen_prefix import suffix_hidden

        start, states = prefix
        hidden = suffix_hidden(model, states, start)
    return hidden.reshape(-1, hidden.shape[-1])[positions]


def _dense_head_weight(model):
    """The (vocab, hidden) float weight of a plain, unquantized head; None otherwise."""
    head = _head(model)
    if head is None:
        return None
    owner = getattr(head, "__self__", head)  # embed_tokens.as_linear is a bound method
    if "scales" in owner or "bias" in owner:
        return None
    return owner.weight


def target_logprobs(model: nn.Module, batch, temperature: float = 1.0) -> mx.array:
    """log p(target) at every target position of a batch (ids/mask convention of data.batching);
    a packed batch (with `segments`) attends within each of its rows only. `temperature`: of the
    distribution whose log-probs are wanted (online RL scores answers under the temperature it
    sampled them at); 1 is the model's own."""
    return _within_rows(batch, lambda: _target_logprobs(model, batch, temperature))


def _within_rows(batch, compute):
    """compute(), with attention kept inside each row of a packed batch (one with `segments`)."""
    segments = getattr(batch, "segments", None)
    if segments is None:
        return compute()
    with packed_attention.segments(segments[:, :-1]):
        return compute()


def target_logprobs_by_rows(model: nn.Module, batch, temperature: float = 1.0, rows: int = 0) -> mx.array:
    """target_logprobs of a batch, computed `rows` rows at a time (data.batching.by_row_chunks): a
    pass outside the gradient (online RL's reference and sampling-policy log-probs) then holds the
    activations and logits of `rows` rows, not of the whole batch. The same numbers, in order."""
    from localtune.data.batching import by_row_chunks

    return by_row_chunks(batch, rows, lambda part: target_logprobs(model, part, temperature).astype(mx.float32))


def _target_logprobs(model: nn.Module, batch, temperature: float = 1.0) -> mx.array:
    prefix = getattr(batch, "prefix", None)
    if backend.fast_cpu_math():  # MLX's CPU exp is slow; see localtune/cpu_math.py
        weight = _dense_head_weight(model)
        if weight is not None:
            rows = _target_hidden(model, batch.ids[:, :-1], batch.positions, prefix)
            if temperature != 1.0:  # the head is linear without bias: head(h) / T == head(h / T)
                rows = rows / temperature
            return cpu_math.head_logprobs(rows, weight, batch.targets)
    logits = target_logits(model, batch.ids[:, :-1], batch.positions, prefix).astype(mx.float32)
    if temperature != 1.0:
        logits = logits / temperature
    return -nn.losses.cross_entropy(logits, batch.targets)


def target_and_token_logprobs(model: nn.Module, batch, groups) -> tuple[mx.array, list[mx.array]]:
    """(log p(target) at every target position (N,), and for each (index, tokens) of `groups`: log p
    of each of `tokens` (k,) at the target positions `index` (n,), an (n, k) array). Unlikelihood
    training (train/unlikelihood.py) reads the second: the probability the model gives tokens other
    than the target. On the fast CPU path the (N, vocab) logits are still never held: the
    log-sum-exp comes back out of head_logprobs' result."""
    return _within_rows(batch, lambda: _target_and_token_logprobs(model, batch, groups))


def _target_and_token_logprobs(model: nn.Module, batch, groups):
    prefix = getattr(batch, "prefix", None)
    if backend.fast_cpu_math():
        weight = _dense_head_weight(model)
        if weight is not None:
            rows = _target_hidden(model, batch.ids[:, :-1], batch.positions, prefix)
            logp = cpu_math.head_logprobs(rows, weight, batch.targets)
            picked = (rows * weight[batch.targets]).sum(axis=-1).astype(mx.float32)
            lse = picked - logp  # head_logprobs is picked - lse; both sides carry the gradient
            return logp, [(rows[i] @ weight[t].T).astype(mx.float32) - lse[i][:, None] for i, t in groups]
    logits = target_logits(model, batch.ids[:, :-1], batch.positions, prefix).astype(mx.float32)
    lse = mx.logsumexp(logits, axis=-1)
    picked = mx.take_along_axis(logits, batch.targets[:, None], axis=-1).squeeze(-1)
    return picked - lse, [logits[i][:, t] - lse[i][:, None] for i, t in groups]
