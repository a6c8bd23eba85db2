"""Messages posted by thread workers to screens. Workers never touch widgets: they post these."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message


@dataclass
class _Msg(Message):
    """Base of the TUI's messages: Message.__post_init__ sets up a dataclass message."""


@dataclass
class DatasetLoaded(_Msg):
    path: str
    dsfile: object  # localtune.data.DatasetFile
    stats: dict
    lengths: list[int]  # token length per usable row ([] without a tokenizer)
    tokenizer: object | None = None
    max_seq_len: int = 2048
    raw_lines: list[str] = field(default_factory=list)
    tokenizer_error: str | None = None  # the stats stand; only the token lengths are missing


@dataclass
class SplitDone(_Msg):
    train: str
    valid: str
    n_train: int = 0
    n_valid: int = 0


@dataclass
class ChatReady(_Msg):
    session: object  # localtune.chat.ChatSession
    label: str


@dataclass
class ChatPiece(_Msg):
    side: str  # "base" | "tuned" | "chat"
    text: str


@dataclass
class ChatDone(_Msg):
    side: str
    stopped: bool = False


@dataclass
class ModelsListed(_Msg):
    models: list[dict] = field(default_factory=list)


@dataclass
class ModelJobProgress(_Msg):
    text: str
    done: float | None = None
    total: float | None = None


@dataclass
class ModelJobDone(_Msg):
    text: str


@dataclass
class ExportDone(_Msg):
    fmt: str
    path: str
    url: str | None = None  # the hub URL, when pushed
    push_error: str | None = None  # the export is there; only the upload failed


@dataclass
class PlanDone(_Msg):
    result: dict  # localtune.plan.plan's prediction
    batch_size: int


@dataclass
class JobDone(_Msg):
    """A command started for a screen (tui.jobs) has ended."""
    title: str
    code: int
    output: str
    seconds: float
