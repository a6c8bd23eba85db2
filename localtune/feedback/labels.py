"""What the labels log means: the records a person, a judge and critique-revise write, and the
replay that turns the log into the current labels.

Records (every one also has "seq", "time" and "source": "human" | "judge" | "critique"):
  person   {"type": "rank", "prompt", "best": i, "worst": j | None, "order": [[i], [...], [j]]}
           {"type": "tie", "prompt"}   {"type": "skip", "prompt"}
           {"type": "edit", "prompt", "candidate": i, "text"}   (a corrected answer made from i)
           {"type": "undo", "target": seq}                      (takes back a person's label)
  judge    {"type": "judge_info", "judge": id, "model", "adapter", "constitution", ...}
           {"type": "judge", "prompt", "a": i, "b": j, "p_a_better", "p_orders": [p1, p2],
            "consistent", "winner": "a" | "b" | "tie", "judge": id}
  critique {"type": "revision", "prompt", "candidate": i, "principle", "critique", "revision",
            "ended", "model"}
A person's label for a prompt is the latest one not undone; a judge's verdict for a pair of
candidates is the latest one (a later judging run replaces an earlier one).
`order` lists tiers of candidate indexes, best first: [[best], [the others], [worst]].
"""

from __future__ import annotations

from dataclasses import dataclass, field

HUMAN_TYPES = ("rank", "tie", "skip", "edit")


def rank_order(n: int, best: int, worst: int | None) -> list[list[int]]:
    """The tiers a best (and optional worst) pick says about n candidates."""
    middle = [i for i in range(n) if i not in (best, worst)]
    order = [[best]]
    if middle:
        order.append(middle)
    if worst is not None:
        order.append([worst])
    return order


def preferred_pairs(order: list[list[int]], *, all_pairs: bool) -> list[tuple[int, int]]:
    """(better, worse) candidate pairs a ranking implies: by default the best tier over the worst
    tier; with all_pairs every pair from different tiers (the higher tier preferred)."""
    if len(order) < 2:
        return []
    if not all_pairs:
        return [(a, b) for a in order[0] for b in order[-1]]
    return [(a, b) for i, hi in enumerate(order) for lo in order[i + 1:] for a in hi for b in lo]


@dataclass
class LabelState:
    """The labels log replayed."""

    human: dict[str, dict] = field(default_factory=dict)  # prompt id -> its person's label
    judge: dict[str, dict[tuple[int, int], dict]] = field(default_factory=dict)  # prompt -> (a<b) -> verdict
    judges: dict[str, dict] = field(default_factory=dict)  # judge id -> its judge_info record
    revisions: dict[str, list[dict]] = field(default_factory=dict)  # prompt -> revision records
    human_seqs: list[int] = field(default_factory=list)  # effective person labels, in the order given

    def last_human(self) -> dict | None:
        """The person's label an undo would take back (the latest given, not undone)."""
        if not self.human_seqs:
            return None
        seq = self.human_seqs[-1]
        return next(r for r in self.human.values() if r["seq"] == seq)

    def counts(self) -> dict[str, int]:
        out = {t: 0 for t in HUMAN_TYPES}
        for r in self.human.values():
            out[r["type"]] += 1
        return out


def replay(records: list[dict]) -> LabelState:
    undone = {r.get("target") for r in records if r.get("type") == "undo"}
    state = LabelState()
    for r in records:
        kind, prompt = r.get("type"), r.get("prompt")
        if kind in HUMAN_TYPES and r["seq"] not in undone:
            old = state.human.get(prompt)
            if old is not None:
                state.human_seqs.remove(old["seq"])
            state.human[prompt] = r
            state.human_seqs.append(r["seq"])
        elif kind == "judge":
            a, b = r["a"], r["b"]
            key, flipped = ((a, b), False) if a < b else ((b, a), True)
            state.judge.setdefault(prompt, {})[key] = flip_verdict(r) if flipped else r
        elif kind == "judge_info":
            state.judges[r["judge"]] = r
        elif kind == "revision":
            state.revisions.setdefault(prompt, []).append(r)
    return state


def flip_verdict(r: dict) -> dict:
    """The same verdict with a and b swapped (stored with a < b)."""
    p1, p2 = r["p_orders"]
    winner = {"a": "b", "b": "a"}.get(r["winner"], r["winner"])
    return {**r, "a": r["b"], "b": r["a"], "p_a_better": 1 - r["p_a_better"], "p_orders": [1 - p2, 1 - p1],
            "winner": winner}


def human_preferences(label: dict, n: int) -> dict[tuple[int, int], int] | None:
    """For a person's rank label: {(a, b) with a < b: +1 if the person prefers a, -1 if b} for every
    pair the ranking orders (agreement with a judge is counted on these); None for other labels."""
    if label.get("type") != "rank":
        return None
    tier = {c: t for t, cands in enumerate(label["order"]) for c in cands}
    out = {}
    for a in range(n):
        for b in range(a + 1, n):
            if a in tier and b in tier and tier[a] != tier[b]:
                out[(a, b)] = 1 if tier[a] < tier[b] else -1
    return out
