"""A heavier SFT loss on each answer's first tokens (`--answer-start-weight W`, over the first
`--answer-start-tokens N` target tokens of every answer).

Why: with the loss averaged over all target tokens, the first token of an answer is one of ~100,
yet it decides most of a format instruction. Measured on SmolLM2-135M (bench/NOTES.md, sessions 12
and 13): after SFT on ~90 rows a kind written in lowercase or in capitals, the first token of such
an answer still had log p -4.8 (lowercase) and -3.1 (capitals), so greedy decoding opened with the
usual capitalised word and never wrote the format, while the tokens after a right first token were
already near certain (-0.01 to -0.2). Weighting the opening tokens puts the gradient where the
decision is.

An answer is a run of consecutive target positions within a row (the same runs as
train/unlikelihood.py): one assistant turn, or the whole row with --train-on-prompt.
"""

from __future__ import annotations

import numpy as np


def answer_spans(target_rows: np.ndarray, positions: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges, into the batch's flat target arrays, of its answers: runs of
    consecutive positions within one row."""
    target_rows, positions = np.asarray(target_rows), np.asarray(positions)
    if positions.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, (np.diff(positions) != 1) | (np.diff(target_rows) != 0)])
    return list(zip(starts.tolist(), np.r_[starts[1:], positions.size].tolist()))


def start_weights(target_rows: np.ndarray, positions: np.ndarray, tokens: int, weight: float) -> np.ndarray:
    """(N,) float32 loss weights of the batch's targets: `weight` on the first `tokens` targets of
    each answer, 1 elsewhere."""
    out = np.ones(np.asarray(positions).size, np.float32)
    for start, end in answer_spans(target_rows, positions):
        out[start:min(end, start + tokens)] = weight
    return out
