"""The data model shared by the reader, the template code, stats, split and preview."""

from __future__ import annotations

from dataclasses import dataclass, field

FORMATS = ("messages", "alpaca", "prompt_completion", "text", "sharegpt")


@dataclass(frozen=True)
class Example:
    """One usable row. Chat rows carry `messages` (roles system?/user/assistant alternating,
    ending with assistant); plain-text rows carry `text` and are trained on every token."""

    messages: list[dict] | None
    text: str | None
    source: str  # the file it came from
    line: int  # 1-based line where the row starts, for messages that point at it
    format: str


@dataclass(frozen=True)
class Problem:
    """A row that was skipped, with the place to fix it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class DatasetFile:
    path: str
    format: str
    examples: list[Example] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    n_rows: int = 0  # rows seen (blank lines excluded), usable or not
