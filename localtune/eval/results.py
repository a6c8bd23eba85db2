"""What an evaluation produces: one `Answer` per model and prompt, one `ModelEval` per model, and
the numbers scripts read (summary.json's per-model object, answers.jsonl's rows). The key names
here are a contract: scripts and the TUI read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localtune.data.prompts import PromptRow
from localtune.eval.ifeval import FAMILIES, InstructionResult, family
from localtune.generate import Completion

IFEVAL_NUMBERS = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")
HEALTH_NUMBERS = ("ended", "loops", "mean_tokens")


@dataclass
class Answer:
    """One model's answer to one prompt row, with everything judged about it."""

    model: str
    row: PromptRow
    completion: Completion
    loops: bool
    instructions: list[InstructionResult] = field(default_factory=list)  # IFEval rows only
    checks: dict[str, bool] = field(default_factory=dict)  # user checks that apply to this row
    scores: dict[str, float] = field(default_factory=dict)  # extra scorers (e.g. a reward model)

    @property
    def ended(self) -> bool:
        return self.completion.ended

    def to_json(self) -> dict:
        """One answers.jsonl row."""
        row = self.row
        out = {
            "model": self.model,
            "key": row.key,
            "source": row.kind,
            "prompt": row.prompt,
            "response": self.completion.text,
            "instruction_id_list": list(row.instruction_id_list),
            "follow_instruction_list": [r.strict for r in self.instructions],
            "follow_instruction_list_loose": [r.loose for r in self.instructions],
            "ended": self.ended,
            "loops": self.loops,
            "tokens": len(self.completion.token_ids),
            "finish_reason": self.completion.finish_reason,
            "checks": self.checks,
            "scores": self.scores,
        }
        if len(row.messages) > 1:  # a system prompt or earlier turns: the whole conversation
            out["messages"] = row.messages
        if row.kind == "ifeval":
            out["kwargs"] = row.kwargs
        if row.reference is not None:
            out["reference"] = row.reference
        return out


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


@dataclass
class ModelEval:
    """All answers of one model (a Variant, or the model as it is during training)."""

    name: str
    answers: list[Answer]
    adapter: str | None = None
    seconds: float = 0.0

    def summary(self) -> dict:
        """summary.json's object for this model. IFEval numbers are None without IFEval rows."""
        ifeval = [a for a in self.answers if a.row.kind == "ifeval"]
        instructions = [r for a in ifeval for r in a.instructions]
        families = {}
        for fam in FAMILIES:
            rs = [r for r in instructions if family(r.instruction_id) == fam]
            if rs:
                families[fam] = {"instructions": len(rs), "strict": _share([r.strict for r in rs]),
                                 "loose": _share([r.loose for r in rs])}
        check_names = list(dict.fromkeys(n for a in self.answers for n in a.checks))
        score_names = list(dict.fromkeys(n for a in self.answers for n in a.scores))
        n = len(self.answers)
        return {
            "adapter": self.adapter,
            "answers": n,
            "ifeval_prompts": len(ifeval),
            "prompt_strict": _share([all(r.strict for r in a.instructions) for a in ifeval]),
            "prompt_loose": _share([all(r.loose for r in a.instructions) for a in ifeval]),
            "instruction_strict": _share([r.strict for r in instructions]),
            "instruction_loose": _share([r.loose for r in instructions]),
            "ended": _share([a.ended for a in self.answers]),
            "loops": _share([a.loops for a in self.answers]),
            "mean_tokens": sum(len(a.completion.token_ids) for a in self.answers) / n if n else None,
            "checks": {c: _share([a.checks[c] for a in self.answers if c in a.checks]) for c in check_names},
            # the share of answers (those any check applies to) that pass every check that applies
            "checks_passed": _share([all(a.checks.values()) for a in self.answers if a.checks]),
            "scores": {s: sum(a.scores[s] for a in self.answers if s in a.scores)
                       / sum(1 for a in self.answers if s in a.scores) for s in score_names},
            "families": families,
            "seconds": round(self.seconds, 3),
        }

    def metrics(self, prefix: str = "eval_") -> dict[str, float]:
        """Flat numbers for the run's metrics log (eval during training): eval_prompt_strict, eval_loops,
        eval_checks_passed, eval_check_<name>, eval_score_<name> ...; numbers that do not apply are
        left out. Their Metric declarations: eval.during_training.eval_metrics."""
        s = self.summary()
        out = {f"{prefix}{k}": s[k] for k in IFEVAL_NUMBERS + HEALTH_NUMBERS + ("checks_passed",)
               if s[k] is not None}
        out.update({f"{prefix}check_{k}": v for k, v in s["checks"].items() if v is not None})
        out.update({f"{prefix}score_{k}": v for k, v in s["scores"].items()})
        return out
