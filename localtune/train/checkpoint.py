"""Checkpoints that resume exactly: adapter weights, optimizer state, loop state and data position.

Layout: <run>/checkpoints/step-NNNNNN/{adapters.safetensors, optimizer.safetensors,
trainer_state.json, adapter_config.json}. A checkpoint is written into a hidden temp directory and
renamed into place, so a directory named step-N is always complete; older ones are deleted only
after the new one exists.
"""

from __future__ import annotations

import json
import os
import shutil
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
    tmp = final.parent / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_adapter(model, tmp, spec)
    opt = dict(tree_flatten(optimizer.state))
    atomic_save_safetensors(tmp / "optimizer.safetensors", opt)
    atomic_write_json(
        tmp / STATE_FILE,
        {"loop": asdict(state), "data": data_position, "config": config_fingerprint},
    )
    if final.exists():  # re-saving the same step (a stop right after a save point)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    prune(run_dir, keep)
    return final


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
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path: Path, model, optimizer) -> tuple[LoopState, dict, dict]:
    """Restore adapter weights and optimizer state; returns (loop state, data position, config)."""
    path = Path(path)
    try:
        info = json.loads((path / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(f"{path / STATE_FILE}: unreadable checkpoint state: {e}") from None
    load_adapter_weights(model, path / "adapters.safetensors")
    opt = mx.load(str(path / "optimizer.safetensors"))
    optimizer.state = tree_unflatten(list(opt.items()))
    mx.eval(optimizer.state)
    return LoopState(**info["loop"]), info["data"], info.get("config", {})
