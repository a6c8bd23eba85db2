"""Read a JSONL file or a JSON-array file into raw rows, each with the 1-based line it starts on.

Nothing here knows about dataset formats: a row is any JSON value, or a problem (invalid UTF-8,
invalid JSON) that the caller reports and skips.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from pathlib import Path

from localtune.errors import DataError

_BOM = "\ufeff"
# Bytes that are not valid UTF-8 survive decoding as lone surrogates (surrogateescape), so one bad
# byte costs only its own row instead of the whole file.
_BAD_BYTE = re.compile("[\udc80-\udcff]")
_WS = re.compile(r"[ \t\r\n]*")  # JSON whitespace only


@dataclass(frozen=True)
class RawRow:
    line: int
    raw: str  # the row's source text (a JSONL line without its line ending, or an array element)
    value: object = None  # parsed JSON, when problem is None
    problem: str | None = None


def _bad_utf8(text: str) -> str | None:
    m = _BAD_BYTE.search(text)
    if m is None:
        return None
    byte = ord(m.group()) - 0xDC00
    return f"invalid UTF-8 (byte 0x{byte:02x} at character {m.start() + 1})"


def _json_error(e: json.JSONDecodeError) -> str:
    return f"invalid JSON: {e.msg} at column {e.colno}"


def _unparsable(e: Exception) -> str:
    # JSON the parser still refuses: nesting past Python's recursion limit (RecursionError), an
    # integer longer than sys.get_int_max_str_digits() (ValueError).
    return "invalid JSON: nested too deeply" if isinstance(e, RecursionError) else f"invalid JSON: {e}"


def _lone_surrogate(raw: str, value) -> str | None:
    """A \\udXXX escape without its pair parses into a string that is not text: no tokenizer or
    terminal can encode it, so the row is refused here rather than crashing later."""
    if "\\u" not in raw:
        return None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        return f"invalid JSON string: unpaired surrogate escape \\u{ord(e.object[e.start]):04x}"
    except RecursionError:
        return "invalid JSON: nested too deeply"
    return None


def read_text(path: str | Path) -> str:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a .jsonl or .json file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    text = data.decode("utf-8", errors="surrogateescape")
    return text[1:] if text.startswith(_BOM) else text


def _jsonl_rows(text: str):
    # split("\n") rather than splitlines(): U+2028 and friends are legal inside JSON strings.
    for i, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        bad = _bad_utf8(line)
        if bad:
            yield RawRow(i, line, problem=bad)
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            yield RawRow(i, line, problem=_json_error(e))
            continue
        except (RecursionError, ValueError) as e:
            yield RawRow(i, line, problem=_unparsable(e))
            continue
        bad = _lone_surrogate(line, value)
        yield RawRow(i, line, None if bad else value, problem=bad)


def _array_rows(text: str):
    """Elements of a top-level JSON array, parsed one by one so each knows its starting line."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(pos: int) -> int:
        return bisect.bisect_right(starts, pos)

    decoder = json.JSONDecoder()
    pos = _WS.match(text, text.index("[") + 1).end()
    if text.startswith("]", pos):
        pos = _WS.match(text, pos + 1).end()
        if pos != len(text):
            yield RawRow(line_of(pos), "", problem="invalid JSON: extra data after the array")
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            # Inside a broken array there is no safe place to resume: stop, keep what was read.
            problem = _json_error(e) + "; the rest of the array was not read"
            yield RawRow(line_of(e.pos), "", problem=problem)
            return
        except (RecursionError, ValueError) as e:
            yield RawRow(line_of(pos), "", problem=_unparsable(e) + "; the rest of the array was not read")
            return
        raw = text[pos:end]
        bad = _bad_utf8(raw)
        if bad:
            m = _BAD_BYTE.search(raw)
            yield RawRow(line_of(pos + m.start()), raw, problem=bad)
        else:
            bad = _lone_surrogate(raw, value)
            yield RawRow(line_of(pos), raw, None if bad else value, problem=bad)
        pos = _WS.match(text, end).end()
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()
            continue
        if text.startswith("]", pos):
            pos = _WS.match(text, pos + 1).end()
            if pos != len(text):
                yield RawRow(line_of(pos), "", problem="invalid JSON: extra data after the array")
            return
        what = "end of file" if pos >= len(text) else repr(text[pos])
        yield RawRow(line_of(pos), "", problem=f"invalid JSON: expected ',' or ']', got {what}; "
                     "the rest of the array was not read")
        return


def iter_rows(path: str | Path):
    """Yield RawRow for every non-blank JSONL line, or every element of a JSON array file.
    A file whose first non-blank character is '[' is a JSON array."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        yield from _array_rows(text)
    else:
        yield from _jsonl_rows(text)
