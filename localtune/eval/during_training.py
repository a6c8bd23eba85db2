"""Eval during training (`train sft|dpo --eval-file FILE [--eval-checks FILE] --eval-every N`): at
each eval point the model as it is answers the same prompts `localtune eval` would ask, greedy by
default, and the answers are judged the same way (runner.evaluate). The numbers go into the run's
metrics log as `eval_*` fields of the `val` event; the answers into RUN/eval/step-NNNNNN/.

Draws are seeded from the run's seed and the step, so a resumed run answers exactly as an unbroken
one (greedy needs no seed; sampling with --eval-temperature does).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from localtune.events import Metric, PhaseReporter

PREFIX = "eval_"


def eval_metrics(*, ifeval: bool, check_names=(), checks: bool = False) -> tuple[Metric, ...]:
    """How the eval_* numbers are shown (plot "answers", the summaries, the card, `localtune runs`)
    and which direction is better (--keep-best)."""
    def m(key, label, better, *, plot=True, summary=False, fmt=".2f"):
        return Metric(PREFIX + key, label, plot="answers" if plot else None, fmt=fmt, summary=summary,
                      card=True, final=True, better=better)

    out = [m("ended", "ended", "higher", summary=True), m("loops", "loops", "lower", summary=True),
           m("mean_tokens", "answer tokens", None, plot=False, fmt=".1f")]
    if ifeval:
        out += [m("prompt_strict", "IFEval prompt strict", "higher", summary=True),
                m("prompt_loose", "IFEval prompt loose", "higher", plot=False),
                m("instruction_strict", "IFEval instr strict", "higher"),
                m("instruction_loose", "IFEval instr loose", "higher", plot=False)]
    if checks or check_names:
        out.append(m("checks_passed", "checks passed", "higher", summary=True))
        out += [m(f"check_{name}", f"check {name}", "higher", plot=False) for name in check_names]
    return tuple(out)


def is_ifeval_file(path: Path) -> bool:
    """Whether a prompts file is in IFEval's schema (its first row has an instruction_id_list)."""
    from localtune.data.reader import iter_rows

    try:
        first = next(iter(iter_rows(path)), None)
    except (OSError, UnicodeDecodeError):
        return False  # read_prompt_file says what is wrong with it
    return first is not None and isinstance(first.value, dict) and "instruction_id_list" in first.value


def read_eval_rows(spec: str, on_event=None) -> list:
    """The prompt rows of --eval-file: IFEval rows (a file or a hub id such as google/IFEval), a
    prompts file (plain lines, or JSON rows with messages/prompt: a chat's last answer is removed),
    or chat rows in another dataset format."""
    from localtune.data.prompts import read_data_prompts, read_ifeval, read_prompt_file
    from localtune.errors import DataError

    path = Path(spec).expanduser()
    if not path.exists() or is_ifeval_file(path):
        return read_ifeval(spec, on_event=on_event)
    try:
        return read_prompt_file(path)
    except DataError:
        rows, problems = read_data_prompts(path, on_event=on_event)
        if problems or not rows:
            raise
        return rows


@dataclasses.dataclass
class AnswerEval:
    """What an eval point runs: `rows` answered with `sampling`, judged with `checks`."""

    rows: list
    checks: list
    sampling: object  # generate.Sampling
    source: str = ""

    @classmethod
    def for_config(cls, cfg, on_event=None) -> "AnswerEval | None":
        """The evaluation a run's config asks for (None without --eval-file); problems in the files
        are errors now, before the model loads."""
        if not cfg.eval_file:
            return None
        from localtune.eval.checks import load_checks
        from localtune.eval.runner import check_rows
        from localtune.generate import Sampling

        rows = read_eval_rows(cfg.eval_file, on_event=on_event)
        check_rows(rows)
        checks = load_checks(cfg.eval_checks) if cfg.eval_checks else []
        sampling = Sampling(temperature=cfg.eval_temperature, max_tokens=cfg.eval_max_tokens,
                            seed=cfg.seed).validate()
        return cls(rows, checks, sampling, str(cfg.eval_file))

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return eval_metrics(ifeval=any(r.kind == "ifeval" for r in self.rows),
                            check_names=[c.name for c in self.checks if any(c.applies_to(r.kind) for r in self.rows)])

    def __call__(self, model, tokenizer, step: int, *, phase: PhaseReporter | None = None,
                 out_dir: Path | None = None) -> dict:
        """The eval_* numbers of the model as it is now; answers written to `out_dir` if given.
        `phase` gets "evaluating n/N" (answers done) while the answers are generated."""
        from localtune.eval.runner import evaluate

        progress: Callable[[int], None] = (phase.counter("evaluating", len(self.rows)) if phase
                                           else (lambda done: None))

        def on_event(e: dict) -> None:
            if e.get("stage") == "generate":
                progress(int(e.get("done") or 0))

        sampling = dataclasses.replace(self.sampling, seed=self.sampling.seed + step)
        result = evaluate(model, tokenizer, self.rows, sampling, name=f"step {step}", checks=self.checks,
                          on_event=on_event)
        if out_dir is not None:
            self.write(result, step, sampling, out_dir)
        return result.metrics(PREFIX)

    def write(self, result, step: int, sampling, out_dir: Path) -> None:
        """summary.json and answers.jsonl of this eval point (rewritten when a resume replays it)."""
        from localtune.eval.files import write_results

        meta = {"step": step, "during_training": True, "sampling": sampling.to_dict(),
                "prompt_sets": [{"kind": self.rows[0].kind, "source": self.source, "rows": len(self.rows)}],
                "checks": [c.describe() for c in self.checks]}
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_results(out_dir, [result], json.loads(json.dumps(meta, default=str)))
