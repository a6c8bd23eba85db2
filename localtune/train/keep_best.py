"""--keep-best METRIC and --patience K: which evaluated step is the best so far, and when to stop.

At each eval point the loop hands the evaluation's numbers to `KeepBest.update`; the tracker says
whether the value improved on the best so far (then that step's checkpoint becomes the best one,
never pruned) and whether `patience` evaluations in a row have passed without improving (then the
run stops early). The run's final adapter is the best checkpoint's (session.finish).

--keep-best-if "METRIC>=V[,METRIC<=V...]" narrows the candidates to the evaluations that meet every
condition: the best instruction accuracy among the checkpoints whose answers still end, say, when
a policy can raise one metric by giving up another (a GRPO run that learns short answers). An
evaluation that misses a condition counts as one without a better value (patience counts it).

Its state lives in the loop state (`LoopState.extra[KeepBest.key]`), so it is saved in every
checkpoint and a resume continues with exactly the best value, best step and count it had.
The evaluation before any training step (step 0) is the curve's starting point, not a candidate:
the run's adapter is one it trained (TRL's load_best_model_at_end considers its checkpoints only).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import asdict, dataclass
from typing import ClassVar

from localtune import events
from localtune.errors import LocaltuneError

# eval_* metrics a run declares only once it has read its checks file: the direction by prefix
HIGHER_PREFIXES = ("eval_check_", "eval_score_")


def _declared() -> dict[str, events.Metric]:
    """Every metric a run can declare: the built-in ones and the eval_* of eval during training."""
    from localtune.eval.during_training import eval_metrics

    return events.metric_set(eval_metrics(ifeval=True, check_names=(), checks=True))


def direction(metric: str) -> str | None:
    """"lower" / "higher" for a metric --keep-best can compare, None otherwise."""
    known = _declared()
    if metric in known:
        return known[metric].better
    if any(metric.startswith(p) and len(metric) > len(p) for p in HIGHER_PREFIXES):
        return "higher"
    return None


def metric_problem(metric: str, *, valid: bool, eval_file: bool, eval_checks: bool) -> str | None:
    """Why --keep-best METRIC cannot work with these options, or None."""
    better = direction(metric)
    if better is None:
        return (f"keep_best {metric!r}: not a metric with a better direction; use val_loss, "
                "val_reward_accuracy, or an eval_* metric (eval_checks_passed, eval_check_<name>, eval_loops, "
                "eval_ended, eval_prompt_strict, eval_instruction_strict ...)")
    return missing_file("keep_best", metric, valid=valid, eval_file=eval_file, eval_checks=eval_checks)


def missing_file(option: str, metric: str, *, valid: bool, eval_file: bool, eval_checks: bool) -> str | None:
    """Which file `metric` needs that the run lacks (as "OPTION METRIC: needs ..."), or None."""
    if metric.startswith("val_") and not valid:
        return f"{option} {metric}: needs valid (a validation file to compute it on)"
    if metric.startswith("eval_") and not eval_file:
        return f"{option} {metric}: needs eval_file (the prompts whose answers are judged)"
    if metric.startswith(("eval_check_", "eval_checks_")) and not eval_checks:
        return f"{option} {metric}: needs eval_checks (the checks file that defines it)"
    return None


_CONDITION = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def parse_conditions(spec: str | None) -> tuple[tuple[str, str, float], ...]:
    """"eval_ended>=0.95, eval_loops<=0.1" -> (("eval_ended", ">=", 0.95), ("eval_loops", "<=", 0.1)).
    Raises ValueError naming the part that is not METRIC OP NUMBER."""
    if spec is None:
        return ()
    out = []
    for part in spec.split(","):
        if not part.strip():
            raise ValueError(f"an empty condition in {spec!r} (a stray comma?)")
        m = _CONDITION.match(part)
        if not m:
            raise ValueError(f"{part.strip()!r} is not METRIC>=NUMBER (or <=, >, <), e.g. eval_ended>=0.95")
        out.append((m.group(1), m.group(2), float(m.group(3))))
    return tuple(out)


def conditions_problem(spec: str, *, valid: bool, eval_file: bool, eval_checks: bool) -> str | None:
    """Why --keep-best-if SPEC cannot work with these options, or None."""
    try:
        conditions = parse_conditions(spec)
    except ValueError as e:
        return f"keep_best_if: {e}"
    for metric, _, _ in conditions:
        # a condition needs no better direction (eval_mean_tokens>=10), only a number an evaluation reports
        evaluated = metric.startswith(("val_", "eval_")) and (metric in _declared() or direction(metric) is not None)
        if not evaluated:
            return (f"keep_best_if {metric!r}: not a number the evaluations report; use val_loss, "
                    "val_reward_accuracy or an eval_* metric (eval_ended, eval_loops, eval_mean_tokens ...)")
        problem = missing_file("keep_best_if", metric, valid=valid, eval_file=eval_file, eval_checks=eval_checks)
        if problem:
            return problem
    for metric, op, value in conditions:
        if _is_share(metric) and not 0 <= value <= 1:  # "eval_ended>=95" could never be met
            return f"keep_best_if {metric}{op}{value:g}: {metric} is a share from 0 to 1 (e.g. 0.95, not 95)"
    return None


def _is_share(metric: str) -> bool:
    """Whether a metric is a share in [0, 1]: the answer checks, IFEval accuracies, reward accuracy."""
    return metric == "val_reward_accuracy" or (metric.startswith("eval_") and metric != "eval_mean_tokens")


@dataclass
class KeepBest:
    key: ClassVar[str] = "keep_best"  # its entry in LoopState.extra
    metric: str
    better: str  # "lower" | "higher"
    patience: int | None = None
    conditions: tuple = ()  # (metric, op, value): what an evaluation must meet to be a candidate
    best: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # evaluations in a row since the last improvement
    stopped_at: int | None = None  # the step the run stopped early at

    @classmethod
    def for_config(cls, cfg, saved: dict | None = None) -> "KeepBest | None":
        """The tracker of a run (None without --keep-best), continuing `saved` (a checkpoint's)."""
        if not cfg.keep_best:
            return None
        tracker = cls(cfg.keep_best, direction(cfg.keep_best) or "lower", cfg.patience,
                      parse_conditions(getattr(cfg, "keep_best_if", None)))
        if saved:
            tracker.best, tracker.best_step = saved.get("best"), saved.get("best_step")
            tracker.bad_evals = int(saved.get("bad_evals", 0))
        return tracker

    def improves(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.better == "lower" else value > self.best

    @property
    def condition_text(self) -> str | None:
        """The conditions as the user wrote them, normalised ("eval_ended>=0.95"), or None."""
        return ", ".join(f"{m}{op}{v:g}" for m, op, v in self.conditions) or None

    def meets_conditions(self, values: dict) -> bool:
        return all(_finite(values.get(m)) and _OPS[op](float(values[m]), v) for m, op, v in self.conditions)

    def update(self, step: int, values: dict) -> bool:
        """Take one evaluation's numbers; True when the run should stop now (patience ran out).
        A non-finite value, or an evaluation that misses a --keep-best-if condition, counts as no
        improvement; a metric the evaluation does not report at all is an error (a typo in a check
        name, a metric of another mode), raised at the first one."""
        for metric, flag in ((self.metric, "--keep-best"), *((m, "--keep-best-if") for m, _, _ in self.conditions)):
            if metric not in values:
                shown = ", ".join(sorted(k for k in values if k != "val_time")) or "nothing"
                raise LocaltuneError(f"{flag} {metric}: this run's evaluations do not report it "
                                     f"(they report {shown})")
        if step == 0:
            return False
        value = values[self.metric]
        if _finite(value) and self.meets_conditions(values) and self.improves(float(value)):
            self.best, self.best_step, self.bad_evals = float(value), step, 0
            return False
        self.bad_evals += 1
        if self.patience is not None and self.bad_evals >= self.patience:
            self.stopped_at = step
            return True
        return False

    def state(self) -> dict:  # conditions: from the run's config, which a resume keeps
        """What a checkpoint keeps (LoopState.extra[KeepBest.key])."""
        return {k: v for k, v in asdict(self).items() if k in ("metric", "best", "best_step", "bad_evals")}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
