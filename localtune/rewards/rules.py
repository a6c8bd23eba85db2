"""Rule rewards: no model involved, the same verdicts `localtune eval` gives.

- `ifeval`: the share of the row's IFEval instructions the answer follows (strict, as eval's
  headline numbers); rows without instructions get no verdict (None).
- `checks:FILE.yaml`: the share of the user checks (eval's `--checks` file) that apply to the row's
  kind and pass; None where none applies.
- `length:MIN-MAX`: words in the answer (whitespace-separated): 1 inside [MIN, MAX], falling off
  smoothly outside (words/MIN below, MAX/words above), so a nearly-right answer still beats a far one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localtune.errors import LocaltuneError


@dataclass
class IFEvalReward:
    weight: float = 1.0
    name: str = "ifeval"
    spec: str = "ifeval"

    def score(self, rows, prompts, completions) -> list[float | None]:
        from localtune.eval.ifeval import check

        out = []
        for row, text in zip(rows, completions):
            if not row.instruction_id_list:
                out.append(None)
                continue
            results = check(text, row.instruction_id_list, row.kwargs, row.prompt)
            out.append(sum(r.strict for r in results) / len(results))
        return out

    def check_rows(self, rows) -> None:
        """Refuse before any generation: no row has instructions, or some cannot be checked."""
        from localtune.eval.runner import check_rows

        if not any(r.instruction_id_list for r in rows):
            raise LocaltuneError("--reward ifeval needs IFEval-schema prompt rows (instruction_id_list and "
                                 "kwargs); none of the prompts has instructions")
        check_rows(rows)


@dataclass
class ChecksReward:
    path: str
    weight: float = 1.0
    name: str = "checks"
    spec: str = ""
    checks: list = field(default_factory=list)

    def __post_init__(self):
        from localtune.eval.checks import load_checks

        self.spec = self.spec or f"checks:{self.path}"
        self.checks = load_checks(self.path)

    def score(self, rows, prompts, completions) -> list[float | None]:
        from localtune.eval.checks import run_checks

        out = []
        for row, text in zip(rows, completions):
            passed = run_checks(text, self.checks, row.kind)
            out.append(sum(passed.values()) / len(passed) if passed else None)
        return out


@dataclass
class LengthReward:
    low: int
    high: int
    weight: float = 1.0
    name: str = "length"
    spec: str = ""

    def __post_init__(self):
        if not 0 < self.low <= self.high:
            raise LocaltuneError(f"--reward length:{self.low}-{self.high}: need 0 < MIN <= MAX (words)")
        self.spec = self.spec or f"length:{self.low}-{self.high}"

    def score(self, rows, prompts, completions) -> list[float | None]:
        return [self.value(len(text.split())) for text in completions]

    def value(self, words: int) -> float:
        if words < self.low:
            return words / self.low
        if words > self.high:
            return self.high / words
        return 1.0
