"""Is this the base model a run was trained on? An adapter of the same shapes loads onto any base of
the same architecture, and then answers nonsense without an error: compare the base the run
recorded with the one being loaded, by path and, when the paths differ, by the files' content."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from localtune import events

SAMPLE = 64 << 10  # bytes read at the start and the end of each weights file


def model_fingerprint(model_dir: str | Path) -> str:
    """Cheap content identity of a model directory: config.json and, per weights file, its size
    and its first and last 64 KiB (the header and real weights: two trainings or two seeds of
    the same architecture differ there)."""
    d = Path(model_dir)
    h = hashlib.sha256()
    config = d / "config.json"
    h.update(config.read_bytes() if config.is_file() else b"-")
    for f in sorted(d.glob("*.safetensors")):
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(SAMPLE))
            fh.seek(max(0, size - SAMPLE))
            h.update(fh.read(SAMPLE))
    return h.hexdigest()


def recorded_base(run: str | Path) -> str | None:
    """The base model path a run directory (or one of its checkpoints) says it was trained on
    (its record's model; an mlx_lm adapter directory's "model"), or None."""
    from localtune.runs import layout, owning_run, read_run

    owner = owning_run(run)
    if owner is not None:
        return read_run(owner).model
    try:
        info = json.loads((Path(run) / layout.ADAPTER_CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info.get("model") if isinstance(info, dict) and isinstance(info.get("model"), str) else None


def base_mismatch(run: str | Path, base: str | Path) -> str | None:
    """A warning when `base` is not the model `run` was trained on, else None. Silent when the run
    does not say (an mlx_lm adapter without "model", a relative path from elsewhere)."""
    recorded = recorded_base(run)
    if not recorded:
        return None
    rec, base = Path(recorded).expanduser(), Path(base).expanduser()
    if not rec.exists():
        if not rec.is_absolute():
            return None  # relative to where the run started: cannot tell from here
        return (f"{run} was trained on {rec}, which is not on this machine; it is loaded onto {base}, "
                "and answers will be wrong unless that is the same model")
    try:
        if rec.resolve() == base.resolve() or model_fingerprint(rec) == model_fingerprint(base):
            return None
    except OSError:
        return None
    return (f"{run} was trained on {rec}, not on {base}: the adapter fits (same shapes) but its answers "
            f"will be wrong on another base; use --model {rec}")


def warn_if_other_base(run: str | Path, base: str | Path, on_event) -> None:
    """Emit {"event": "warning"} when base_mismatch finds one (chat, train --adapter, export)."""
    message = base_mismatch(run, base)
    if message and on_event:
        on_event(events.Warn(message).to_dict())
