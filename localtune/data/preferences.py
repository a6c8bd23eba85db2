"""Preference pairs for DPO: read and check rows, tokenize each pair with the SFT loss masks.

Row shapes (other keys ignored; an optional "system" string applies to all of them, and an optional
"margin" number says by how much chosen should win: the reward model's margin, TRL's column):
  {"prompt": str, "chosen": str, "rejected": str}
  {"chosen": [messages], "rejected": [messages]}   shared leading messages = the prompt, and each
                                                   list ends with its own single assistant turn
  {"prompt": str | [messages], "chosen": str | [assistant message], "rejected": ...}
A pair becomes prompt messages (system?, user, ..., user) plus two assistant responses.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from localtune import events
from localtune.data.columns import apply_columns, parse_columns, rename_row
from localtune.data.example import DatasetFile, Example, Problem
from localtune.data.formats import DETECT_ROWS, RowProblem, _type_name, check_conversation, shown
from localtune.data.reader import iter_rows
from localtune.data.stats import _summary
from localtune.data.template import tokenize_example
from localtune.errors import DataError

FORMAT = "preference"  # the file-level format name `data check` prints
MAX_LISTED = 10


@dataclass(frozen=True)
class PreferenceExample:
    prompt: list[dict]  # system?/user/assistant... ending with a user turn
    chosen: str
    rejected: str
    source: str
    line: int
    format: str  # "prompt_chosen_rejected" (strings) or "messages" (message lists)
    margin: float | None = None  # the row's "margin" (reward models; DPO ignores it)

    def conversation(self, which: str) -> list[dict]:
        return self.prompt + [{"role": "assistant", "content": getattr(self, which)}]


@dataclass(frozen=True)
class TokenizedPair:
    chosen_ids: list[int]
    chosen_mask: list[bool]  # True on the final response's tokens (and its end-of-turn marker)
    rejected_ids: list[int]
    rejected_mask: list[bool]
    source: str
    line: int
    margin: float | None = None  # PreferenceExample.margin

    @property
    def length(self) -> int:
        return max(len(self.chosen_ids), len(self.rejected_ids))


def is_preference_row(row) -> bool:
    return isinstance(row, dict) and "chosen" in row and "rejected" in row


def looks_like_preferences(path: str | Path, columns=None) -> bool:
    """Most of the first object rows have both 'chosen' and 'rejected' (after --columns)."""
    mapping = parse_columns(columns)
    rows = []
    for r in iter_rows(path):
        if r.problem is None and isinstance(r.value, dict):
            rows.append(rename_row(r.value, mapping) if mapping else r.value)
            if len(rows) >= DETECT_ROWS:
                break
    return bool(rows) and sum(map(is_preference_row, rows)) * 2 > len(rows)


def _messages(value, key: str) -> list[dict]:
    if not isinstance(value, list):
        raise RowProblem(f"'{key}' must be a string or a list of messages, got {_type_name(value)}")
    if not value:
        raise RowProblem(f"'{key}' is empty")
    out = []
    for i, m in enumerate(value, start=1):
        if not isinstance(m, dict):
            raise RowProblem(f"{key} message {i}: expected an object with 'role' and 'content', "
                             f"got {_type_name(m)}")
        for k in ("role", "content"):
            if not isinstance(m.get(k), str):
                what = "missing" if k not in m else f"must be a string, got {_type_name(m[k])}"
                raise RowProblem(f"{key} message {i}: '{k}' {what}")
        out.append({"role": m["role"].strip().lower(), "content": m["content"]})
    return out


def _response(value, key: str) -> str:
    """A response given as a string or as a list holding one assistant message."""
    if isinstance(value, str):
        return value
    msgs = _messages(value, key)
    if len(msgs) != 1 or msgs[0]["role"] != "assistant":
        raise RowProblem(f"'{key}' must be one assistant message when 'prompt' is given "
                         f"(got {len(msgs)} message(s), first role {shown(msgs[0]['role'])})")
    return msgs[0]["content"]


def _split_shared_prefix(chosen: list[dict], rejected: list[dict]) -> tuple[list[dict], str, str]:
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    rest_c, rest_r = chosen[n:], rejected[n:]
    for key, rest in (("chosen", rest_c), ("rejected", rest_r)):
        if len(rest) != 1 or rest[0]["role"] != "assistant":
            if not rest:
                raise RowProblem("chosen and rejected are identical (nothing to prefer)")
            raise RowProblem(f"'chosen' and 'rejected' must share every message but their last "
                             f"assistant turn ({key} differs from message {n + 1} on)")
    return chosen[:n], rest_c[0]["content"], rest_r[0]["content"]


def to_preference(row, source: str, line: int) -> PreferenceExample:
    """Check one parsed row; raise RowProblem if it cannot be used."""
    if not isinstance(row, dict):
        raise RowProblem(f"expected a JSON object, got {_type_name(row)}")
    for key in ("chosen", "rejected"):
        if key not in row:
            raise RowProblem(f"missing key '{key}' (a preference row needs 'chosen' and 'rejected')")
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise RowProblem(f"'system' must be a string, got {_type_name(system)}")
    margin = _margin(row.get("margin"))
    if "prompt" in row:
        prompt = row["prompt"]
        prompt = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else _messages(prompt, "prompt")
        chosen, rejected = _response(row["chosen"], "chosen"), _response(row["rejected"], "rejected")
        fmt = "prompt_chosen_rejected" if isinstance(row["prompt"], str) else "messages"
    else:
        if isinstance(row["chosen"], str) or isinstance(row["rejected"], str):
            raise RowProblem("string 'chosen'/'rejected' need a 'prompt' (or give both as message lists)")
        prompt, chosen, rejected = _split_shared_prefix(_messages(row["chosen"], "chosen"),
                                                        _messages(row["rejected"], "rejected"))
        fmt = "messages"
    if system and system.strip() and not (prompt and prompt[0]["role"] == "system"):
        prompt = [{"role": "system", "content": system}] + prompt
    if not prompt or prompt[-1]["role"] != "user":
        raise RowProblem("the prompt must end with a user turn")
    for key, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise RowProblem(f"'{key}' is empty")
    check_conversation(prompt + [{"role": "assistant", "content": chosen}])
    if chosen.strip() == rejected.strip():
        raise RowProblem("chosen and rejected are identical (nothing to prefer)")
    return PreferenceExample(prompt, chosen, rejected, source, line, fmt, margin)


def _margin(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        got = shown(value) if isinstance(value, str) else _type_name(value) if not isinstance(value, float) else value
        raise RowProblem(f"'margin' must be a finite number, got {got}")
    return float(value)


def read_preferences(path: str | Path, columns: dict | str | None = None) -> DatasetFile:
    """Every row checked; bad rows become Problems. DataError if nothing is usable. `columns`
    renames keys first, as for read_dataset."""
    source = str(path)
    raw = list(iter_rows(path))
    if not raw:
        raise DataError(f"{source}: no rows (the file is empty)")
    raw = apply_columns(raw, columns, source)
    problems = [Problem(source, r.line, r.problem) for r in raw if r.problem]
    examples = []
    for r in raw:
        if r.problem is None:
            try:
                examples.append(to_preference(r.value, source, r.line))
            except RowProblem as e:
                problems.append(Problem(source, r.line, str(e)))
    problems.sort(key=lambda p: p.line)
    if not examples:
        head = "".join(f"\n  {p}" for p in problems[:5])
        raise DataError(f"{source}: no usable preference rows ({len(problems)} problems){head}")
    return DatasetFile(source, FORMAT, examples, problems, len(raw))


def _last_run_only(mask: list[bool]) -> list[bool]:
    """Keep the last contiguous run of targets: the final assistant turn. Earlier assistant turns
    of a multi-turn prompt are context, shared by both responses, and must not be scored."""
    out = [False] * len(mask)
    i = len(mask) - 1
    while i >= 0 and not mask[i]:
        i -= 1
    while i >= 0 and mask[i]:
        out[i] = True
        i -= 1
    return out


def tokenize_pair(ex: PreferenceExample, tokenizer) -> TokenizedPair:
    """(prompt + chosen) and (prompt + rejected), masks as SFT's but on the final response only."""
    sides = []
    for which in ("chosen", "rejected"):
        t = tokenize_example(Example(ex.conversation(which), None, ex.source, ex.line, "messages"), tokenizer)
        sides += [t.ids, _last_run_only(t.mask)]
    return TokenizedPair(*sides, ex.source, ex.line, ex.margin)


def _no_difference(p: TokenizedPair) -> bool:
    """Chosen and rejected are the same tokens: truncation cut away everything they differ in."""
    return p.chosen_ids == p.rejected_ids and p.chosen_mask == p.rejected_mask


def fit_pairs(pairs: list[TokenizedPair], max_seq_len: int, overlong: str = "truncate"):
    """Apply the max length to both sides of each pair together. Returns (kept, indices, counts);
    counts["dropped"] includes counts["identical"]: pairs that truncation made identical (they
    carry no preference: DPO's loss would sit at log 2 on them)."""
    kept, index, truncated, dropped, identical = [], [], 0, 0, 0
    for i, p in enumerate(pairs):
        if p.length > max_seq_len:
            if overlong == "drop":
                dropped += 1
                continue
            p = replace(p, chosen_ids=p.chosen_ids[:max_seq_len], chosen_mask=p.chosen_mask[:max_seq_len],
                        rejected_ids=p.rejected_ids[:max_seq_len],
                        rejected_mask=p.rejected_mask[:max_seq_len])
            truncated += 1
        if not any(p.chosen_mask[1:]) or not any(p.rejected_mask[1:]):
            dropped += 1  # a response cut away entirely: nothing to compare
            continue
        if _no_difference(p):
            dropped += 1
            identical += 1
            continue
        kept.append(p)
        index.append(i)
    return kept, index, {"truncated": truncated, "dropped": dropped, "identical": identical}


def load_pairs(path: str, tokenizer, *, max_seq_len: int, overlong: str = "truncate",
               on_event=lambda e: None, role: str = "train", columns=None) -> list[TokenizedPair]:
    """Read, check, tokenize and fit a preference file, reporting like train.prepare.load_rows."""
    ds = read_preferences(path, columns)
    for p in ds.problems:
        on_event(events.DataProblem(role, str(p)).to_dict())
    tokenized = [tokenize_pair(ex, tokenizer) for ex in ds.examples]
    pairs, _, counts = fit_pairs(tokenized, max_seq_len, overlong)
    longest = max(p.length for p in tokenized)
    if not pairs and counts["identical"]:
        raise DataError(f"{path}: all {counts['identical']} pairs left after --max-seq-len {max_seq_len} have "
                        f"identical chosen and rejected (truncation cut off where they differ); raise "
                        f"--max-seq-len (the longest pair has {longest} tokens)")
    if not pairs:
        raise DataError(f"{path}: no usable pairs after validation and --max-seq-len {max_seq_len}")
    if counts["identical"]:
        on_event(events.Warn(f"{path}: {counts['identical']} of {len(tokenized)} pairs became identical when "
                             f"cut to --max-seq-len {max_seq_len} and were dropped (the longest pair has "
                             f"{longest} tokens)").to_dict())
    on_event(events.Data(role, str(path), ds.format, ds.n_rows, len(pairs), problems=len(ds.problems), **counts,
                         tokens=sum(len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)).to_dict())
    return pairs


def preference_stats(ds: DatasetFile, tokenizer=None, *, max_seq_len: int | None = None) -> dict:
    """Numbers for `localtune data stats` on a preference file (JSON-serialisable)."""
    identical = [p.line for p in ds.problems if "identical" in p.message]
    stats = {
        "path": ds.path, "format": ds.format, "rows": ds.n_rows, "usable_rows": len(ds.examples),
        "problems": len(ds.problems), "formats": dict(Counter(ex.format for ex in ds.examples)),
        "identical_pairs": {"count": len(identical), "lines": identical[:MAX_LISTED]},
        "multi_turn_prompts": sum(sum(m["role"] == "user" for m in ex.prompt) > 1 for ex in ds.examples),
    }
    if tokenizer is None:
        return stats
    tok = [tokenize_pair(ex, tokenizer) for ex in ds.examples]
    stats["tokens"] = _summary([p.length for p in tok])
    stats["chosen_tokens"] = _summary([sum(p.chosen_mask) for p in tok])
    stats["rejected_tokens"] = _summary([sum(p.rejected_mask) for p in tok])
    if max_seq_len is not None:
        over = [ex.line for ex, p in zip(ds.examples, tok) if p.length > max_seq_len]
        stats["max_seq_len"] = max_seq_len
        stats["over_max_seq_len"] = {"count": len(over), "lines": over[:MAX_LISTED]}
        lost = [ex.line for ex, p in zip(ds.examples, tok)
                if p.length > max_seq_len and fit_pairs([p], max_seq_len)[2]["identical"]]
        stats["identical_after_truncation"] = {"count": len(lost), "lines": lost[:MAX_LISTED]}
    return stats
