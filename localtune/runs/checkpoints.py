"""Where a run's checkpoints live, which of them are whole, and their upkeep (prune, leftovers).

A checkpoint is written into a hidden temp directory and renamed into place, so a visible step-N is
complete when written; it can still be damaged later (a disk error, a partial copy, a hand edit).
`checkpoint_problem` checks one without loading it (every file there, each safetensors file as long
as its header says, the state readable), so resume can fall back to the newest good one. Hidden
names (`.step-N.tmp`, `.name.XXXX.tmp`, `.step-N.deleting`) are partial writes of a killed process:
never read, removed by `remove_partial_writes` when the run resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

from localtune.runs import layout


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / layout.CHECKPOINTS_DIR


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return checkpoints_dir(run_dir) / layout.checkpoint_name(step)


def temp_dir(final: Path) -> Path:
    """The hidden directory a checkpoint is written into before its rename to `final`."""
    return final.parent / f".{final.name}.tmp"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoints that were completely written (their state file is there), oldest first."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and layout.step_of(p) is not None]
    return sorted((p for p in found if (p / layout.STATE_FILE).exists()), key=layout.step_of)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is not whole (missing, torn, bad header), or None. The header
    (8-byte length, then JSON with each tensor's byte range) says how long the file must be."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{path.name} is truncated"
            (n,) = struct.unpack("<Q", head)
            size = os.fstat(f.fileno()).st_size
            if n > size - 8:
                return f"{path.name} is truncated"
            header = json.loads(f.read(n))
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return f"{path.name} is unreadable ({e})"
    if not isinstance(header, dict):
        return f"{path.name} has a bad header"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        return f"{path.name} has a bad header"
    if size < 8 + n + end:
        return f"{path.name} is truncated ({size} of {8 + n + end} bytes)"
    return None


def checkpoint_problem(path: str | Path) -> str | None:
    """Why a checkpoint cannot be resumed from, or None when it looks whole."""
    path = Path(path)
    missing = [f for f in layout.CHECKPOINT_FILES if not (path / f).is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    for f in layout.CHECKPOINT_FILES:
        if f.endswith(".safetensors"):
            problem = safetensors_problem(path / f)
            if problem:
                return problem
    try:
        state = json.loads((path / layout.STATE_FILE).read_text())
        if not isinstance(state.get("loop"), dict) or not isinstance(state.get("data"), dict):
            return f"{layout.STATE_FILE} lacks the loop or data state"
        json.loads((path / layout.ADAPTER_CONFIG_FILE).read_text())
        parts = checkpoint_parts(state)
    except (OSError, ValueError, UnicodeDecodeError, AttributeError) as e:
        return f"unreadable state ({e})"
    for f in parts:  # a mode's own weights (the reward head): named by the state, checked like the rest
        problem = safetensors_problem(path / f)
        if problem:
            return problem
    return None


def checkpoint_parts(state: dict) -> list[str]:
    """The file names of a mode's own weights a checkpoint holds besides the adapter (its trainer
    state lists them, so a reader checks them without knowing the mode). ValueError when the list is
    malformed or names anything but a plain .safetensors file of the checkpoint."""
    parts = state.get("parts", [])
    if not isinstance(parts, list) or not all(
            isinstance(f, str) and f.endswith(".safetensors") and Path(f).name == f and not f.startswith(".")
            for f in parts):
        raise ValueError(f"{layout.STATE_FILE}: bad 'parts' list {parts!r}")
    return parts


def latest_good_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint that passes checkpoint_problem."""
    for path in reversed(list_checkpoints(run_dir)):
        if checkpoint_problem(path) is None:
            return path
    return None


def prune(run_dir: str | Path, keep: int, protect=()) -> None:
    """Delete all but the newest `keep` checkpoints, and never the steps in `protect` (the best one
    of --keep-best, which becomes the run's adapter at the end)."""
    checkpoints = list_checkpoints(run_dir)
    protect = set(protect)
    for old in checkpoints[: max(len(checkpoints) - max(keep, 1), 0)]:
        if layout.step_of(old) in protect:
            continue
        # Rename first (atomic), then delete: a kill mid-delete leaves a hidden dir, not a torn step-N.
        doomed = old.with_name(f".{old.name}.deleting")
        shutil.rmtree(doomed, ignore_errors=True)  # a leftover of an earlier killed prune
        try:
            os.replace(old, doomed)
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)


def best_steps(run_dir: str | Path, key: str) -> set[int]:
    """The best step (--keep-best) as the newest whole checkpoint recorded it (its trainer state's
    loop.extra[key].best_step), for a prune before that state is loaded; empty when none."""
    last = latest_good_checkpoint(run_dir)
    if last is None:
        return set()
    try:
        extra = json.loads((last / layout.STATE_FILE).read_text())["loop"].get("extra") or {}
        step = (extra.get(key) or {}).get("best_step")
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return set()
    return {step} if isinstance(step, int) else set()


def remove_partial_writes(run_dir: str | Path) -> list[Path]:
    """Delete what a killed writer left half-done: hidden temp files and checkpoint temp dirs.
    Only call while holding the run's lock (nobody else is writing). Returns what was removed."""
    run_dir = Path(run_dir)
    removed = []
    for p in run_dir.iterdir():
        if p.is_file() and p.name.startswith(".") and p.name.endswith((".tmp", ".safetensors")):
            p.unlink(missing_ok=True)
            removed.append(p)
    root = checkpoints_dir(run_dir)
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith("."):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed
