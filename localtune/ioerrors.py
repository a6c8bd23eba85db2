"""The one place that turns OS errors and corrupt-file errors into LocaltuneErrors naming the path
and what to do. The CLI's main maps whatever reaches it through `user_error`; the engine's file
boundaries (mlx reads and writes, which raise a bare RuntimeError without a path) go through
`mlx_writes` / `mlx_reads` so the error keeps the path it was about."""

from __future__ import annotations

import errno
import json
import os
import re
import struct
from contextlib import contextmanager
from pathlib import Path

from localtune.errors import CorruptFileError, LocaltuneError, StorageError

# What to do, by errno: the message a user needs, not the C library's.
_ADVICE = {
    errno.ENOSPC: ("no space left on device", "free some space (or write to another disk) and retry"),
    errno.EDQUOT: ("disk quota exceeded", "free some space (or write to another disk) and retry"),
    errno.EFBIG: ("file too large for this file system", "write to another disk"),
    errno.EROFS: ("read-only file system", "write to a writable disk instead (or remount it read-write)"),
    errno.EACCES: ("permission denied", "choose a path you can write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", "choose a path you can write to, or fix its permissions"),
    errno.EISDIR: ("is a directory", "give a file path"),
    errno.ENOTDIR: ("a part of the path is a file, not a directory", "check the path"),
    errno.EEXIST: ("already exists", "choose another path"),
    errno.ENOENT: ("no such file or directory", "check the path"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
    errno.ENOTEMPTY: ("directory not empty", "choose another path"),
    errno.EIO: ("input/output error", "check the disk"),
    errno.EMFILE: ("too many open files", "raise the open-file limit (ulimit -n) and retry"),
    errno.ELOOP: ("too many symbolic links", "check the path"),
    errno.EXDEV: ("cannot move across file systems", "choose an output on the same disk"),
}
# mlx's own I/O errors carry no errno and no path (e.g. "[write] Unable to write 761 bytes to file.").
_MLX_WRITE = re.compile(r"\[(write|save\w*)\]|Unable to write|gguf_create failed", re.I)
_MLX_READ = re.compile(r"\[(load\w*|read)\]|Unable to read|Could not open file|incomplete download|"
                       r"corrupt|header", re.I)
_LOW_SPACE = 1 << 20  # a write failure with less than this free is a full disk


def os_error_message(e: OSError, path: str | os.PathLike | None = None) -> str:
    where = path or e.filename
    what, todo = _ADVICE.get(e.errno, ((e.strerror or str(e)).lower(), "check the path and retry"))
    return f"{where}: {what}; {todo}" if where else f"{what}; {todo}"


def storage_error(e: OSError, path: str | os.PathLike | None = None) -> StorageError:
    return StorageError(os_error_message(e, path))


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes available to us on the file system holding `path` (its nearest existing parent)."""
    p = Path(path)
    for candidate in (p, *p.parents):
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def _probe_write(directory: Path) -> OSError | None:
    """The OSError that creating and writing a small file in `directory` raises, if any: the
    errno mlx's bare RuntimeError does not give (read-only, permissions, no inodes left)."""
    probe = directory / f".localtune-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as e:
        return e
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    except OSError as e:
        return e
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)
    return None


def mlx_write_error(path: str | os.PathLike, e: BaseException) -> OSError:
    """An OSError (with errno and path) for mlx's bare write RuntimeError: the errno a probe write
    in the same directory gets, else ENOSPC when the disk is (nearly) full, else EIO."""
    probed = _probe_write(Path(path).parent)
    if probed is not None and probed.errno is not None:
        return OSError(probed.errno, os.strerror(probed.errno), str(path))
    free = free_bytes(Path(path).parent)
    wanted = re.search(r"write (\d+) bytes", str(e))
    full = free is not None and (free < _LOW_SPACE or (wanted and free < int(wanted.group(1))))
    code = errno.ENOSPC if full else errno.EIO
    return OSError(code, os.strerror(code), str(path))


@contextmanager
def mlx_writes(path: str | os.PathLike):
    """Around an mx.save_* call: its RuntimeError becomes an OSError naming `path`."""
    try:
        yield
    except RuntimeError as e:
        if not _MLX_WRITE.search(str(e)):
            raise
        raise mlx_write_error(path, e) from None


def corrupt_file(path: str | os.PathLike, why: str, todo: str) -> CorruptFileError:
    return CorruptFileError(f"{path}: {why}; {todo}")


@contextmanager
def mlx_reads(path: str | os.PathLike, todo: str):
    """Around an mx.load of `path`: a truncated or corrupt file becomes a CorruptFileError saying
    `todo` (what the user can do about this particular file)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as e:
        raise storage_error(e, path) from None
    except (RuntimeError, ValueError) as e:
        detail = str(e).split("] ", 1)[-1].rstrip(".")
        raise corrupt_file(path, f"unreadable ({detail})", todo) from None


def check_safetensors(path: str | os.PathLike, todo: str) -> None:
    """Raise CorruptFileError if `path` is not a complete safetensors file: a header that parses and
    tensors that end within the file. Reads the header only (cheap for any size)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise corrupt_file(path, f"truncated ({size} bytes, no safetensors header)", todo)
            n = struct.unpack("<Q", head)[0]
            if n > size - 8 or n > 100 << 20:
                raise corrupt_file(path, f"truncated or not a safetensors file (header of {n} bytes, "
                                         f"file of {size})", todo)
            header = json.loads(f.read(n))
    except OSError as e:
        raise storage_error(e, path) from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise corrupt_file(path, "corrupt safetensors header", todo) from None
    if not isinstance(header, dict):
        raise corrupt_file(path, "corrupt safetensors header", todo)
    ends = [v.get("data_offsets", [0, 0])[1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list)]
    need = 8 + n + max(ends, default=0)
    if need > size:
        raise corrupt_file(path, f"truncated ({size} of {need} bytes)", todo)


def user_error(e: BaseException) -> LocaltuneError | None:
    """The LocaltuneError a user should see for an exception that reached the top, or None when it
    is not an I/O problem (a bug: let it show)."""
    if isinstance(e, LocaltuneError):
        return e
    if isinstance(e, OSError) and e.errno is not None:
        return storage_error(e)
    if isinstance(e, RuntimeError) and _MLX_WRITE.search(str(e)):
        return StorageError(f"a write failed ({e}); check free space and permissions of the output")
    if isinstance(e, RuntimeError) and _MLX_READ.search(str(e)):
        return CorruptFileError(f"a file could not be read ({e}); it may be truncated or corrupt")
    return None


def read_json(path: str | os.PathLike, todo: str, *, kind: type = dict):
    """The JSON value of a file localtune relies on (config.json, a run's record, trainer state...):
    FileNotFoundError as is (callers say what is missing), anything else that is wrong with it a
    CorruptFileError naming the file and saying `todo`."""
    path = Path(path)
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise corrupt_file(path, "is a directory, not a JSON file", todo) from None
    except OSError as e:
        raise storage_error(e, path) from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise corrupt_file(path, f"not valid JSON ({e})", todo) from None
    if not isinstance(value, kind):
        raise corrupt_file(path, f"expected a JSON {'object' if kind is dict else kind.__name__}, "
                                 f"got {type(value).__name__}", todo)
    return value
