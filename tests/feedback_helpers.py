"""Feedback sessions made without a model (fixed candidate answers), for the rating, export and TUI
tests, and a scripted judge model whose next-token logits the test decides."""

from __future__ import annotations

import re
from pathlib import Path

from localtune.feedback.session import Candidate, FeedbackSession, PromptItem, item_id


def make_session(path, prompts: int = 5, k: int = 2, *, system: str | None = None) -> FeedbackSession:
    """A ready session of `prompts` prompts ("question i") with k answers each ("answer i.j")."""
    items = []
    for i in range(prompts):
        messages = ([{"role": "system", "content": system}] if system else []) + \
                   [{"role": "user", "content": f"question {i}"}]
        cands = tuple(Candidate(f"answer {i}.{j}", "stop", 3, 0.8, j) for j in range(k))
        items.append(PromptItem(item_id(i), messages, cands, key=f"q.txt:{i + 1}"))
    return FeedbackSession.create(Path(path), {"model": "scripted", "n": k}, items)


class ScriptedJudgeModel:
    """Stands in for a judge model: for each row it reads the judge prompt back (the tiny byte-level
    tokenizer), finds answers A and B, and puts logit `score(A) - score(B) + bias` on the "A" token
    and 0 on "B" (every other token -inf-ish), at every position. P(A) = sigmoid(that). Counts
    forward calls and rows."""

    ANSWER = re.compile(r"Answer (A|B):\n<answer>\n(.*?)\n</answer>", re.S)

    def __init__(self, tokenizer, score, bias: float = 0.0):
        self.tokenizer, self.score, self.bias = tokenizer, score, bias
        self.calls, self.rows = 0, 0
        self.training = False

    def eval(self):
        self.training = False

    def train(self, mode: bool = True):
        self.training = mode

    def _set_training_mode(self, mode: bool):
        self.training = mode

    def named_modules(self):  # what lora.eval_mode walks: this stand-in is its only module
        return [("", self)]

    def __call__(self, inputs):
        import mlx.core as mx
        import numpy as np

        self.calls += 1
        ids = np.array(inputs)
        self.rows += ids.shape[0]
        vocab = len(self.tokenizer.get_vocab())
        a_id = self.tokenizer.encode("A", add_special_tokens=False)[0]
        b_id = self.tokenizer.encode("B", add_special_tokens=False)[0]
        out = np.full((ids.shape[0], ids.shape[1], vocab), -30.0, dtype=np.float32)
        for r, row in enumerate(ids):
            text = self.tokenizer.decode([int(t) for t in row if t != 0])
            answers = dict(self.ANSWER.findall(text))
            out[r, :, a_id] = self.score(answers["A"]) - self.score(answers["B"]) + self.bias
            out[r, :, b_id] = 0.0
        return mx.array(out)
