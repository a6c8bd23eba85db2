"""An evaluation's folder: DIR/summary.json and DIR/answers.jsonl (names and keys in results.py).

Default DIR: RUN/eval/<timestamp>/ of the first evaluated run, else ./eval/<timestamp>/. A DIR that
exists must be empty: localtune never writes into a folder it did not create. Files are written
atomically, answers first, so a summary.json is only ever next to complete answers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from localtune.errors import LocaltuneError
from localtune.eval.results import ModelEval
from localtune.fsutil import atomic_write_json, atomic_write_text
from localtune.runs import layout

SUMMARY_FILE = layout.EVAL_SUMMARY_FILE
ANSWERS_FILE = layout.EVAL_ANSWERS_FILE
FORMAT_VERSION = 1


def default_out_dir(first_adapter=None, *, now: float | None = None) -> Path:
    from localtune.runs import RunDir

    def where(name: str) -> Path:
        return RunDir(first_adapter).eval_dir(name) if first_adapter else Path("eval") / name

    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path, k = where(stamp), 2
    while path.exists():  # two evals in one second
        path, k = where(f"{stamp}-{k}"), k + 1
    return path


def check_out_dir(path) -> Path:
    """LocaltuneError when DIR exists and is not an empty folder (checked before generating)."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise LocaltuneError(f"{path}: exists and is not a folder; choose another --out")
        if any(path.iterdir()):
            raise LocaltuneError(f"{path}: exists and is not empty; choose another --out "
                                 "(localtune writes only into a new or empty folder)")
    return path


def prepare_out_dir(path) -> Path:
    """Create DIR (and its parents) after check_out_dir's test."""
    path = check_out_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LocaltuneError(f"{path}: cannot create the output folder: {e}") from None
    return path


def summary_json(evals: list[ModelEval], meta: dict) -> dict:
    """summary.json: `meta` (model_path, sampling, prompt sets, checks ...) and one object per model
    under "models", keyed by model name in the order evaluated."""
    return {"format": FORMAT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta,
            "models": {e.name: e.summary() for e in evals}}


def write_results(out_dir, evals: list[ModelEval], meta: dict) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    lines = "".join(json.dumps(a.to_json(), ensure_ascii=False) + "\n" for e in evals for a in e.answers)
    answers = atomic_write_text(out_dir / ANSWERS_FILE, lines)
    summary = atomic_write_json(out_dir / SUMMARY_FILE, summary_json(evals, meta))
    return summary, answers


def read_summary(out_dir) -> dict:
    path = Path(out_dir) / SUMMARY_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LocaltuneError(f"{path}: no evaluation here") from None
    except (OSError, ValueError) as e:
        raise LocaltuneError(f"{path}: unreadable: {e}") from None
