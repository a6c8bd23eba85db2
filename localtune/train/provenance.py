"""What a run was trained from, recorded at its start and checked when it resumes: the data files
(a hash of their bytes), the base weights (a fingerprint of the loaded model) and the adapter it
started from (a hash, plus a copy kept in the run so the run never depends on it changing)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from localtune.errors import RunError
from localtune.fsutil import atomic_write_bytes
from localtune.lora import ADAPTER_FILE, ADAPTER_LEAVES, CONFIG_FILE
from localtune.runs.layout import ADAPTER_EXTRA_FILES

CHUNK = 1 << 20
SAMPLES_PER_TENSOR = 4096  # elements of each base weight that go into its fingerprint


class ResumeRefused(RunError):
    """A resume that would not continue the same run (its data or base changed). The run's record
    is left as it was: the attempt only goes to the log."""


def file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    except OSError as e:
        raise RunError(f"{path}: cannot read it to record its hash: {e.strerror or e}") from None
    return f"sha256:{h.hexdigest()}"


def adapter_hash(adapter_dir: str | Path) -> str:
    h = hashlib.sha256()
    for name in (ADAPTER_FILE, CONFIG_FILE):
        h.update(Path(adapter_dir, name).read_bytes())
    return f"sha256:{h.hexdigest()}"


def copy_adapter(src: str | Path, dst: str | Path) -> Path:
    """The adapter files of `src` copied (atomically, each) into `dst`, with those that travel with
    an adapter when present (a reward run's head: a reward run may start from another)."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in (ADAPTER_FILE, CONFIG_FILE):
        atomic_write_bytes(dst / name, Path(src, name).read_bytes())
    for name in ADAPTER_EXTRA_FILES:
        if Path(src, name).is_file():
            atomic_write_bytes(dst / name, Path(src, name).read_bytes())
    return dst


def base_fingerprint(model: nn.Module) -> str:
    """A cheap, strong fingerprint of the frozen base weights: shape, dtype and an evenly strided
    sample of every tensor (any real change to a model moves nearly every element)."""
    h = hashlib.sha256()
    for name, p in tree_flatten(model.parameters()):
        if name.rsplit(".", 1)[-1] in ADAPTER_LEAVES:
            continue
        flat = p.reshape(-1)
        sample = flat[:: max(1, flat.size // SAMPLES_PER_TENSOR)]
        if mx.issubdtype(sample.dtype, mx.floating):
            sample = sample.astype(mx.float32)  # numpy has no bfloat16
        # LoRA wraps a linear as <name>.linear: the same base weights whatever the adapter layout.
        h.update(f"{name.replace('.linear.', '.')}:{p.shape}:{p.dtype}".encode())
        h.update(np.array(sample).tobytes())
    return h.hexdigest()


def data_hashes(files: dict[str, Path]) -> dict[str, str]:
    return {role: file_hash(path) for role, path in files.items()}


def changed_data(saved: dict, now: dict, files: dict[str, Path]) -> list[str]:
    """The data files whose hash differs from the one recorded (a role added or removed counts)."""
    return [f"{role} ({files.get(role, '-')})" for role in sorted(set(saved) | set(now))
            if saved.get(role) != now.get(role)]
