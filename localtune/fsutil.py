"""Atomic file writes: temp file in the same directory + fsync + rename, so a kill at any moment
leaves either the old file or the new one, never a torn one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_with(path: str | os.PathLike, write, suffix: str = ".tmp") -> Path:
    """Call write(tmp_path) to produce the file, then move it over `path` atomically.

    Any failure (disk full, read-only, mlx's bare write RuntimeError) is an OSError naming `path`,
    and the temp file is gone."""
    from localtune.ioerrors import mlx_writes

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    try:
        with mlx_writes(path):
            write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary user files
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno is not None and e.filename != str(path):
            raise OSError(e.errno, e.strerror, str(path)) from None  # the file meant, not our temp name
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_files(contents: dict) -> list[Path]:
    """Write several files as one change ({path: text}): every temp file first, then the renames,
    so a failure (disk full) leaves all the old files or none of them touched."""
    staged: list[tuple[Path, Path]] = []
    path = None
    try:
        for path, text in contents.items():
            path = Path(path)
            tmp = path.with_name(f".{path.name}.staged-{os.getpid()}.tmp")
            staged.append((atomic_write_text(tmp, text), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException as e:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and path is not None:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    return [path for _, path in staged]


def atomic_write_bytes(path, data: bytes) -> Path:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write_with(path, write)


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_safetensors(path, arrays: dict, metadata: dict | None = None) -> Path:
    """mx.save_safetensors through a temp name (it insists on a .safetensors suffix)."""
    import localtune  # noqa: F401
    import mlx.core as mx

    return atomic_write_with(
        path,
        lambda tmp: mx.save_safetensors(tmp, arrays, metadata=metadata or {}),
        suffix=".safetensors",
    )
