"""Where a command's output goes (export, models import/quantize, data split, a new run): never
over something localtune did not create, and never half-written.

Rules, checked before any work starts (`check_output`):
- an existing non-empty directory (or an existing file) is refused unless `force`;
- even with `force`, never: a run directory or anything of a run but its `export*` entries, a
  source of the command (its input run, model or file) or a directory around or inside a model
  source, the working directory, the home directory or a directory around them, or a directory
  holding a run or a model anywhere inside it;
- a directory where a file is wanted (or a file where a directory is wanted) is refused, --force
  or not: that is a typo, not something to replace.
A directory output is built in a hidden temp sibling and renamed into place (`staged_dir`), so a
failure or a kill leaves the old content or the new, and a temp that a dead process left behind is
removed by the next run.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from localtune.errors import LocaltuneError
from localtune.runs.layout import CONSOLE_LOG, LOCK_FILE, RUN_FILE, UI_CONFIG
from localtune.runs.liveness import pid_alive
EXPORT_PREFIX = "export"  # what `localtune export` writes inside a run by default
SCAN_LIMIT = 10_000  # entries: a --force target bigger than this is not an output directory


class OutputRefused(LocaltuneError):
    """The output path would replace or write into something localtune must not touch."""


def _is_model_dir(p: Path) -> bool:
    return (p / "config.json").is_file() and any(p.glob("*.safetensors"))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _run_around(path: Path) -> Path | None:
    """The run directory that `path` is, or lies inside of."""
    for p in (path, *path.parents):
        if (p / RUN_FILE).is_file():
            return p
    return None


def _protected_contents(directory: Path) -> str | None:
    """Why `directory` must not be replaced whole: a run or a model somewhere inside, or too many
    files to be an output of ours."""
    seen = 0
    for root, dirs, files in os.walk(directory):
        root_path = Path(root)
        if RUN_FILE in files:
            return f"it holds the run directory {root_path}"
        if "config.json" in files and any(f.endswith(".safetensors") for f in files) and root_path != directory:
            return f"it holds the model directory {root_path}"
        seen += len(files) + len(dirs)
        if seen > SCAN_LIMIT:
            return f"it holds more than {SCAN_LIMIT} files"
    return None


def _shown(p: Path) -> str:
    """A path as short as it can read: relative to the working directory when it lies inside."""
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _refuse(out: Path, why: str, todo: str) -> OutputRefused:
    return OutputRefused(f"{out}: {why}; {todo}")


def check_output(out: str | os.PathLike, *, kind: str = "dir", force: bool = False,
                 sources: Iterable[str | os.PathLike | None] = (), flag: str = "--out") -> Path:
    """Refuse (OutputRefused) an output path that would replace or write into something it must
    not (see the module docstring); returns `out` as a Path. kind: "dir" or "file"."""
    out = Path(out)
    real = out.resolve()
    exists = out.exists() or out.is_symlink()
    other = "choose another " + flag
    if exists and kind == "file" and real.is_dir():
        raise _refuse(out, "is a directory", f"give a file path, e.g. {out / 'model.gguf'}")
    if exists and kind == "dir" and not real.is_dir() and real.exists():
        raise _refuse(out, "is a file, not a directory", other)
    for parent in out.parents:  # a file where a parent directory should be
        if parent.exists() and not parent.is_dir():
            raise _refuse(out, f"{parent} is a file, not a directory", other)
    for src in (Path(s).resolve() for s in sources if s):
        model_src = src.is_dir() and _is_model_dir(src)
        if real == src or _inside(src, real):
            raise _refuse(out, f"is {'' if real == src else 'around '}the input {_shown(src)} of this command",
                          other)
        if model_src and _inside(real, src):
            raise _refuse(out, f"is inside the input model {_shown(src)}", other)
    run = _run_around(real)
    if run is not None:
        top = real.relative_to(run).parts[:1]
        if not top or not top[0].startswith(EXPORT_PREFIX):
            what = "is the run directory" if not top else f"is part of the run directory {_shown(run)}"
            raise _refuse(out, what, f"{other} (localtune never replaces a run's files)")
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    for keep, name in ((cwd, "the working directory"), (home, "the home directory")):
        if _inside(keep, real):
            raise _refuse(out, f"is {name}{'' if keep == real else ' or around it'}", other)
    if not exists:
        return out
    if kind == "dir" and real.is_dir() and not any(real.iterdir()):
        return out  # an empty directory: nothing to lose
    if not force:
        what = "already exists and is not empty" if kind == "dir" else "already exists"
        raise _refuse(out, what, f"{other}, or add --force to replace it")
    if kind == "dir" and real.is_dir():
        why = _protected_contents(real)
        if why:
            raise _refuse(out, f"will not be replaced even with --force: {why}", other)
    return out


def install_dir(tmp: Path, out: Path) -> None:
    """Move a finished temp directory into place; what `out` held goes only once the new one is
    there (check_output decided it may)."""
    old = None
    if out.is_symlink() or out.is_file():
        out.unlink()
    elif out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{time.time_ns()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_temps(parent: Path, name: str) -> None:
    """Temp siblings `.NAME.tmp-PID-*` / `.NAME.old-PID-*` of processes that died mid-write."""
    for p in parent.glob(f".{name}.*-*-*"):
        kind, _, rest = p.name[len(name) + 2:].partition("-")
        pid = rest.split("-", 1)[0]
        if kind in ("tmp", "old") and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


@contextmanager
def staged_dir(out: str | os.PathLike, *, force: bool = False,
               sources: Iterable[str | os.PathLike | None] = (), flag: str = "--out") -> Iterator[Path]:
    """Yield a hidden temp directory next to `out`; on success it replaces `out` (checked by
    check_output first), on any failure it is deleted and `out` is untouched."""
    out = check_output(out, kind="dir", force=force, sources=sources, flag=flag)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out.parent, out.name)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}")
        tmp.mkdir()
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(out)) from None
    try:
        yield tmp
        install_dir(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno is not None and str(e.filename or "").startswith(str(tmp)):
            raise OSError(e.errno, e.strerror, str(out)) from None  # the output meant, not our temp
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# What a front end that starts the trainer as a process (the TUI: tui/process.py) puts into the new
# run directory first: its launch config and the trainer's console log. Nothing else may be there.
LAUNCH_FILES = frozenset({LOCK_FILE, UI_CONFIG, CONSOLE_LOG})


def check_new_run_dir(path: str | os.PathLike) -> None:
    """A new run may go into a new or empty directory (or one holding only its launcher's files),
    never into one that holds other files."""
    path = Path(path)
    if path.is_dir() and not (path / RUN_FILE).exists():
        if [p for p in path.iterdir() if p.name not in LAUNCH_FILES]:
            raise _refuse(path, "exists and is not a run directory",
                          "choose a new --out (localtune never writes into a directory it did not create)")
    elif path.exists() and not path.is_dir():
        raise _refuse(path, "is a file, not a directory", "choose another --out")
