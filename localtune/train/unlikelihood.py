"""Unlikelihood training for SFT (Welleck et al. 2020, "Neural text generation with unlikelihood
training"): next to the cross-entropy, push down the probability of tokens the answer has already
used, at every position where they are not the next token.

Why: a small model tuned on a few hundred answers loops under greedy decoding (a line or a phrase
again and again, a second greeting) while its loss looks fine; cross-entropy only ever raises the
right token and never says "not this again". The candidates of position t are the distinct tokens
among the same answer's earlier target tokens, minus the target at t, so a token that really comes
next is never pushed down. Loss per position: -sum over candidates c of log(1 - p(c)).
"""

from __future__ import annotations

import numpy as np

import localtune  # noqa: F401
import mlx.core as mx


def candidate_mask(targets: np.ndarray, target_rows: np.ndarray) -> np.ndarray:
    """(N, N) bool: [t, j] is True when target j is a candidate of position t: same row, earlier,
    a token other than target t, and the first time its token appears in that row (so each
    earlier token counts once however often it was used)."""
    targets, target_rows = np.asarray(targets), np.asarray(target_rows)
    n = len(targets)
    first = np.zeros(n, bool)
    seen = set()
    for j in range(n):
        key = (int(target_rows[j]), int(targets[j]))
        if key not in seen:
            seen.add(key)
            first[j] = True
    index = np.arange(n)
    return ((target_rows[None, :] == target_rows[:, None]) & (index[None, :] < index[:, None])
            & (targets[None, :] != targets[:, None]) & first[None, :])


def unlikelihood_sum(token_logprobs: mx.array, mask: mx.array) -> mx.array:
    """-sum of log(1 - p) over the candidates; token_logprobs (N, N) are log p of target j's token
    at position t. p is kept below 1 so a certain candidate costs a large finite amount, not inf."""
    p = mx.minimum(mx.exp(token_logprobs), 1.0 - 1e-6)
    return -(mx.log1p(-p) * mask).sum()
