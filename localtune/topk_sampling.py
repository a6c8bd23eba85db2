"""Sampling with top-k set, without sorting the whole vocabulary every step.

mlx_lm's filters run one after another on the full (B, V) log-probabilities: top-p sorts all V of
them, top-k partitions them, and the draw adds noise to all V. On this CPU that is 66 ms a step for
8 rows of SmolLM2's 49,152-token vocabulary, of which the sort is 48 ms, against 131 ms for the
model's forward pass: a quarter of a GRPO step's decoding (bench/NOTES.md, "GRPO vs mlx-lm-lora").

With top-k set the same answer costs one partition: top-p, min-p and top-k each keep a prefix of
the tokens ranked by probability (top-p: the ones whose probability mass above them is under p;
min-p: the ones at least min_p times as likely as the best; top-k: the k best), so applied in
mlx_lm's order they keep the shortest of the three prefixes, and it lies among the k best. So:
pick the k best with one argpartition, rank those k, apply top-p (against the mass of the whole
vocabulary, as mlx_lm does) and min-p to them, and draw among them. The kept tokens and their
relative probabilities are mlx_lm's (tests/unit/test_topk_sampling.py compares them in float32 and
bfloat16, with ties at the cut; a tie at the k-th place may keep another of the tied tokens); the
random draw itself differs (noise on k entries instead of V), so answers sampled before and after this
change differ, not their distribution.
"""

from __future__ import annotations

import math

import localtune  # noqa: F401  (OpenBLAS before mlx)
import mlx.core as mx


def top_k_candidates(logprobs: mx.array, top_k: int, top_p: float = 1.0, min_p: float = 0.0,
                     total_mass: float | None = None) -> tuple[mx.array, mx.array]:
    """(B, V) log-probabilities -> ((B, k) token ids, best first; (B, k) their log-probabilities,
    -inf where top-p or min-p drops them). Needs 0 < top_k < V. total_mass: the probability mass of
    a whole row, when the caller knows it (1 for normalised log-probabilities); None sums it."""
    ids = mx.argpartition(-logprobs, kth=top_k - 1, axis=-1)[..., :top_k]
    values = mx.take_along_axis(logprobs, ids, axis=-1)
    order = mx.argsort(-values, axis=-1)
    ids = mx.take_along_axis(ids, order, axis=-1)
    values = mx.take_along_axis(values, order, axis=-1)
    keep = None
    if top_p < 1:
        probs = mx.exp(values.astype(mx.float32))
        # The mass above each candidate is all among the better candidates; the total is the whole
        # vocabulary's, as in mlx_lm's top-p.
        total = total_mass if total_mass is not None else \
            mx.exp(logprobs.astype(mx.float32)).sum(axis=-1, keepdims=True)
        keep = mx.cumsum(probs, axis=-1, inclusive=False) < top_p * total
        # mlx_lm cuts by value: every token as likely as the last one kept stays (ties).
        cut = mx.where(keep, values, mx.array(float("inf"), values.dtype)).min(axis=-1, keepdims=True)
        keep = values >= cut
    if min_p > 0:
        above = values >= values[..., :1] + math.log(min_p)
        keep = above if keep is None else keep & above
    if keep is not None:
        values = mx.where(keep, values, mx.array(-float("inf"), values.dtype))
    return ids, values


def draw_top_k(logprobs: mx.array, top_k: int, top_p: float, min_p: float, inv_temp: float,
               key: mx.array) -> mx.array:
    """(B, V) normalised log-probabilities -> (B,) sampled tokens, from the candidates above. mlx_lm
    normalises after its logits processors, before it calls a sampler (generate_step and
    BatchGenerator): in float32 a row's mass is 1 to rounding and summing it again (7 ms a step
    on this CPU) is skipped; in bf16/fp16 the rows are off 1 by up to a few percent, so it is summed."""
    total = 1.0 if logprobs.dtype == mx.float32 else None
    ids, values = top_k_candidates(logprobs, top_k, top_p, min_p, total_mass=total)
    choice = mx.random.categorical(values * inv_temp, key=key)
    return mx.take_along_axis(ids, choice[..., None], axis=-1).squeeze(-1)
