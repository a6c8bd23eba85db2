"""Prompt sets: the rows a model answers in eval, feedback sampling and RL rollouts.

Four readers, each giving `PromptRow`s (a chat message list ending with a user turn):
- IFEval's schema, one JSON object a line: {"key", "prompt", "instruction_id_list", "kwargs"}
  (`read_ifeval`; a hub id such as google/IFEval goes through data.hub first);
- a prompts file: plain text (one prompt a line) or JSON rows with "messages" or "prompt"
  (`read_prompt_file`);
- a training/validation data file, each chat row without its last assistant turn, which is kept as
  the reference answer (`read_data_prompts`);
- any prompt set by its rows' shape (`read_prompt_set`: feedback sampling, RL rollouts): every
  shape above, preference pairs, JSON rows of mixed shapes, every field of a row kept for reward
  functions.
A bad row is an error naming its file and line: a score over silently skipped rows would mislead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from localtune.data.example import Problem
from localtune.data.formats import MAX_PROBLEMS_IN_ERROR, shown
from localtune.data.reader import iter_rows, read_text
from localtune.errors import DataError

IFEVAL_KEYS = ("key", "prompt", "instruction_id_list", "kwargs")
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class PromptRow:
    """One prompt. `kind` is "ifeval", "prompts" or "data"; `key` is IFEval's key, else
    "<file name>:<line>". IFEval rows carry their instructions and kwargs (one dict each)."""

    key: object
    messages: list[dict]
    source: str
    line: int
    kind: str
    instruction_id_list: list[str] = field(default_factory=list)
    kwargs: list[dict] = field(default_factory=list)
    reference: str | None = None  # the answer the data file had (read_data_prompts)
    fields: dict = field(default_factory=dict, compare=False)  # the row's own JSON object (RL reward functions)

    @property
    def prompt(self) -> str:
        """The last user message: what IFEval's checkers and answers.jsonl call the prompt."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


def problems_error(header: str, problems: list[Problem]) -> DataError:
    """One DataError listing the first problems as file:line: message."""
    lines = [header] + [f"  {p}" for p in problems[:MAX_PROBLEMS_IN_ERROR]]
    if len(problems) > MAX_PROBLEMS_IN_ERROR:
        lines.append(f"  ... and {len(problems) - MAX_PROBLEMS_IN_ERROR} more")
    return DataError("\n".join(lines))


def _raise_problems(path, problems: list[Problem], what: str, why: str = "eval scores every row") -> None:
    if problems:
        raise problems_error(f"{path}: {len(problems)} bad {what} row(s); fix them ({why}):", problems)


def _ifeval_row(value, source: str, line: int) -> PromptRow:
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object with " + ", ".join(IFEVAL_KEYS))
    missing = [k for k in IFEVAL_KEYS if k not in value]
    if missing:
        raise ValueError(f"missing {', '.join(repr(k) for k in missing)} (IFEval rows have {', '.join(IFEVAL_KEYS)})")
    prompt, ids, kwargs = value["prompt"], value["instruction_id_list"], value["kwargs"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("'prompt' must be a non-empty string")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ValueError("'instruction_id_list' must be a non-empty list of strings")
    if not isinstance(kwargs, list) or not all(isinstance(k, dict) for k in kwargs):
        raise ValueError("'kwargs' must be a list of objects, one per instruction")
    if len(kwargs) != len(ids):
        raise ValueError(f"{len(ids)} instructions but {len(kwargs)} kwargs objects (one per instruction)")
    # Hub copies fill every kwarg of every instruction, unused ones as null: drop those.
    kwargs = [{k: v for k, v in kw.items() if v is not None} for kw in kwargs]
    key = value["key"]
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise ValueError("'key' must be a number or a string")
    return PromptRow(key, [{"role": "user", "content": prompt}], source, line, "ifeval", list(ids), kwargs)


def read_ifeval(spec, *, on_event=None) -> list[PromptRow]:
    """IFEval-schema rows from a JSONL/JSON file or a hub dataset id (its train split)."""
    from localtune.data.hub import resolve_dataset

    path = resolve_dataset(spec, split="train", on_event=on_event)
    rows, problems = [], []
    for raw in iter_rows(path):
        if raw.problem:
            problems.append(Problem(str(path), raw.line, raw.problem))
            continue
        try:
            rows.append(_ifeval_row(raw.value, str(path), raw.line))
        except ValueError as e:
            problems.append(Problem(str(path), raw.line, str(e)))
    _raise_problems(path, problems, "IFEval")
    keys = [r.key for r in rows]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise DataError(f"{path}: key {dup!r} appears more than once; IFEval keys must be unique")
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _chat_prompt(messages) -> tuple[list[dict], str | None]:
    """(messages ending with a user turn, the removed last assistant answer or None)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"message {i}: expected an object with string 'role' and 'content'")
        if m["role"] not in _ROLES:
            raise ValueError(f"message {i}: unsupported role {shown(m['role'])} (supported: {', '.join(_ROLES)})")
        out.append({"role": m["role"], "content": m["content"]})
    reference = out.pop()["content"] if out[-1]["role"] == "assistant" else None
    if not out or out[-1]["role"] != "user":
        raise ValueError("the conversation must end with a user turn (or a user turn and the answer to it)")
    return out, reference


def _json_prompt(value, source: str, line: int) -> PromptRow:
    key = f"{Path(source).name}:{line}"
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object with 'messages' or 'prompt'")
    if "messages" in value:
        messages, reference = _chat_prompt(value["messages"])
        return PromptRow(key, messages, source, line, "prompts", reference=reference)
    prompt = value.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("expected 'messages' (a chat) or 'prompt' (a non-empty string)")
    system = value.get("system")
    head = [{"role": "system", "content": system}] if isinstance(system, str) and system.strip() else []
    return PromptRow(key, head + [{"role": "user", "content": prompt}], source, line, "prompts")


def _json_rows(path, make_row, why: str = "eval scores every row") -> list[PromptRow]:
    """Every JSON row of a file through make_row(value, source, line); problems (file:line) are one
    DataError, and so is a file without rows."""
    source = str(path)
    rows, problems = [], []
    for raw in iter_rows(path):
        if raw.problem:
            problems.append(Problem(source, raw.line, raw.problem))
            continue
        try:
            rows.append(make_row(raw.value, source, raw.line))
        except ValueError as e:
            problems.append(Problem(source, raw.line, str(e)))
    _raise_problems(source, problems, "prompt", why)
    if not rows:
        raise DataError(f"{source}: no prompts")
    return rows


def _is_json(path) -> bool:
    return read_text(path).lstrip().startswith(("{", "["))


def read_prompt_file(path) -> list[PromptRow]:
    """A prompts file: JSON rows ({"messages": [...]} or {"prompt": ...}) when it starts with '{' or
    '[', else plain text with one prompt a line (blank lines skipped)."""
    if _is_json(path):
        return _json_rows(path, _json_prompt)
    source = str(path)
    rows = [PromptRow(f"{Path(source).name}:{i}", [{"role": "user", "content": line.strip()}], source, i, "prompts")
            for i, line in enumerate(read_text(path).split("\n"), start=1) if line.strip()]
    if not rows:
        raise DataError(f"{source}: no prompts")
    return rows


def read_data_prompts(path, *, on_event=None) -> tuple[list[PromptRow], list[Problem]]:
    """Chat rows of a dataset file (any chat format; a hub id reads its validation split), each
    without its last assistant turn. Rows the dataset reader skips come back as problems (as
    training skips them); text rows are an error."""
    from localtune.data.formats import read_dataset
    from localtune.data.hub import VALID_SPLITS, resolve_dataset

    path = resolve_dataset(path, split=VALID_SPLITS, on_event=on_event)
    ds = read_dataset(path)
    if ds.format == "text":
        raise DataError(f"{path}: text rows have no prompt to answer; --data needs chat rows "
                        "(messages, sharegpt, alpaca or prompt/completion)")
    rows = []
    for ex in ds.examples:
        messages, reference = _chat_prompt(ex.messages)
        rows.append(PromptRow(f"{Path(ex.source).name}:{ex.line}", messages, ex.source, ex.line, "data",
                              reference=reference))
    return rows, ds.problems


def _row_by_keys(value, source: str, line: int) -> PromptRow:
    """One JSON prompt row by its own keys: IFEval's schema (a "key" is optional: file:line), a chat
    ("messages"), or a "prompt" string. The row's own object stays in `fields` (reward functions)."""
    from dataclasses import replace

    if isinstance(value, dict) and "instruction_id_list" in value:
        full = {"key": f"{Path(source).name}:{line}", **value}
        return replace(_ifeval_row(full, source, line), fields=dict(value))
    return replace(_json_prompt(value, source, line), fields=dict(value) if isinstance(value, dict) else {})


def _unique_ifeval_keys(path, rows: list[PromptRow]) -> None:
    keys = [r.fields["key"] for r in rows if r.kind == "ifeval" and "key" in r.fields]
    seen = set()
    for k in keys:
        if k in seen:
            raise DataError(f"{path}: key {k!r} appears more than once; IFEval keys must be unique")
        seen.add(k)


def read_prompt_set(path, *, on_event=None, why: str = "eval scores every row") -> tuple[list[PromptRow], list[Problem]]:
    """Any prompt set, by its rows' shape; the one reader behind feedback sampling and RL prompts:
    - plain text: one prompt a line (fields {"prompt": line});
    - JSON prompt rows, each read by its own keys so one file may mix them: IFEval-schema rows (their
      instructions are what `ifeval` checks), chats ("messages" ending with a user turn; a last
      assistant turn is kept as the reference), "prompt" strings (optional "system"); every field
      of a row stays in PromptRow.fields for reward functions;
    - preference pairs: the pair's prompt, the chosen answer kept as reference;
    - any other chat dataset (alpaca, sharegpt, prompt/completion) as data rows; a path that is not
      a file as a hub dataset id.
    Returns (rows, problems): the problems are rows a dataset reader skips (as training skips
    them); a bad prompt row raises instead, naming file and line (`why` says why it matters)."""
    from localtune.data.preferences import is_preference_row, read_preferences

    if not Path(path).is_file():
        return read_data_prompts(path, on_event=on_event)
    if not _is_json(path):
        from dataclasses import replace

        return [replace(r, fields={"prompt": r.prompt}) for r in read_prompt_file(path)], []
    first = next((r.value for r in iter_rows(path) if r.problem is None and isinstance(r.value, dict)), {})
    if is_preference_row(first):
        ds = read_preferences(path)
        rows = [PromptRow(f"{Path(ex.source).name}:{ex.line}", ex.prompt, ex.source, ex.line, "data",
                          reference=ex.chosen) for ex in ds.examples]
        return rows, ds.problems
    if "instruction_id_list" in first or "messages" in first or ("prompt" in first and "completion" not in first):
        rows = _json_rows(path, _row_by_keys, why)
        _unique_ifeval_keys(path, rows)
        return rows, []
    return read_data_prompts(path, on_event=on_event)
