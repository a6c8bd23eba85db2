"""`python:path/to/rewards.py:function`: a user's own reward function.

    def my_reward(prompt: str, completion: str, row: dict) -> float | None: ...

`prompt` is the row's last user message, `completion` the answer's text, `row` the prompt row's own
JSON object (every field, e.g. an "answer" to compare with; plain-text prompt files give
{"prompt": line}). None or NaN means "no verdict": reported, not trained on.

The file is imported only from the path given on the command line (or the run's config, which
came from one); a resumed run refuses a file that changed since the run started (its hash is in the
run's record, see `file_hashes`). An exception inside the function is a RewardError naming the
function, where in the file it raised, and the prompt row, so the run fails with that message
instead of a traceback.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from localtune.rewards.source import RewardError, row_where


def load_function(path: str | Path, function: str) -> Callable:
    """Import `path` as a module of its own and return its `function` (checked to take 3 arguments)."""
    path = Path(path).expanduser()
    where = f"--reward python:{path}:{function}"
    if not path.is_file():
        raise RewardError(f"{where}: no such file {path}")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"localtune_user_reward_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RewardError(f"{where}: {path} cannot be imported as Python (name it *.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickling and relative lookups need it registered
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise RewardError(f"{where}: importing {path} failed: {type(e).__name__}: {e}"
                          f"{_user_frame(e, path)}") from None
    fn = getattr(module, function, None)
    if fn is None:
        found = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_"))
        raise RewardError(f"{where}: {path} has no function {function!r}"
                          + (f" (it has: {', '.join(found)})" if found else ""))
    if not callable(fn):
        raise RewardError(f"{where}: {function!r} in {path} is not a function")
    try:
        inspect.signature(fn).bind("prompt", "completion", {})
    except TypeError:
        raise RewardError(f"{where}: {function}{inspect.signature(fn)} must take (prompt, completion, row)") from None
    except ValueError:  # builtins without a signature: trust them
        pass
    return fn


def _user_frame(error: BaseException, path: Path) -> str:
    """' (at rewards.py:12)': the last line of the user's file the error passed through."""
    mine = str(path.resolve())
    frames = [f for f in traceback.extract_tb(error.__traceback__) if str(Path(f.filename).resolve()) == mine]
    return f" (at {path.name}:{frames[-1].lineno})" if frames else ""


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()


@dataclass
class PythonReward:
    path: str
    function: str
    weight: float = 1.0
    name: str = ""
    spec: str = ""
    fn: Callable | None = field(default=None, repr=False)

    def __post_init__(self):
        self.name = self.name or f"python_{self.function}"
        self.spec = self.spec or f"python:{self.path}:{self.function}"
        self.fn = load_function(self.path, self.function)

    def score(self, rows, prompts, completions) -> list:
        out = []
        for row, prompt, text in zip(rows, prompts, completions):
            try:
                out.append(self.fn(prompt, text, dict(row.fields)))
            except Exception as e:
                shown = text if len(text) <= 60 else text[:57] + "..."
                raise RewardError(
                    f"reward function {self.function} ({self.path}) raised {type(e).__name__}: {e}"
                    f"{_user_frame(e, Path(self.path))} on the prompt at {row_where(row)}, "
                    f"answer {shown!r}; fix the function (return None for no verdict) and resume") from None
        return out
