"""Reading runs: one run's record with its effective status (RunInfo), the list of runs under a
root, and deleting a run. Tolerant: a missing or corrupt record is reported, never raised.

The status rule lives here and only here: a record that says "starting" or "running" is believed
only while the process that wrote it still holds the run's lock (same pid, alive, not a zombie, the
same process by its start time); otherwise the trainer was killed without a chance to say so, and
the run reads "interrupted" (resumable).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from localtune import events
from localtune.errors import RunError
from localtune.runs import layout
from localtune.runs.checkpoints import latest_good_checkpoint
from localtune.runs.liveness import holder_running
from localtune.runs.rundir import RunDir, read_metrics

# The status words. A trainer writes LIVE ones while it works and an ENDED one when it ends;
# "interrupted" is never written: it is what run_status reads for a live record whose trainer is gone.
LIVE = ("starting", "running")
ENDED = ("finished", "failed", "stopped")
INTERRUPTED = "interrupted"
RESUMABLE = ("stopped", "failed", INTERRUPTED)  # ended before its last step: resume goes on from there
RECORD_VERSION = 2  # 2: paths in the config are absolute; data, base and adapter hashes
# config keys that may name local paths
PATH_KEYS = ("model", "data", "valid", "adapter", "out", "eval_file", "eval_checks")


def default_run_name(kind: str) -> str:
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def default_run_dir(kind: str, root: str | Path = layout.DEFAULT_ROOT) -> Path:
    return Path(root) / default_run_name(kind)


def run_status(record: dict, holder: dict | None) -> str:
    """The effective status of a run from its record and its lock holder (RunDir.lock_holder)."""
    status = record.get("status") or "starting"
    if status not in LIVE:
        return status
    pid = record.get("pid")
    if not pid:
        return status  # written before the trainer recorded itself (no run yet to be killed)
    if holder is None or holder.get("pid") != pid or not holder_running(holder):
        return INTERRUPTED  # killed without a chance to say so; resumable
    return status


@dataclass
class RunInfo:
    """A run as readers see it. `record` is run.json as read ({} when missing or unreadable, and
    then `problem` says why); `status` is the effective status (run_status)."""

    path: Path
    record: dict = field(default_factory=dict)
    status: str = "starting"
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str | None:
        return self.record.get("kind")

    @property
    def config(self) -> dict:
        cfg = self.record.get("config")
        return cfg if isinstance(cfg, dict) else {}

    @property
    def is_training(self) -> bool:
        """A trainer is at work on it now (exporting or chatting reads a checkpoint in flux)."""
        return self.status in LIVE

    @property
    def iters(self) -> int | None:
        it = self.record.get("iters") or self.config.get("iters")
        return int(it) if isinstance(it, (int, float)) and it else None

    @cached_property
    def checkpoint(self) -> Path | None:
        """The newest good checkpoint, None when there is none."""
        return latest_good_checkpoint(self.path)

    @property
    def checkpoint_step(self) -> int | None:
        return layout.step_of(self.checkpoint) if self.checkpoint else None

    @property
    def metrics(self) -> dict[str, events.Metric]:
        """The metric registry for this run: the built-in metrics and the ones its mode declared."""
        return events.metric_set(self.record.get("metrics") or ())

    @property
    def model(self) -> str | None:
        """The base model to load for this run: the resolved path it trained on, else its --model."""
        return self.resolve(self.record.get("model_path")) or self.resolve(self.config.get("model"))

    def resolve(self, value: str | None) -> str | None:
        """A path recorded by the run, as usable from here: records before version 2 stored paths
        relative to the directory the run was started from (see `notes`)."""
        if not value or self.record.get("record_version", 1) >= 2 or Path(value).expanduser().is_absolute():
            return value
        return os.path.abspath(value) if Path(value).exists() else value

    @property
    def notes(self) -> list[str]:
        """What a reader should say about this run's paths: an older record's relative paths are
        read from the current directory, which may not be where the run was started."""
        if self.record.get("record_version", 1) >= 2:
            return []
        out = []
        for key, value in [("model_path", self.record.get("model_path"))] + [
                (k, self.config.get(k)) for k in PATH_KEYS]:
            if isinstance(value, str) and value != self.resolve(value):
                out.append(f"{self.record_path}: {key} {value!r} is relative to the directory the run was "
                           f"started from (an older record); reading it as {self.resolve(value)}")
        return out

    @property
    def reader_notes(self) -> list[str]:
        """What to tell someone about to use this run's adapter (export, chat): a run still
        training gives the checkpoint of the moment; an older record's paths are read from here."""
        out = []
        if self.is_training:
            step = self.checkpoint_step
            at = f"the checkpoint of step {step}" if step is not None else "the adapter saved so far"
            out.append(f"{self.path} is still training: using {at}")
        return out + self.notes

    @property
    def record_path(self) -> Path:
        return self.path / layout.RUN_FILE

    def final_values(self) -> dict:
        """The last value of each metric marked `final`, as {"final_<key>": value}."""
        finals = {k: None for k, m in self.metrics.items() if m.final}
        for e in read_metrics(self.path):
            for k in finals:
                if isinstance(e.get(k), (int, float)):
                    finals[k] = e[k]
        return {f"final_{k}": v for k, v in finals.items()}

    def as_row(self) -> dict:
        """The record flattened for tables (list_runs): name, path, status and final values."""
        return {"name": self.name, "path": str(self.path), **self.record, "status": self.status,
                **({"error": self.problem} if self.problem else {}), **self.final_values()}


def read_run(path: str | Path) -> RunInfo:
    """A run's record and effective status; never raises."""
    run = RunDir(path)
    try:
        record = run.read()
    except RunError as e:
        missing = not run.record_path.exists()
        # No record yet: a trainer that is still starting (or one that never got that far).
        return RunInfo(run.path, {}, "starting" if missing else "unreadable", None if missing else str(e))
    return RunInfo(run.path, record, run_status(record, run.lock_holder()))


def tell_readers(path: str | Path, on_event) -> None:
    """Notice events for what someone about to use a run's adapter should know (reader_notes).
    Harmless for a directory that is not one of our runs (an mlx_lm adapter): nothing to say."""
    for note in read_run(path).reader_notes:
        on_event(events.Notice(note).to_dict())


def owning_run(adapter: str | Path) -> Path | None:
    """The run directory an adapter directory belongs to: itself, or for a checkpoint
    (RUN/checkpoints/step-N) its run; None for an adapter outside any run (mlx_lm's)."""
    adapter = Path(adapter)
    for candidate in (adapter, adapter.parent.parent if adapter.parent.name == layout.CHECKPOINTS_DIR else None):
        if candidate is not None and (candidate / layout.RUN_FILE).exists():
            return candidate
    return None


def is_run_dir(path: str | Path) -> bool:
    """A directory localtune made for a run: a record that is a run's, or (a record localtune
    cannot read) its log beside it."""
    path = Path(path)
    if path.is_symlink() or not (path / layout.RUN_FILE).is_file():
        return False
    info = read_run(path)
    return bool(info.record.get("kind") or info.record.get("config")) or (path / layout.LOG_FILE).is_file()


def list_runs(root: str | Path = layout.DEFAULT_ROOT) -> list[dict]:
    """Every run under `root`, newest first: its record, effective status and final metric values
    (`final_train_loss`, `final_val_loss`, ...). A run whose record is unreadable is listed with
    status "unreadable" and the reason in "error"."""
    root = Path(root)
    if not root.is_dir():
        return []
    rows = [read_run(d).as_row() for d in root.iterdir() if d.is_dir() and (d / layout.RUN_FILE).exists()]
    return sorted(rows, key=lambda r: r.get("started") if isinstance(r.get("started"), (int, float)) else 0,
                  reverse=True)


def has_adapter(path: str | Path) -> bool:
    """The directory holds a saved adapter (a run's, or an mlx_lm adapter folder)."""
    return RunDir(path).adapter_path.exists()


def adapter_runs(root: str | Path = layout.DEFAULT_ROOT) -> list[tuple[str, str]]:
    """(name, path) of every directory under root holding an adapter (ours or mlx_lm's), by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [(d.name, str(d)) for d in sorted(root.iterdir()) if has_adapter(d)]


def delete_run(path: str | Path) -> None:
    """Delete a run directory. Refuses anything that is not one (see is_run_dir) and a run that
    is still training."""
    path = Path(path)
    if not is_run_dir(path):
        raise RunError(f"{path}: not a run directory; not deleting it")
    info = read_run(path)
    if info.is_training:
        raise RunError(f"{path}: still training (process {info.record.get('pid')}); stop it first")
    try:
        shutil.rmtree(path)
    except OSError as e:
        raise RunError(f"{path}: could not delete: {e.strerror or e}") from None


def record_of(path: str | Path) -> dict:
    """The record of a run read tolerantly ({} when missing or unreadable), e.g. for an
    mlx_lm adapter directory, which has none."""
    return read_run(path).record
