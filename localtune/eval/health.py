"""Answer health: does an answer end by itself, and does it loop?

An answer loops when a non-empty line appears 3+ times, or a 4-word sequence appears 3+ times
(overlapping occurrences count; words are compared case-folded without surrounding punctuation, so
"Aye!" and "aye" are one word). Small models under greedy decoding loop like this until the token
limit, which a falling loss never shows.
"""

from __future__ import annotations

import re
from collections import Counter

REPEATS = 3
NGRAM = 4
_WORD = re.compile(r"\w+(?:['’]\w+)*")


def repeated_line(text: str, times: int = REPEATS) -> str | None:
    """The first non-empty line (stripped) that appears `times` or more times, else None."""
    counts = Counter(line.strip() for line in text.splitlines() if line.strip())
    return next((line for line, c in counts.items() if c >= times), None)


def repeated_ngram(text: str, n: int = NGRAM, times: int = REPEATS) -> tuple[str, ...] | None:
    """The first n-word sequence that appears `times` or more times, else None."""
    words = [w.casefold() for w in _WORD.findall(text)]
    counts = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return next((g for g, c in counts.items() if c >= times), None)


def loops(text: str) -> bool:
    return repeated_line(text) is not None or repeated_ngram(text) is not None
