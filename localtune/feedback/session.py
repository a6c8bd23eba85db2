"""A feedback session directory: the only code that names the files inside one.

    DIR/
      session.json       the manifest: kind, format, status ("sampling" -> "ready"), created, model,
                         model_path, adapter, sampling, n, prompt sets, counts
      candidates.jsonl   one prompt a line: {"id", "messages", "candidates": [{"text", ...}], ...}
      labels.jsonl       the labels log: one record a line, appended and fsynced as it is given
      .lock              the writer's lock (a rater, a judge, the sampler)

Care as for a run directory: the manifest and the candidates are written atomically (candidates
first, so a "ready" manifest is only ever next to complete candidates); the labels log is
append-only (undo is a record, not a deletion) and replayed on open; one writer at a time holds the
lock; and localtune writes only into a folder it created (a new or empty one, or a session of its
own whose sampling was interrupted), never into anything else.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localtune.errors import LocaltuneError, RunError
from localtune.fsutil import atomic_write_json, atomic_write_text
from localtune.runs.lock import PidLock

SESSION_FILE = "session.json"
CANDIDATES_FILE = "candidates.jsonl"
LABELS_FILE = "labels.jsonl"
LOCK_FILE = ".lock"
KIND = "localtune-feedback-session"
FORMAT_VERSION = 1


class SessionError(LocaltuneError):
    """A folder that is not a (usable) feedback session, or one in use."""


@dataclass(frozen=True)
class Candidate:
    """One answer to rate. `tokens`, `finish_reason`, `temperature` and `seed` say how it was made."""

    text: str
    finish_reason: str = "stop"
    tokens: int = 0
    temperature: float | None = None
    seed: int | None = None

    @property
    def ended(self) -> bool:
        return self.finish_reason == "stop"


@dataclass(frozen=True)
class PromptItem:
    """A prompt (chat messages ending with a user turn) and its candidate answers."""

    id: str
    messages: list[dict]
    candidates: tuple[Candidate, ...]
    key: str | None = None
    source: str | None = None
    line: int | None = None
    reference: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"id": self.id, "key": self.key, "source": self.source, "line": self.line,
               "messages": self.messages, "candidates": [asdict(c) for c in self.candidates]}
        if self.reference is not None:
            out["reference"] = self.reference
        if self.extra:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_json(cls, d: dict) -> "PromptItem":
        return cls(d["id"], d["messages"], tuple(Candidate(**c) for c in d["candidates"]), d.get("key"),
                   d.get("source"), d.get("line"), d.get("reference"), d.get("extra") or {})


def item_id(index: int) -> str:
    return f"p{index + 1:04d}"


class LabelsLog:
    """The append-only labels log. Each record is one line written with one write() on an O_APPEND
    descriptor and fsynced before append() returns, so a label the caller has shown as saved
    survives a kill. A torn last line (a kill inside write()) is skipped by readers and cut off by
    the next writer (it was never acknowledged)."""

    def __init__(self, path: Path):
        self.path = path
        self.next_seq = 1

    def read(self) -> list[dict]:
        records = []
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return records
        for raw in data.split(b"\n"):
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                continue  # blank, or the torn tail of a killed writer
            if isinstance(rec, dict) and isinstance(rec.get("seq"), int):
                records.append(rec)
        return records

    def prepare(self) -> list[dict]:
        """Before writing (lock held): cut a torn tail, read everything, continue the numbering."""
        try:
            with open(self.path, "rb+") as f:
                data = f.read()
                if data and not data.endswith(b"\n"):
                    f.truncate(data.rfind(b"\n") + 1)
                    os.fsync(f.fileno())
        except FileNotFoundError:
            pass
        records = self.read()
        self.next_seq = max((r["seq"] for r in records), default=0) + 1
        return records

    def append(self, record: dict) -> dict:
        record = {"seq": self.next_seq, "time": round(time.time(), 3), **record}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.next_seq += 1
        return record


class FeedbackSession:
    """An opened session: manifest, items (prompts with candidates), the labels log and its lock.
    Reading needs no lock; `acquire()` before appending labels (the rater and the judge do)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest: dict = {}
        self.items: list[PromptItem] = []
        self.log = LabelsLog(self.path / LABELS_FILE)
        self._lock = PidLock(self.path / LOCK_FILE)
        self.created_dir = False  # begin() made the folder (abandon() may remove it again)

    # -- where things are ---------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / SESSION_FILE

    @property
    def candidates_path(self) -> Path:
        return self.path / CANDIDATES_FILE

    @property
    def labels_path(self) -> Path:
        return self.log.path

    # -- creating --------------------------------------------------------------------------------
    @classmethod
    def begin(cls, path: str | Path, manifest: dict) -> "FeedbackSession":
        """Claim `path` for a new session (locked, manifest status "sampling"); `finish(items)`
        completes it. Refused for anything but a new or empty folder, or a session of ours whose
        sampling never finished."""
        session = cls(path)
        session._check_new()
        session.created_dir = not session.path.exists()
        session.path.mkdir(parents=True, exist_ok=True)
        session.acquire()
        try:
            session._check_new()  # again, under the lock: another process may have finished it
            session.manifest = {"kind": KIND, "format": FORMAT_VERSION, "status": "sampling",
                                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **manifest}
            atomic_write_json(session.manifest_path, session.manifest)
        except BaseException:
            session.release()
            raise
        return session

    def finish(self, items: list[PromptItem], **manifest_updates) -> "FeedbackSession":
        """Write the candidates, then the manifest as "ready"; releases the lock."""
        if not items:
            raise SessionError(f"{self.path}: no prompt has two different answers to compare; nothing to rate")
        try:
            atomic_write_text(self.candidates_path,
                              "".join(json.dumps(i.to_json(), ensure_ascii=False) + "\n" for i in items))
            self.manifest.update(manifest_updates, status="ready", prompts=len(items),
                                 candidates=sum(len(i.candidates) for i in items))
            atomic_write_json(self.manifest_path, self.manifest)
            self.items = list(items)
        finally:
            self.release()
        return self

    def abandon(self) -> None:
        """Undo begin() after a failed sampling: remove what begin() wrote (manifest, candidates,
        lock), and the folder if begin() made it and nothing else is in it. Only for a session
        still "sampling"."""
        if self.manifest.get("status") == "sampling" and self.locked:
            for p in (self.manifest_path, self.candidates_path):
                p.unlink(missing_ok=True)
            self.release()
            if self.created_dir:
                try:
                    self.path.rmdir()  # only succeeds when empty
                except OSError:
                    pass

    @classmethod
    def create(cls, path: str | Path, manifest: dict, items: list[PromptItem]) -> "FeedbackSession":
        """A whole session at once (begin + finish)."""
        return cls.begin(path, manifest).finish(items)

    def _check_new(self) -> None:
        p = self.path
        if not p.exists():
            return
        if p.is_symlink() or not p.is_dir():
            raise SessionError(f"{p}: exists and is not a folder; choose another --out")
        names = {c.name for c in p.iterdir()} - ({LOCK_FILE} if self._lock.held else set())
        if not names:
            return
        manifest = _read_json(self.manifest_path) if SESSION_FILE in names else None
        ours = isinstance(manifest, dict) and manifest.get("kind") == KIND
        leftovers = {n for n in names if n.startswith(".") and n.endswith(".tmp")}  # a killed atomic write
        if ours and manifest.get("status") == "sampling" \
                and names - leftovers <= {SESSION_FILE, LOCK_FILE, CANDIDATES_FILE}:
            return  # our own session whose sampling was interrupted (the lock says if it still runs)
        what = "a feedback session already" if ours else "not empty"
        raise SessionError(f"{p}: {what}; choose another --out (localtune writes only into a new or "
                           "empty folder)")

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "FeedbackSession":
        session = cls(path)
        session.reload()
        return session

    def reload(self) -> None:
        m = _read_json(self.manifest_path)
        if not isinstance(m, dict) or m.get("kind") != KIND:
            raise SessionError(f"{self.path}: not a feedback session (no {SESSION_FILE} made by "
                               "`localtune feedback sample`)")
        if m.get("format", 0) > FORMAT_VERSION:
            raise SessionError(f"{self.manifest_path}: format {m.get('format')} is newer than this localtune "
                               f"reads ({FORMAT_VERSION}); upgrade localtune")
        if m.get("status") != "ready":
            raise SessionError(f"{self.path}: sampling did not finish (status {m.get('status')!r}); "
                               "run `localtune feedback sample` again with this --out")
        items = []
        try:
            with open(self.candidates_path, encoding="utf-8") as f:
                for n, line in enumerate(f, start=1):
                    if line.strip():
                        items.append(PromptItem.from_json(json.loads(line)))
        except FileNotFoundError:
            raise SessionError(f"{self.candidates_path}: missing") from None
        except (ValueError, KeyError, TypeError) as e:
            raise SessionError(f"{self.candidates_path}:{n}: unreadable: {e}") from None
        self.manifest, self.items = m, items

    def item(self, prompt_id: str) -> PromptItem:
        for it in self.items:
            if it.id == prompt_id:
                return it
        raise KeyError(prompt_id)

    # -- labels ----------------------------------------------------------------------------------
    def records(self) -> list[dict]:
        """Every complete record of the labels log, in order."""
        return self.log.read()

    def append(self, record: dict) -> dict:
        """Append one record (fsynced before returning); the session's lock must be held."""
        if not self._lock.held:
            raise RunError(f"{self.path}: take the session's lock (acquire) before writing labels")
        return self.log.append(record)

    # -- lock ------------------------------------------------------------------------------------
    def acquire(self) -> "FeedbackSession":
        self._lock.acquire()
        self.log.prepare()
        return self

    def release(self) -> None:
        self._lock.release()

    @property
    def locked(self) -> bool:
        return self._lock.held

    def lock_holder(self) -> dict | None:
        return self._lock.holder()

    def __enter__(self) -> "FeedbackSession":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def is_session(path: str | Path) -> bool:
    m = _read_json(Path(path) / SESSION_FILE)
    return isinstance(m, dict) and m.get("kind") == KIND


def list_sessions(*roots: str | Path) -> list[Path]:
    """Feedback sessions directly under each root (and under each run's feedback folder), newest
    first: what the TUI offers to open."""
    from localtune.runs import RunDir

    found = []
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        for d in root.iterdir():
            runs_sessions = RunDir(d).feedback_dir("")  # RUN/feedback/ itself
            candidates = [d] + (list(runs_sessions.iterdir()) if runs_sessions.is_dir() else [])
            found += [c for c in candidates if c.is_dir() and is_session(c)]
    return sorted(set(found), key=lambda p: (p / SESSION_FILE).stat().st_mtime, reverse=True)
