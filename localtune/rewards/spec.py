"""`--reward SPEC[:WEIGHT]`: what the user types, parsed and turned into reward sources.

    ifeval                        share of the row's IFEval instructions followed
    checks:FILE.yaml              share of your checks (localtune eval --checks) that pass
    length:MIN-MAX                1 inside MIN..MAX words, less outside
    python:PATH.py:FUNCTION       your function (prompt, completion, row) -> float | None
    reward-model:RUN              a reward model trained with localtune (`train reward`): its score
    judge:MODEL[:CONSTITUTION.yaml]  an AI judge's win rate inside the group; MODEL `policy` = the
                                  policy's base weights (adapter off), else a model loaded once

A trailing `:NUMBER` is the source's weight (default 1): `ifeval:2`, `python:r.py:f:0.5`.
Names (the metric `reward_<name>`) come from the text alone, so a task declares its metrics before
anything is loaded.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from localtune import events
from localtune.errors import LocaltuneError

# kind -> number of ':'-separated arguments before the optional weight
KINDS = {"ifeval": 0, "checks": 1, "length": 1, "python": 2, "reward-model": 1, "judge": 1}
USAGE = ("ifeval, checks:FILE.yaml, length:MIN-MAX, python:PATH.py:FUNCTION, reward-model:RUN or "
         "judge:MODEL[:CONSTITUTION.yaml] (MODEL policy: the policy's base), each optionally followed by :WEIGHT")


@dataclass(frozen=True)
class RewardSpec:
    text: str  # as typed
    kind: str
    args: tuple[str, ...]
    weight: float
    name: str  # the metric suffix: reward_<name>
    explicit_weight: bool = False  # the text ended in :WEIGHT

    @property
    def path(self) -> str | None:
        """The local file the source reads (checks, python, a judge's constitution), else None."""
        if self.kind == "judge":
            return self.args[1] if len(self.args) > 1 else None
        return self.args[0] if self.kind in ("checks", "python") else None

    def local_args(self) -> list[int]:
        """Which args are local paths (made absolute for the run's record)."""
        if self.kind in ("checks", "python", "reward-model"):
            return [0]
        if self.kind == "judge":  # MODEL is a path when it exists here (else "policy" or a hub id)
            return [0] * os.path.exists(os.path.expanduser(self.args[0])) + [1] * (len(self.args) > 1)
        return []


def _weight(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_spec(text: str) -> RewardSpec:
    """One --reward value; LocaltuneError saying what is wrong and what is accepted."""
    if not isinstance(text, str) or not text.strip():
        raise LocaltuneError(f"--reward: empty; use {USAGE}")
    text = text.strip()
    kind, _, rest = text.partition(":")
    if kind not in KINDS:
        raise LocaltuneError(f"--reward {text}: unknown kind {kind!r}; use {USAGE}")
    parts = rest.split(":") if rest else []
    arity = KINDS[kind]
    weight, explicit = 1.0, False
    if len(parts) > arity and (w := _weight(parts[-1])) is not None:
        weight, parts, explicit = w, parts[:-1], True
    if arity == 0 and parts:
        raise LocaltuneError(f"--reward {text}: {kind} takes no argument (a weight is a number: {kind}:2)")
    if arity == 1 and parts:
        parts = [":".join(parts)]  # a path or model id that itself has ':'
    if arity == 2 and len(parts) >= 2:
        parts = [":".join(parts[:-1]), parts[-1]]
    if len(parts) != arity or any(not p for p in parts):
        raise LocaltuneError(f"--reward {text}: {kind} needs {arity} argument(s); use {USAGE}")
    if weight <= 0:
        raise LocaltuneError(f"--reward {text}: the weight must be > 0")
    args = tuple(parts)
    if kind == "length" and not re.fullmatch(r"\d+-\d+", args[0]):
        raise LocaltuneError(f"--reward {text}: length takes MIN-MAX in words, e.g. length:20-120")
    if kind == "judge" and (m := re.fullmatch(r"(.+):([^:]+\.ya?ml)", args[0])):
        args = m.groups()  # judge:MODEL:CONSTITUTION.yaml
    if kind == "python" and not args[1].isidentifier():
        raise LocaltuneError(f"--reward {text}: {args[1]!r} is not a Python function name")
    base = {"python": f"python_{args[1]}" if kind == "python" else "",
            "reward-model": "reward_model"}.get(kind) or kind
    return RewardSpec(text, kind, args, weight, base, explicit)


def parse_specs(texts) -> list[RewardSpec]:
    """Several --reward values; names made unique (reward_checks, reward_checks_2, ...)."""
    if isinstance(texts, str):
        texts = [texts]
    specs = [parse_spec(t) for t in texts or ()]
    if not specs:
        raise LocaltuneError(f"no reward: give --reward SPEC ({USAGE})")
    seen: dict[str, int] = {}
    out = []
    for s in specs:
        seen[s.name] = seen.get(s.name, 0) + 1
        name = s.name if seen[s.name] == 1 else f"{s.name}_{seen[s.name]}"
        out.append(RewardSpec(s.text, s.kind, s.args, s.weight, name, s.explicit_weight))
    return out


def with_absolute_path(text: str) -> str:
    """The spec with its local files made absolute (the run's record must not depend on the
    directory it was started from); other specs unchanged."""
    s = parse_spec(text)
    args = [os.path.abspath(os.path.expanduser(a)) if i in s.local_args() else a for i, a in enumerate(s.args)]
    if args == list(s.args):
        return text
    return ":".join([s.kind, *args]) + (f":{s.weight:g}" if s.explicit_weight else "")


def open_sources(specs, *, model=None, tokenizer=None, model_path=None, on_event=None) -> list:
    """The RewardSource of each spec (texts or parsed RewardSpecs): files read, functions imported
    and models opened now, errors naming the spec. `model`/`tokenizer`/`model_path`: the loaded
    policy and where it was loaded from, shared by the sources that score with a model of the same
    base (a reward model or a judge), so the policy is never in memory twice."""
    from localtune.rewards.models import JudgeReward, RewardModelReward
    from localtune.rewards.python_fn import PythonReward
    from localtune.rewards.rules import ChecksReward, IFEvalReward, LengthReward

    sources = []
    parsed = [s for s in specs if isinstance(s, RewardSpec)]
    for s in parsed if parsed and len(parsed) == len(specs) else parse_specs(specs):
        if s.kind == "ifeval":
            src = IFEvalReward(s.weight, s.name, s.text)
        elif s.kind == "checks":
            src = ChecksReward(s.args[0], s.weight, s.name, s.text)
        elif s.kind == "length":
            low, high = (int(x) for x in s.args[0].split("-"))
            src = LengthReward(low, high, s.weight, s.name, s.text)
        elif s.kind == "python":
            src = PythonReward(s.args[0], s.args[1], s.weight, s.name, s.text)
        elif s.kind == "reward-model":
            src = RewardModelReward(s.args[0], s.weight, s.name, s.text, model=model, tokenizer=tokenizer,
                                    on_event=on_event or events.ignore)
        else:  # "judge": parse_specs knows no other kind
            src = JudgeReward.open(s.args[0], s.path, s.weight, s.name, s.text, model=model, tokenizer=tokenizer,
                                   model_path=model_path, on_event=on_event or events.ignore)
        sources.append(src)
    return sources
