"""Unlikelihood training for SFT (Welleck et al. 2020, "Neural text generation with unlikelihood
training"): next to the cross-entropy, push down the probability of tokens the answer has already
used, at every position where they are not the next token.

Why: a small model tuned on a few hundred answers loops under greedy decoding (a line or a phrase
again and again, a second greeting) while its loss looks fine; cross-entropy only ever raises the
right token and never says "not this again". The candidates of position t are the distinct tokens
among the same answer's earlier target tokens, minus the target at t, so a token that really comes
next is never pushed down. Loss per position: -sum over candidates c of log(1 - p(c)).

An answer is a run of consecutive target positions: one assistant turn (an earlier turn's tokens,
its end-of-turn token included, are not candidates in the next); with --train-on-prompt the whole
row. The term is computed answer by answer, so its cost is the sum of (answer length x distinct
tokens) over the batch's answers, not the square of all its target tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import localtune  # noqa: F401
import mlx.core as mx

from localtune.train.answer_start import answer_spans


@dataclass(frozen=True)
class Answer:
    """One answer's candidates: `index` (n,) its positions among the batch's targets, `tokens`
    (k,) its distinct tokens, `mask` (n, k) True where token j is a candidate at position t."""

    index: np.ndarray
    tokens: np.ndarray
    mask: np.ndarray


def answers(targets: np.ndarray, target_rows: np.ndarray, positions: np.ndarray) -> list[Answer]:
    """The batch's answers (runs of consecutive target positions within a row), each with its
    candidate mask: token j is a candidate at position t when its first use in the answer comes
    before t and it is not the target at t."""
    targets, target_rows, positions = (np.asarray(a) for a in (targets, target_rows, positions))
    if targets.size == 0:
        return []
    out = []
    for a, b in answer_spans(target_rows, positions):
        tokens, first = np.unique(targets[a:b], return_index=True)
        t = np.arange(b - a)
        mask = (first[None, :] < t[:, None]) & (tokens[None, :] != targets[a:b, None])
        if mask.any():
            out.append(Answer(np.arange(a, b), tokens, mask))
    return out


def unlikelihood_sum(token_logprobs: mx.array, mask: mx.array) -> mx.array:
    """-sum of log(1 - p) over the candidates; token_logprobs (n, k) are log p of token j at
    position t. Computed as log(-expm1(log p)): 1 - exp(log p) in float32 loses every digit when
    p is near 1. log p is capped at -1e-4 (p <= ~0.9999): a float32 log p near 0 is only good to
    ~1e-6 (it is a difference of two logits' size), so closer to 1 the term would be noise; a
    certain candidate costs ~9.2, not inf."""
    logp = mx.minimum(token_logprobs, -1e-4)
    return -(mx.log(-mx.expm1(logp)) * mask).sum()
