"""A run's evaluations: RUN/eval/<name>/ with summary.json and answers.jsonl, written by
`localtune eval` (<name> = its time) and by eval during training (<name> = step-NNNNNN).

Read tolerantly, for lists (the TUI's Runs screen, scripts): a folder whose summary is missing or
unreadable is listed with the reason in `problem`; a torn answers line is skipped. The keys inside
the files are localtune/eval/results.py's contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from localtune.runs import layout
from localtune.runs.rundir import RunDir, parse_event


@dataclass
class EvalInfo:
    """One evaluation folder of a run."""

    name: str
    path: Path
    summary: dict = field(default_factory=dict)  # summary.json ({} when unreadable)
    problem: str | None = None

    @property
    def created(self) -> str:
        return str(self.summary.get("created", ""))

    @property
    def step(self) -> int | None:
        """The training step of an evaluation made during training, else None."""
        step = self.summary.get("step")
        return step if isinstance(step, int) and not isinstance(step, bool) else layout.step_of(self.name)

    @property
    def models(self) -> dict[str, dict]:
        """Model name -> its summary numbers (prompt_strict ... ended, loops, checks)."""
        models = self.summary.get("models")
        return models if isinstance(models, dict) else {}

    def answers(self) -> list[dict]:
        """The answers.jsonl rows (model, key, prompt, response, ended, loops, ...)."""
        try:
            with open(self.path / layout.EVAL_ANSWERS_FILE, encoding="utf-8", errors="replace") as f:
                return [row for row in map(parse_event, f) if row is not None]
        except OSError:
            return []


def read_eval(path: str | Path) -> EvalInfo:
    path = Path(path)
    info = EvalInfo(path.name, path)
    try:
        summary = json.loads((path / layout.EVAL_SUMMARY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        info.problem = f"no {layout.EVAL_SUMMARY_FILE} (unfinished or not an evaluation)"
        return info
    except (OSError, ValueError) as e:
        info.problem = f"{layout.EVAL_SUMMARY_FILE} unreadable: {e}"
        return info
    if isinstance(summary, dict):
        info.summary = summary
    else:
        info.problem = f"{layout.EVAL_SUMMARY_FILE} is not a JSON object"
    return info


def list_evals(run_dir: str | Path) -> list[EvalInfo]:
    """The run's evaluations, oldest first (those made during training in step order)."""
    root = RunDir(run_dir).path / layout.EVAL_DIR
    if not root.is_dir():
        return []
    found = [read_eval(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda e: (e.created, e.step if e.step is not None else -1, e.name))
