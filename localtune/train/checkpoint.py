"""Checkpoints that resume exactly: adapter weights (and a mode's own parts, e.g. the reward head),
optimizer state, loop state and data position.

Where they live and which are whole is the run directory's business (localtune/runs/checkpoints.py);
this module writes and reads their tensors. A checkpoint is written into a hidden temp directory
and renamed into place, so a visible checkpoint is always complete; older ones are deleted only
after the new one exists. Resume takes the newest checkpoint that loads, and says which ones it
passed over.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import asdict, fields
from pathlib import Path
from typing import Callable

import localtune  # noqa: F401
import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from localtune import events
from localtune.errors import RunError
from localtune.fsutil import _fsync_dir, atomic_save_safetensors, atomic_write_json
from localtune.lora import ADAPTER_FILE, LoraSpec, load_adapter_weights, save_adapter
from localtune.runs import RunDir, layout, read_run
from localtune.runs.checkpoints import (  # noqa: F401  (re-exported: the checkpoint API in one import)
    best_steps,
    checkpoint_dir,
    checkpoint_parts,
    checkpoint_problem,
    latest_checkpoint,
    list_checkpoints,
    prune,
    remove_partial_writes,
    temp_dir,
)
from localtune.train.loop import LoopState
from localtune.train.task import ModelPart


def save_parts(model, directory: Path, parts: tuple[ModelPart, ...] = ()) -> None:
    """A mode's own weights (train/task.py ModelPart), each in its file, written atomically."""
    for part in parts:
        atomic_save_safetensors(Path(directory) / part.file, part.weights(model), part.metadata(model))


def save_checkpoint(
    run_dir: Path,
    model,
    optimizer,
    state: LoopState,
    spec: LoraSpec,
    *,
    data_position: dict,
    keep: int = 3,
    pause: Callable[[], None] | None = None,
    protect=(),
    parts: tuple[ModelPart, ...] = (),
) -> Path:
    """Write the checkpoint of `state.step`; returns its directory. `pause` runs between its files
    (fault tests use it to land a kill mid-save). Older ones beyond `keep` are pruned, except the
    steps in `protect` (the best checkpoint). `parts`: the mode's own weights, saved beside the
    adapter and named in the trainer state."""
    pause = pause or (lambda: None)
    final = checkpoint_dir(run_dir, state.step)
    if (final / layout.STATE_FILE).exists():
        # The same step again (a stop right after a save point): its weights are the same, and
        # deleting the complete one to rewrite it would open a window with no checkpoint.
        prune(run_dir, keep, protect)
        return final
    tmp = temp_dir(final)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        save_adapter(model, tmp, spec)
        save_parts(model, tmp, parts)
        pause()
        atomic_save_safetensors(tmp / layout.OPTIMIZER_FILE, dict(tree_flatten(optimizer.state)))
        pause()
        saved = {"loop": asdict(state), "data": data_position}
        if parts:
            saved["parts"] = [p.file for p in parts]
        atomic_write_json(tmp / layout.STATE_FILE, saved)
        pause()
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing half-written
        raise
    _fsync_dir(final.parent)
    pause()
    prune(run_dir, keep, protect)
    return final


def _intact(run_dir: Path) -> str:
    last = latest_checkpoint(run_dir)
    return f"the last good checkpoint {last.name} is intact" if last else "no checkpoint was saved yet"


def _what(err: OSError) -> str:
    return "no space left on device" if err.errno == errno.ENOSPC else (err.strerror or str(err)).lower()


def _go_on(run_dir: Path, kind: str | None = None) -> str:
    kind = kind or read_run(run_dir).kind or "sft"
    return f"fix that, then go on with `localtune train {kind} --resume {run_dir}`"


def save_error(run_dir: Path, step: int, err: OSError) -> RunError:
    """A clear message for a save that failed (disk full, permissions), naming what is still good
    and the command that goes on from it."""
    where = f" ({err.filename})" if err.filename else ""
    return RunError(f"{run_dir}: {_what(err)} while saving checkpoint {layout.checkpoint_name(step)}{where}; "
                    f"{_intact(run_dir)}; {_go_on(run_dir)}")


def storage_error(run_dir: Path, err: OSError, kind: str) -> RunError:
    """Any other write of a run that failed (its log, metrics, record): what is still good, and
    the command that goes on once there is space again."""
    where = f" writing {err.filename}" if err.filename else ""
    try:
        intact = _intact(run_dir)
    except OSError:
        intact = "its checkpoints could not be listed"
    return RunError(f"{run_dir}: {_what(err)}{where}; {intact}; {_go_on(run_dir, kind)}")


def failed_before_start(run: RunDir) -> bool:
    """A run that failed before its first step (a damaged model, a full disk at start): it holds
    no checkpoint and no training step in its metrics (only phases), so the same command may simply
    be run again into it."""
    try:
        info = run.read()
    except RunError:
        return False
    trained = any(e.get("event") in ("train", "val") for e in run.metrics())  # phases are no progress
    return info.get("status") == "failed" and not list_checkpoints(run.path) and not trained


def record_end(run: RunDir, *, log: str | None = None, **fields) -> None:
    """Say in the record how a run ended, if the disk still lets us: on a full or read-only disk the
    error being raised matters more than the record of it."""
    try:
        run.update(**fields)
        if log:
            run.log(log)
    except (OSError, RunError):
        pass


def _loop_state(saved: dict) -> LoopState:
    """Tolerant of checkpoints written by other versions: unknown keys dropped, missing ones default."""
    known = {f.name for f in fields(LoopState)}
    return LoopState(**{k: v for k, v in saved.items() if k in known})


class DamagedCheckpoint(RunError):
    """A checkpoint whose files are missing, torn or unreadable (resume passes over it)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def read_checkpoint(path: Path, parts: tuple[ModelPart, ...] = ()) -> tuple[dict, dict, dict, dict]:
    """(adapter weights, optimizer arrays, trainer state, {part file: its weights}), all read before
    anything is applied, so a damaged checkpoint changes nothing. DamagedCheckpoint saying what is
    wrong (a part the mode needs and the checkpoint lacks is damage too)."""
    path = Path(path)
    problem = checkpoint_problem(path)
    if problem:
        raise DamagedCheckpoint(path, problem)
    try:
        info = json.loads((path / layout.STATE_FILE).read_text())
        missing = [p.file for p in parts if p.file not in checkpoint_parts(info)]
        if missing:
            raise DamagedCheckpoint(path, f"missing {', '.join(missing)}")
        weights = dict(mx.load(str(path / ADAPTER_FILE)))
        opt = dict(mx.load(str(path / layout.OPTIMIZER_FILE)))
        own = {p.file: dict(mx.load(str(path / p.file))) for p in parts}
    except DamagedCheckpoint:
        raise
    except Exception as e:  # mlx raises RuntimeError/ValueError on a damaged file
        raise DamagedCheckpoint(path, f"unreadable ({e})") from None
    loop = info.get("loop") if isinstance(info, dict) else None
    if not isinstance(loop, dict) or not isinstance(loop.get("step"), int) or not isinstance(info.get("data"), dict):
        # Resuming from defaults would restart at step 0 on the saved weights: silently wrong.
        raise DamagedCheckpoint(path, f"{layout.STATE_FILE} is damaged (no step or data position)")
    return weights, opt, info, own


def load_checkpoint(path: Path, model, optimizer, parts: tuple[ModelPart, ...] = ()) -> tuple[LoopState, dict]:
    """Restore adapter weights, the mode's parts and optimizer state; returns (loop state, data position)."""
    weights, opt, info, own = read_checkpoint(path, parts)
    load_adapter_weights(model, Path(path) / ADAPTER_FILE, weights=weights)
    for part in parts:
        part.load(model, own[part.file])
    optimizer.state = tree_unflatten(list(opt.items()))
    mx.eval(optimizer.state)
    return _loop_state(info["loop"]), info["data"]


def restore_latest(run_dir: Path, model, optimizer, on_event=events.ignore,
                   parts: tuple[ModelPart, ...] = ()) -> tuple[Path, LoopState, dict] | None:
    """Load the newest checkpoint that is whole; each newer one that is not is reported (an
    `unusable_checkpoint` event) and passed over. None when the run has no checkpoint at all;
    RunError when it has some but none loads, or when one does not fit the model (another base:
    the same for every checkpoint, so no fallback)."""
    found = list_checkpoints(run_dir)
    for path in reversed(found):
        try:
            state, position = load_checkpoint(path, model, optimizer, parts)
        except DamagedCheckpoint as e:
            on_event(events.UnusableCheckpoint(str(path), e.reason).to_dict())
            continue
        return path, state, position
    if found:
        raise RunError(f"{run_dir}: no checkpoint can be resumed from ({len(found)} found, all damaged; "
                       "see the log); start a new run")
    return None
