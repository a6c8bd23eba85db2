"""Dataset formats: detect which one a file uses, check every row, turn good rows into Examples.

Formats (keys of a row):
  messages           {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
  sharegpt           {"conversations": [{"from": "system"|"human"|"gpt", "value": str}, ...]}
  alpaca             {"instruction": str, "input"?: str, "output": str, "system"?: str}
  prompt_completion  {"prompt": str, "completion": str, "system"?: str}
  text               {"text": str}
Other keys are ignored. Chat conversations are: an optional system message, then user/assistant
alternating, ending with assistant (the turn that is trained).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from localtune.data.columns import apply_columns
from localtune.data.example import FORMATS, DatasetFile, Example, Problem
from localtune.data.reader import iter_rows
from localtune.errors import DataError

# Keys that mark a row as a given format, in priority order (a row with both "messages" and
# "text" is a messages row).
_SIGNATURES = (
    ("messages", ("messages",)),
    ("sharegpt", ("conversations",)),
    ("alpaca", ("instruction", "output")),
    ("prompt_completion", ("prompt", "completion")),
    ("text", ("text",)),
)
_EXPECTED = {
    "messages": "a 'messages' list",
    "sharegpt": "a 'conversations' list",
    "alpaca": "'instruction' and 'output'",
    "prompt_completion": "'prompt' and 'completion'",
    "text": "a 'text' string",
}
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system"}
DETECT_ROWS = 50  # enough rows to outvote a stray row at the top of the file
MAX_PROBLEMS_IN_ERROR = 5


class RowProblem(Exception):
    """Why one row cannot be used (becomes a Problem with the row's file and line)."""


def row_format(row: dict) -> str | None:
    for fmt, keys in _SIGNATURES:
        if any(k in row for k in keys):
            return fmt
    return None


def shown(text: str, limit: int = 40) -> str:
    """A value from the data, quoted for a one-line message: escapes newlines, cut when long."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _type_name(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null",
            int: "number", float: "number"}.get(type(value), type(value).__name__)


def _string(row: dict, key: str, *, optional=False, allow_empty=False) -> str | None:
    if key not in row or (optional and row[key] is None):
        if optional:
            return None
        raise RowProblem(f"missing key '{key}'")
    value = row[key]
    if not isinstance(value, str):
        raise RowProblem(f"'{key}' must be a string, got {_type_name(value)}")
    if not allow_empty and not value.strip():
        raise RowProblem(f"'{key}' is empty")
    return value


def check_conversation(messages: list[dict], label: str = "message") -> None:
    """Roles: system? then user/assistant alternating, ending with assistant; no empty content."""
    for i, m in enumerate(messages, start=1):
        if m["role"] not in ("system", "user", "assistant"):
            raise RowProblem(f"{label} {i}: unsupported role {shown(m['role'])} "
                             "(supported: system, user, assistant)")
        if not m["content"].strip():
            raise RowProblem(f"{label} {i}: empty content")
    if not any(m["role"] == "assistant" for m in messages):
        raise RowProblem("no assistant turn")
    start = 1 if messages[0]["role"] == "system" else 0
    for i, m in enumerate(messages[start:], start=start + 1):
        want = "user" if (i - start) % 2 == 1 else "assistant"
        if m["role"] != want:
            where = " (system is only allowed first)" if m["role"] == "system" else ""
            raise RowProblem(f"{label} {i}: expected role '{want}', got {shown(m['role'])}{where}")
    if messages[-1]["role"] != "assistant":
        raise RowProblem(f"conversation must end with an assistant turn, the last is "
                         f"{shown(messages[-1]['role'])}")


def _turns(row: dict, key: str, role_key: str, text_key: str, label: str, roles=None) -> list[dict]:
    turns = row.get(key)
    if key not in row:
        raise RowProblem(f"missing key '{key}'")
    if not isinstance(turns, list):
        raise RowProblem(f"'{key}' must be a list, got {_type_name(turns)}")
    if not turns:
        raise RowProblem(f"'{key}' is empty")
    messages = []
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            raise RowProblem(f"{label} {i}: expected an object with '{role_key}' and '{text_key}', "
                             f"got {_type_name(t)}")
        for k in (role_key, text_key):
            if k not in t:
                raise RowProblem(f"{label} {i}: missing '{k}'")
            if not isinstance(t[k], str):
                raise RowProblem(f"{label} {i}: '{k}' must be a string, got {_type_name(t[k])}")
        role = t[role_key].strip().lower()
        if roles is not None:
            if role not in roles:
                raise RowProblem(f"{label} {i}: unsupported '{role_key}' value {shown(t[role_key])} "
                                 f"(supported: {', '.join(roles)})")
            role = roles[role]
        messages.append({"role": role, "content": t[text_key]})
    check_conversation(messages, label)
    return messages


def _system_prefix(row: dict) -> list[dict]:
    system = _string(row, "system", optional=True, allow_empty=True)
    return [{"role": "system", "content": system}] if system and system.strip() else []


def _messages(row):
    return _turns(row, "messages", "role", "content", "message")


def _sharegpt(row):
    return _turns(row, "conversations", "from", "value", "turn", _SHAREGPT_ROLES)


def _alpaca(row):
    instruction = _string(row, "instruction")
    extra = _string(row, "input", optional=True, allow_empty=True)
    output = _string(row, "output")
    user = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    return _system_prefix(row) + [{"role": "user", "content": user},
                                  {"role": "assistant", "content": output}]


def _prompt_completion(row):
    prompt = _string(row, "prompt")
    completion = _string(row, "completion")
    return _system_prefix(row) + [{"role": "user", "content": prompt},
                                  {"role": "assistant", "content": completion}]


_CONVERTERS = {"messages": _messages, "sharegpt": _sharegpt, "alpaca": _alpaca,
               "prompt_completion": _prompt_completion}


def to_example(row, fmt: str, source: str, line: int) -> Example:
    """Check one parsed row against the file's format; raise RowProblem if it cannot be used."""
    if not isinstance(row, dict):
        raise RowProblem(f"expected a JSON object, got {_type_name(row)}")
    seen = row_format(row)
    if seen is not None and seen != fmt:
        raise RowProblem(f"row is {seen} format but the file is {fmt} format "
                         f"(expected {_EXPECTED[fmt]})")
    if fmt == "text":
        return Example(None, _string(row, "text"), source, line, fmt)
    return Example(_CONVERTERS[fmt](row), None, source, line, fmt)


def normalize_format(name: str) -> str:
    fmt = name.strip().lower().replace("-", "_")
    if fmt not in FORMATS:
        raise DataError(f"unknown dataset format '{name}'; valid formats: {', '.join(FORMATS)}")
    return fmt


def detect_format(rows: list) -> str | None:
    """The most common format among the first object rows (ties go to the one seen first)."""
    seen = [f for f in (row_format(r) for r in rows if isinstance(r, dict)) if f]
    if not seen:
        return None
    counts = Counter(seen[:DETECT_ROWS])
    best = max(counts.values())
    return next(f for f in seen if counts[f] == best)


def _no_rows_error(path: str, problems: list[Problem], what: str) -> DataError:
    lines = [f"{path}: {what}"]
    lines += [f"  {p}" for p in problems[:MAX_PROBLEMS_IN_ERROR]]
    if len(problems) > MAX_PROBLEMS_IN_ERROR:
        lines.append(f"  ... and {len(problems) - MAX_PROBLEMS_IN_ERROR} more problems")
    return DataError("\n".join(lines))


def read_dataset(path: str | Path, format: str | None = None, columns: dict | str | None = None) -> DatasetFile:
    """Read, detect (or force) the format, check every row. Bad rows become Problems and are
    skipped; DataError if the file has no rows, or none that can be used. `columns` renames
    keys first ({"question": "instruction"} or "question=instruction", see data.columns)."""
    source = str(path)
    fmt = normalize_format(format) if format else None
    raw = list(iter_rows(path))
    if not raw:
        raise DataError(f"{source}: no rows (the file is empty)")
    raw = apply_columns(raw, columns, source)
    problems = [Problem(source, r.line, r.problem) for r in raw if r.problem]
    parsed = [r for r in raw if r.problem is None]
    if fmt is None:
        fmt = detect_format([r.value for r in parsed])
        if fmt is None:
            keys = sorted({k for r in parsed if isinstance(r.value, dict) for k in r.value})
            what = "cannot tell the dataset format"
            if parsed:
                what += (f": rows have keys {keys}; expected one of: "
                         + "; ".join(f"{f} ({_EXPECTED[f]})" for f in FORMATS))
            raise _no_rows_error(source, problems, what)
    examples = []
    for r in parsed:
        try:
            examples.append(to_example(r.value, fmt, source, r.line))
        except RowProblem as e:
            problems.append(Problem(source, r.line, str(e)))
    problems.sort(key=lambda p: p.line)
    if not examples:
        raise _no_rows_error(source, problems, f"no usable rows ({fmt} format, "
                                               f"{len(problems)} problems)")
    return DatasetFile(source, fmt, examples, problems, len(raw))
