"""Text from data rows, model output, file names and run names, made safe to print on a terminal.

A row holding "\x1b]0;title\x07" or "\x1b[2J" would retitle or clear the user's terminal if printed
raw, and a right-to-left override would make a line read differently than it is. Control and
bidirectional-override characters are shown as escapes instead (newlines and tabs stay, unless the
text must fit on one line)."""

from __future__ import annotations

import re
import unicodedata

_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with every control character (C0, DEL, C1) and bidi override escaped; newlines and
    tabs are kept unless `one_line`."""
    keep = "" if one_line else "\n\t"
    if not _UNSAFE.search(text) and not (one_line and ("\n" in text or "\t" in text)):
        return text
    return "".join(
        _escape(ch) if (ch not in keep and (unicodedata.category(ch) == "Cc" or ch in _BIDI)) else ch
        for ch in text
    )


_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f" + "".join(sorted(_BIDI)) + "]")
