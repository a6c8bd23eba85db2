"""The AI judge (RLAIF): which of two answers is better, read from the judge model's next-token
probabilities of the two labels, never parsed from generated text.

For a pair (a, b) the judge prompt shows the constitution's principles, the conversation and the
two answers as "Answer A" and "Answer B", and asks for one letter. One forward pass gives the
next-token distribution; P(A) is the probability of the "A" token(s) normalised over "A" and "B"
(each label sums its single-token spellings, "A" and " A"). Every pair is judged in both orders:
    p1 = P(a is better) with a shown as A,   p2 = P(a is better) with a shown as B (= 1 - P(A))
    p_a_better = (p1 + p2) / 2        (the order-averaged probability: the confidence)
    consistent = p1 and p2 are on the same side of 0.5
    winner     = "a" | "b" when consistent, else "tie" (the verdict flips with the order: position bias)
Identical answers are a tie without a forward pass.

Batching: every prompt of a call (2 per pair) is tokenised, sorted by length and run through the
model in batches, right-padded (causal attention: padding after a row's last token cannot change
it); only the logits at each row's last token are computed (train.logits.target_logits).

Judging on a loaded policy (GRPO), with no second copy of the model: pass `view`, a callable that
returns a context manager putting the shared model in the judge's state for the judge's forwards
and back after:
    Judge(policy, tokenizer, constitution, view=lambda: adapters_off(policy))  # the base judges
    Judge(policy, tokenizer, constitution, view=AdapterSwap(policy, "adapters/judge"))  # a judge
        adapter of the same shape (rank, layers, targets) swapped into the policy's adapter layers
`Judge.on_policy(policy, tokenizer, constitution, judge_adapter=None)` builds either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from localtune.errors import LocaltuneError, RunError
from localtune.feedback.constitution import Constitution, load_constitution

TEMPLATE_VERSION = 1  # bump when the judge prompt changes (verdicts of another template are not reused)
LABELS = ("A", "B")
JUDGE_SYSTEM = ("You are an impartial judge. You compare two answers to the same conversation and say "
                "which one is better, by the principles you are given. The order of the answers does "
                "not matter, and neither does their length on its own.")
ASSISTANT_PREFIX = ""  # the letter right away: the best of three starts tried on 12 train pairs (bench/judge_smollm2.py)
DEFAULT_BATCH_SIZE = 8
DEFAULT_BATCH_TOKENS = 8192  # rows x padded length per forward pass
DEFAULT_MAX_ANSWER_TOKENS = 384


@dataclass(frozen=True)
class Verdict:
    """The judge on one pair: P(a is better) averaged over both orders, whether both orders agree,
    and the winner ("a", "b" or "tie"). p_orders = (P(a better) with a first, with a second)."""

    p_a_better: float
    consistent: bool
    winner: str
    p_orders: tuple[float, float]

    @property
    def confidence(self) -> float:
        """The order-averaged probability of the answer judged better (0.5 .. 1)."""
        return max(self.p_a_better, 1 - self.p_a_better)

    def to_json(self) -> dict:
        return {"p_a_better": round(self.p_a_better, 6), "p_orders": [round(p, 6) for p in self.p_orders],
                "consistent": self.consistent, "winner": self.winner}


def verdict_from(p_a_first: float, p_a_second: float) -> Verdict:
    """A verdict from P(label A) of the two orders: a shown first, then b shown first."""
    p1, p2 = p_a_first, 1.0 - p_a_second
    consistent = (p1 > 0.5 and p2 > 0.5) or (p1 < 0.5 and p2 < 0.5)
    p = (p1 + p2) / 2
    return Verdict(p, consistent, ("a" if p > 0.5 else "b") if consistent else "tie", (p1, p2))


TIE = Verdict(0.5, False, "tie", (0.5, 0.5))


def win_rates_from(n: int, verdicts: dict[tuple[int, int], Verdict], *, soft: bool = False) -> list[float]:
    """Each answer's win rate against the others of its group, from verdicts on every pair (i<j):
    hard (default): wins count 1, ties 0.5; soft: the order-averaged probabilities."""
    if n < 2:
        return [0.5] * n
    score = [0.0] * n
    for (i, j), v in verdicts.items():
        if soft:
            s = v.p_a_better
        else:
            s = {"a": 1.0, "b": 0.0}.get(v.winner, 0.5)
        score[i] += s
        score[j] += 1 - s
    return [s / (n - 1) for s in score]


# --- the judge's view of a shared model -------------------------------------------------------

@contextlib.contextmanager
def adapters_off(model):
    """The base model for the judge's forwards: every adapter layer off, then as it was."""
    from localtune.lora import adapter_layers

    layers = adapter_layers(model)
    before = [layer.adapter_enabled for layer in layers]
    for layer in layers:
        layer.adapter_enabled = False
    try:
        yield model
    finally:
        for layer, on in zip(layers, before):
            layer.adapter_enabled = on


class AdapterSwap:
    """A judge adapter swapped into a loaded policy's adapter layers for the judge's forwards: the
    policy's arrays are kept by reference (no copy) and put back after. The judge adapter must have
    the policy adapter's shape (the same layers, targets and rank); its own scale is used."""

    def __init__(self, model, adapter_dir: str | Path):
        import mlx.core as mx

        from localtune.lora import ADAPTER_FILE, adapter_weights, read_adapter_spec

        self.model, self.path = model, Path(adapter_dir)
        spec = read_adapter_spec(self.path)
        if spec.dora:
            raise RunError(f"{self.path}: a DoRA judge adapter cannot be swapped into LoRA layers; "
                           "load the judge as its own model")
        self.scale = spec.scale
        self.weights = mx.load(str(self.path / ADAPTER_FILE))
        have = {k: v.shape for k, v in adapter_weights(model).items()}
        want = {k: v.shape for k, v in self.weights.items()}
        if have != want:
            raise RunError(f"{self.path}: the judge adapter's layers or rank differ from the loaded policy's "
                           f"adapter ({len(want)} vs {len(have)} arrays); train the judge adapter with the "
                           "policy's --lora-rank/--lora-layers, or load the judge model on its own")

    @contextlib.contextmanager
    def __call__(self):
        from localtune.lora import adapter_layers, adapter_weights

        layers = adapter_layers(self.model)
        saved = adapter_weights(self.model)
        before = [(layer.scale, layer.adapter_enabled) for layer in layers]
        self.model.load_weights(list(self.weights.items()), strict=False)
        for layer in layers:
            layer.scale, layer.adapter_enabled = self.scale, True
        try:
            yield self.model
        finally:
            self.model.load_weights(list(saved.items()), strict=False)
            for layer, (scale, on) in zip(layers, before):
                layer.scale, layer.adapter_enabled = scale, on


# --- the judge ---------------------------------------------------------------------------------

def _conversation_text(messages: Sequence[dict]) -> str:
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    return "\n\n".join(f"{names.get(m['role'], m['role'])}: {m['content']}" for m in messages)


class Judge:
    """Pairwise verdicts of one model under a constitution (module doc).

    model, tokenizer: an mlx_lm model and its TokenizerWrapper (the judge as loaded, or a shared
    policy with `view`). constitution: a Constitution (default: localtune's). batch_size /
    batch_tokens: rows and rows x length per forward. max_answer_tokens: longer answers are cut
    for the judge (marked "[...]"). name/adapter: how the judge is described in records.
    assistant_prefix: the start of the judge's reply, after which the label token is read."""

    def __init__(self, model, tokenizer, constitution: Constitution | None = None, *,
                 view: Callable[[], contextlib.AbstractContextManager] | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, batch_tokens: int = DEFAULT_BATCH_TOKENS,
                 max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS, name: str | None = None,
                 adapter: str | None = None, assistant_prefix: str = ASSISTANT_PREFIX):
        if batch_size < 1 or batch_tokens < 1 or max_answer_tokens < 1:
            raise LocaltuneError("judge batch_size, batch_tokens and max_answer_tokens must be at least 1")
        self.model, self.tokenizer = model, tokenizer
        self.constitution = constitution or load_constitution()
        self.view = view or contextlib.nullcontext
        self.batch_size, self.batch_tokens, self.max_answer_tokens = batch_size, batch_tokens, max_answer_tokens
        self.name, self.adapter, self.assistant_prefix = name, adapter, assistant_prefix
        self.label_ids = self._label_token_ids()

    @classmethod
    def on_policy(cls, model, tokenizer, constitution: Constitution | None = None, *,
                  judge_adapter: str | Path | None = None, **kw) -> "Judge":
        """A judge sharing a loaded policy model: its base (adapters off), or `judge_adapter`
        swapped into the policy's adapter layers, for the judge's forwards only."""
        view = AdapterSwap(model, judge_adapter) if judge_adapter else (lambda: adapters_off(model))
        return cls(model, tokenizer, constitution, view=view,
                   adapter=str(judge_adapter) if judge_adapter else None, **kw)

    # -- identity -----------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"model": self.name, "adapter": self.adapter, "constitution": self.constitution.digest(),
                "template": TEMPLATE_VERSION, "labels": list(LABELS), "max_answer_tokens": self.max_answer_tokens,
                "assistant_prefix": self.assistant_prefix}

    @property
    def id(self) -> str:
        """A short hash of describe(): verdicts by the same judge can be reused."""
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()[:12]

    # -- prompts ------------------------------------------------------------------------------
    def _cut(self, answer: str) -> str:
        ids = self.tokenizer.encode(answer, add_special_tokens=False)
        if len(ids) <= self.max_answer_tokens:
            return answer
        return self.tokenizer.decode(ids[: self.max_answer_tokens]) + " [...]"

    def messages(self, prompt: Sequence[dict] | str, first: str, second: str) -> list[dict]:
        """The judge's chat for one order: system, then one user turn with the principles, the
        conversation and the answers as A (first) and B (second)."""
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        body = ("Two assistants answered the same conversation. Decide which answer is better.\n\n"
                f"Principles of a good answer:\n{self.constitution.as_text()}\n\n"
                f"The conversation:\n<conversation>\n{_conversation_text(prompt)}\n</conversation>\n\n"
                f"Answer A:\n<answer>\n{self._cut(first)}\n</answer>\n\n"
                f"Answer B:\n<answer>\n{self._cut(second)}\n</answer>\n\n"
                "Which answer is better by these principles, A or B? Reply with the letter only.")
        return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": body}]

    def _text(self, messages: list[dict]) -> str:
        from localtune.data.template import render_messages

        return render_messages(messages, self.tokenizer, add_generation_prompt=True) + self.assistant_prefix

    def prompt_ids(self, prompt, first: str, second: str) -> list[int]:
        return list(self.tokenizer.encode(self._text(self.messages(prompt, first, second)),
                                          add_special_tokens=False))

    def _label_token_ids(self) -> tuple[list[int], list[int]]:
        """Each label's single-token spellings right after the judge prompt ("A" and " A")."""
        text = self._text(self.messages("q", "x", "y"))
        base = list(self.tokenizer.encode(text, add_special_tokens=False))
        out = []
        for label in LABELS:
            ids = set()
            for spelling in (label, " " + label):
                full = list(self.tokenizer.encode(text + spelling, add_special_tokens=False))
                if len(full) == len(base) + 1 and full[: len(base)] == base:
                    ids.add(full[-1])
            if not ids:
                raise LocaltuneError(f"the judge model's tokenizer spells {label!r} with more than one token "
                                     "after the judge prompt; this model cannot be a judge")
            out.append(sorted(ids))
        if set(out[0]) & set(out[1]):
            raise LocaltuneError("the judge model's tokenizer gives A and B the same token")
        return out[0], out[1]

    # -- scoring ------------------------------------------------------------------------------
    def label_probs(self, prompts: Sequence[list[int]], on_progress=None) -> list[float]:
        """P(A) normalised over {A, B} after each tokenised judge prompt; batched forwards."""
        import localtune  # noqa: F401  (OpenBLAS before mlx)
        import mlx.core as mx
        import numpy as np

        from localtune.lora import eval_mode
        from localtune.train.logits import target_logits

        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out = [0.0] * len(prompts)
        a_ids, b_ids = (mx.array(ids) for ids in self.label_ids)
        done = 0
        with self.view(), eval_mode(self.model):
            start = 0
            while start < len(order):
                longest = len(prompts[order[start]])
                rows = max(1, min(self.batch_size, self.batch_tokens // max(longest, 1)))
                batch = order[start:start + rows]
                grid = np.zeros((len(batch), longest), dtype=np.int32)
                last = []
                for r, i in enumerate(batch):
                    ids = prompts[i]
                    grid[r, : len(ids)] = ids
                    last.append(r * longest + len(ids) - 1)
                logits = target_logits(self.model, mx.array(grid), mx.array(last)).astype(mx.float32)
                logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
                la = mx.logsumexp(logp[:, a_ids], axis=-1)
                lb = mx.logsumexp(logp[:, b_ids], axis=-1)
                p = mx.sigmoid(la - lb)
                mx.eval(p)
                for i, value in zip(batch, p.tolist()):
                    out[i] = float(value)
                start += len(batch)
                done += len(batch)
                if on_progress:
                    on_progress(done, len(prompts))
        return out

    def compare_many(self, items: Sequence[tuple], on_progress=None) -> list[Verdict]:
        """Verdicts for many (prompt, answer_a, answer_b) at once: both orders of every pair in one
        batched pass. on_progress(done, total) counts forward rows (two per pair)."""
        prompts, slots = [], []
        for prompt, a, b in items:
            if a.strip() == b.strip():
                slots.append(None)
                continue
            slots.append(len(prompts))
            prompts += [self.prompt_ids(prompt, a, b), self.prompt_ids(prompt, b, a)]
        probs = self.label_probs(prompts, on_progress) if prompts else []
        return [TIE if s is None else verdict_from(probs[s], probs[s + 1]) for s in slots]

    def training_rows(self, examples) -> list[dict]:
        """SFT rows that teach a model this judge's task from labelled pairs (PreferenceExamples):
        each pair in both orders, the reply the label (the better one first: "A", else "B"), so a
        judge adapter trained on them (`train sft`) cannot learn a position. Needs no model."""
        rows = []
        for ex in examples:
            for first, second, label in ((ex.chosen, ex.rejected, LABELS[0]), (ex.rejected, ex.chosen, LABELS[1])):
                rows.append({"messages": self.messages(ex.prompt, first, second) +
                             [{"role": "assistant", "content": self.assistant_prefix + label}]})
        return rows

    def compare(self, prompt, answer_a: str, answer_b: str) -> Verdict:
        return self.compare_many([(prompt, answer_a, answer_b)])[0]

    def win_rates_many(self, groups: Sequence[tuple], *, soft: bool = False, on_progress=None) -> list[list[float]]:
        """For each (prompt, answers) group: every answer's win rate against the others (all pairs
        of the group, both orders), all groups in one batched pass."""
        pairs, index = [], []
        for g, (prompt, answers) in enumerate(groups):
            for i in range(len(answers)):
                for j in range(i + 1, len(answers)):
                    pairs.append((prompt, answers[i], answers[j]))
                    index.append((g, i, j))
        verdicts = self.compare_many(pairs, on_progress)
        per_group: list[dict] = [{} for _ in groups]
        for (g, i, j), v in zip(index, verdicts):
            per_group[g][(i, j)] = v
        return [win_rates_from(len(answers), per_group[g], soft=soft) for g, (_, answers) in enumerate(groups)]

    def win_rates(self, prompt, answers: Sequence[str], *, soft: bool = False) -> list[float]:
        """Each answer's win rate in its group (GRPO's judge reward): wins 1, ties 0.5, over n - 1."""
        return self.win_rates_many([(prompt, answers)], soft=soft)[0]


def load_judge(judge_model: str, judge_adapter: str | Path | None = None, constitution: str | Path | None = None,
               *, on_event=None, **kw) -> Judge:
    """A judge loaded on its own: `judge_model` (dir, .gguf or hub id) with `judge_adapter` (a run)."""
    from localtune.lora import load_adapter
    from localtune.models import load_model, resolve_model

    path = resolve_model(judge_model, on_event=on_event)
    model, tokenizer = load_model(path)
    if judge_adapter:
        load_adapter(model, judge_adapter)
    return Judge(model, tokenizer, load_constitution(constitution), name=str(path),
                 adapter=str(Path(judge_adapter).resolve()) if judge_adapter else None, **kw)
