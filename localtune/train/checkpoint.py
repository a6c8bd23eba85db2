"""Checkpoints that resume exactly: adapter weights, optimizer state, loop state and data position.

Layout: <run>/checkpoints/step-NNNNNN/{adapters.safetensors, optimizer.safetensors,
trainer_state.json, adapter_config.json}. A checkpoint is written into a hidden temp directory and
renamed into place, so a directory named step-N is always complete; older ones are deleted only
after the new one exists (renamed to a hidden name first, so a kill mid-delete leaves no torn
step-N). Hidden names (`.step-N.tmp`, `.name.XXXX.tmp`) are partial writes of a killed process:
never read, removed by `remove_partial_writes` when the run resumes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from localtune.errors import RunError
from localtune.fsutil import _fsync_dir, atomic_save_safetensors, atomic_write_json
from localtune.lora import LoraSpec, load_adapter_weights, save_adapter
from localtune.train.loop import LoopState

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:06d}"


def save_checkpoint(
    run_dir: Path,
    model,
    optimizer,
    state: LoopState,
    spec: LoraSpec,
    *,
    data_position: dict,
    config_fingerprint: dict,
    keep: int = 3,
) -> Path:
    final = checkpoint_dir(run_dir, state.step)
    if (final / STATE_FILE).exists():
        # The same step again (a stop right after a save point): its weights are the same, and
        # deleting the complete one to rewrite it would open a window with no checkpoint.
        prune(run_dir, keep)
        return final
    tmp = final.parent / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        save_adapter(model, tmp, spec)
        _test_pause()
        opt = dict(tree_flatten(optimizer.state))
        atomic_save_safetensors(tmp / "optimizer.safetensors", opt)
        _test_pause()
        atomic_write_json(
            tmp / STATE_FILE,
            {"loop": asdict(state), "data": data_position, "config": config_fingerprint},
        )
        _test_pause()
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing half-written
        raise
    _fsync_dir(final.parent)
    _test_pause()
    prune(run_dir, keep)
    return final


def _test_pause() -> None:
    # TEST-ONLY hook: LOCALTUNE_TEST_SLOW_SAVE=<seconds> sleeps between a checkpoint's files so
    # the kill -9 fault test (tests/unit/test_faults_kill.py) can land mid-save. Unset: no effect.
    delay = os.environ.get("LOCALTUNE_TEST_SLOW_SAVE")
    if delay:
        time.sleep(float(delay))


def _intact(run_dir: Path) -> str:
    last = latest_checkpoint(run_dir)
    return f"the last good checkpoint {last.name} is intact" if last else "no checkpoint was saved yet"


def _what(err: OSError) -> str:
    return "no space left on device" if err.errno == errno.ENOSPC else (err.strerror or str(err)).lower()


def _go_on(run_dir: Path, kind: str | None = None) -> str:
    if kind is None:
        try:
            kind = json.loads((Path(run_dir) / "run.json").read_text()).get("kind") or "sft"
        except (OSError, ValueError, AttributeError):
            kind = "sft"
    return f"fix that, then go on with `localtune train {kind} --resume {run_dir}`"


def save_error(run_dir: Path, step: int, err: OSError) -> RunError:
    """A clear message for a save that failed (disk full, permissions), naming what is still good
    and the command that goes on from it."""
    where = f" ({err.filename})" if err.filename else ""
    return RunError(f"{run_dir}: {_what(err)} while saving checkpoint step-{step:06d}{where}; "
                    f"{_intact(run_dir)}; {_go_on(run_dir)}")


def storage_error(run_dir: Path, err: OSError, kind: str) -> RunError:
    """Any other write of a run that failed (its log, metrics, run.json): what is still good, and
    the command that goes on once there is space again."""
    where = f" writing {err.filename}" if err.filename else ""
    try:
        intact = _intact(run_dir)
    except OSError:
        intact = "its checkpoints could not be listed"
    return RunError(f"{run_dir}: {_what(err)}{where}; {intact}; {_go_on(run_dir, kind)}")


def failed_before_start(run) -> bool:
    """A run that failed before its first step (a damaged model, a full disk at start): it holds
    no checkpoint and no metrics, so the same command may simply be run again into it."""
    try:
        info = run.read()
    except RunError:
        return False
    metrics = run.path / "metrics.jsonl"
    return (info.get("status") == "failed" and not list_checkpoints(run.path)
            and not (metrics.exists() and metrics.stat().st_size))


def record_end(run, *, log: str | None = None, **fields) -> None:
    """Say in run.json how a run ended, if the disk still lets us: on a full or read-only disk the
    error being raised matters more than the record of it."""
    try:
        run.update(**fields)
        if log:
            run.log(log)
    except (OSError, RunError):
        pass


def remove_partial_writes(run_dir: Path) -> list[Path]:
    """Delete what a killed writer left half-done: hidden temp files and checkpoint temp dirs.
    Only call while holding the run's lock (nobody else is writing). Returns what was removed."""
    run_dir = Path(run_dir)
    removed = []
    for p in run_dir.iterdir():
        if p.is_file() and p.name.startswith(".") and p.name.endswith((".tmp", ".safetensors")):
            p.unlink(missing_ok=True)
            removed.append(p)
    root = run_dir / CHECKPOINTS
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith("."):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temp directories are never listed)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")]
    return sorted((p for p in found if (p / STATE_FILE).exists()), key=lambda p: p.name)


def prune(run_dir: Path, keep: int) -> None:
    checkpoints = list_checkpoints(run_dir)
    for old in checkpoints[: max(len(checkpoints) - max(keep, 1), 0)]:
        # Rename first (atomic), then delete: a kill mid-delete leaves a hidden dir, not a torn step-N.
        doomed = old.with_name(f".{old.name}.deleting")
        shutil.rmtree(doomed, ignore_errors=True)  # a leftover of an earlier killed prune
        try:
            os.replace(old, doomed)
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path: Path, model, optimizer) -> tuple[LoopState, dict, dict]:
    """Restore adapter weights and optimizer state; returns (loop state, data position, config)."""
    from localtune.errors import LocaltuneError
    from localtune.ioerrors import check_safetensors, mlx_reads

    path = Path(path)
    todo = "the checkpoint is damaged: delete it to resume from an older one"
    try:
        info = json.loads((path / STATE_FILE).read_text())
        state = LoopState(**info["loop"])
        data = info["data"]
        if not isinstance(data, dict):
            raise TypeError("data position is not an object")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise RunError(f"{path / STATE_FILE}: unreadable checkpoint state: {e}; {todo}") from None
    try:
        opt_file = path / "optimizer.safetensors"
        check_safetensors(opt_file, todo)
        load_adapter_weights(model, path / "adapters.safetensors")
        with mlx_reads(opt_file, todo):
            opt = mx.load(str(opt_file))
            optimizer.state = tree_unflatten(list(opt.items()))
            mx.eval(optimizer.state)
    except LocaltuneError as e:
        raise RunError(str(e)) from None  # one kind for every damaged checkpoint
    return state, data, info.get("config", {})
