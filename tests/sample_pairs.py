"""Subsets of samples/dpo for the short real-model runs. In samples/dpo/train.jsonl the content
pairs (a wrong or weaker answer, both in Pip's shape) take more than a few steps to learn; the pairs
whose rejected answer is the chosen one running on past its end (repeated lines, greetings or
sign-offs; samples/dpo/README.md) are learnt in a few, in train and valid alike."""

import json


def _answer(side) -> str:
    return side if isinstance(side, str) else side[-1]["content"]


def runs_on(row: dict) -> bool:
    """The rejected answer holds every line of the chosen one's body and goes on past it."""
    chosen, rejected = _answer(row["chosen"]), _answer(row["rejected"])
    body = chosen.removeprefix("Aye! ").removesuffix("\nFair winds! ⛵").split("\n")
    return len(rejected) > len(chosen) and all(line in rejected for line in body)


def run_on_pairs(src, dst, n: int):
    """The first n run-on pairs of `src`, written to `dst`."""
    with open(src, encoding="utf-8") as f:
        rows = [line for line in f if runs_on(json.loads(line))][:n]
    assert len(rows) == n, f"{src}: only {len(rows)} run-on pairs"
    with open(dst, "w", encoding="utf-8") as g:
        g.writelines(rows)
    return dst
