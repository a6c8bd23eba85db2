"""Rating as keys: the one implementation behind `localtune feedback rate` (plain terminal) and the
TUI's Rate screen. A view shows `rater.item`, `rater.hint()` and `rater.progress()`, sends each key
to `rater.press(key)` and shows the reply; for an edit it collects the text and calls
`rater.submit_edit(text)`. Every finished label is appended to the session's log (fsynced) before
press() returns.

Keys: 1..4 the best answer; then, with 3 or 4 candidates, 1..4 the worst (n or enter: no worst);
t tie (all equally good), s skip, e edit (then 1..4: which answer to correct), u undo (the pending
pick, else the last saved label), escape back from a pending pick (never a saved label), q quit.
Letters are case-insensitive.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from localtune.feedback.labels import LabelState, rank_order, replay
from localtune.feedback.session import FeedbackSession, PromptItem

BEST, WORST, EDIT_WHICH, EDITING, DONE = "best", "worst", "edit_which", "editing", "done"


@dataclass(frozen=True)
class Reply:
    """What a key did. kind: "saved" (a label written), "pending" (waiting for a second key),
    "edit" (collect the edited text now), "undone", "ignored" (not a key of this step),
    "done" (every prompt has a label), "quit"."""

    kind: str
    message: str = ""


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    ranked: int
    ties: int
    skipped: int
    edited: int

    def text(self) -> str:
        return (f"{self.done}/{self.total} rated · best {self.ranked} · tie {self.ties} · "
                f"skip {self.skipped} · edit {self.edited}")


class Rater:
    """Walks the prompts without a person's label, in order. The session must be locked."""

    def __init__(self, session: FeedbackSession, rater: str | None = None):
        if not session.locked:
            session.acquire()
        self.session = session
        self.who = rater or _user()
        self.state: LabelState = replay(session.records())
        self.step = BEST
        self.best: int | None = None
        self.edit_target: int | None = None
        self.item: PromptItem | None = None
        self._next_item()

    # -- what to show ----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.item.candidates) if self.item else 0

    @property
    def index(self) -> int:
        """The position (0-based) of the current prompt in the session."""
        return self.session.items.index(self.item) if self.item else len(self.session.items)

    def progress(self) -> Progress:
        c = self.state.counts()
        return Progress(len(self.state.human), len(self.session.items), c["rank"], c["tie"], c["skip"], c["edit"])

    def hint(self, quit_key: bool = True) -> str:
        keys = f"1-{self.n}" if self.n else ""
        q = " · q quit" if quit_key else ""
        if self.step == BEST:
            return f"best? {keys} · t tie · s skip · e edit · u undo{q}"
        if self.step == WORST:
            return f"best is {self.best + 1}; worst? {keys} · n no worst · u back{q}"
        if self.step == EDIT_WHICH:
            return f"edit which answer? {keys} · u back"
        if self.step == EDITING:
            return f"editing answer {self.edit_target + 1}"
        return f"every prompt is rated · u undo{q}"

    # -- keys ------------------------------------------------------------------------------------
    def press(self, key: str) -> Reply:
        key = {"enter": "n", "return": "n"}.get(key, key)
        key = key.lower() if len(key) == 1 else key
        if key == "q":
            return Reply("quit")
        if key == "u" or (key == "escape" and self.step in (WORST, EDIT_WHICH, EDITING)):
            return self._undo()
        if self.step == DONE:
            return Reply("done", "every prompt is rated")
        number = int(key) - 1 if key in ("1", "2", "3", "4") else None
        if number is not None and number >= self.n:
            return Reply("ignored", f"there are {self.n} answers")
        if self.step == BEST:
            if number is not None:
                if self.n <= 2:
                    return self._save({"type": "rank", "best": number, "worst": 1 - number,
                                       "order": rank_order(self.n, number, 1 - number)})
                self.best, self.step = number, WORST
                return Reply("pending", f"best: {number + 1}; now the worst (n: none)")
            if key == "t":
                return self._save({"type": "tie"})
            if key == "s":
                return self._save({"type": "skip"})
            if key == "e":
                self.step = EDIT_WHICH
                return Reply("pending", "which answer do you correct?")
        elif self.step == WORST:
            if number is not None and number != self.best:
                return self._save({"type": "rank", "best": self.best, "worst": number,
                                   "order": rank_order(self.n, self.best, number)})
            if key == "n":
                return self._save({"type": "rank", "best": self.best, "worst": None,
                                   "order": rank_order(self.n, self.best, None)})
            if number == self.best:
                return Reply("ignored", "that one is the best; pick another as the worst")
        elif self.step == EDIT_WHICH and number is not None:
            self.edit_target, self.step = number, EDITING
            return Reply("edit", f"edit answer {number + 1}")
        return Reply("ignored", f"not a key here: {self.hint()}")

    def submit_edit(self, text: str) -> Reply:
        """The corrected answer for the prompt (after press() replied "edit")."""
        if self.step != EDITING:
            return Reply("ignored", "no edit in progress")
        original = self.item.candidates[self.edit_target].text
        if not text.strip():
            return Reply("ignored", "the corrected answer is empty; edit again or cancel")
        if text.strip() == original.strip():
            return Reply("ignored", "the answer is unchanged; edit it, or cancel and pick the best")
        return self._save({"type": "edit", "candidate": self.edit_target, "text": text.rstrip("\n")})

    def cancel_edit(self) -> Reply:
        self.step, self.edit_target = BEST, None
        return Reply("undone", "edit cancelled")

    # -- internals -------------------------------------------------------------------------------
    def _save(self, label: dict) -> Reply:
        self.session.append({"source": "human", "prompt": self.item.id, "rater": self.who, **label})
        self.state = replay(self.session.records())
        saved = self.item.id
        self._next_item()
        return Reply("saved", f"saved {label['type']} for {saved}")

    def _undo(self) -> Reply:
        if self.step in (WORST, EDIT_WHICH, EDITING):
            self.step, self.best, self.edit_target = BEST, None, None
            return Reply("undone", "back to the best pick")
        last = self.state.last_human()
        if last is None:
            return Reply("ignored", "nothing to undo")
        self.session.append({"source": "human", "type": "undo", "target": last["seq"], "prompt": last["prompt"],
                             "rater": self.who})
        self.state = replay(self.session.records())
        self.item = self.session.item(last["prompt"])
        self.step, self.best, self.edit_target = BEST, None, None
        return Reply("undone", f"took back the {last['type']} label of {last['prompt']}")

    def _next_item(self) -> None:
        self.item = next((it for it in self.session.items if it.id not in self.state.human), None)
        self.step = BEST if self.item else DONE
        self.best = self.edit_target = None

    def close(self) -> None:
        self.session.release()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd entry)
        return "unknown"
