"""A directory's lock file: one writer at a time (a trainer in a run directory, a rater or a judge in
a feedback session). The file holds the owner's pid, host and start time; a lock whose process is
gone (or is a zombie, or whose pid was reused) is stale and is taken over."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from localtune.errors import RunError
from localtune.runs.liveness import holder_running, start_time, this_host


class PidLock:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.held = False

    def acquire(self) -> None:
        """Take the lock; RunError naming the holder when a live process has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None or (holder.get("host") == this_host() and not holder_running(holder)):
                    # Unreadable (a torn write of a dead process) or stale: its process is gone.
                    self.path.unlink(missing_ok=True)
                    continue
                raise RunError(
                    f"{self.path.parent}: in use by process {holder.get('pid')} on {holder.get('host')} "
                    f"(remove {self.path} if that process is gone)"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": this_host(), "time": time.time(),
                           "started": start_time(os.getpid())}, f)
            self.held = True
            return
        raise RunError(f"{self.path.parent}: could not take the lock {self.path}")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def holder(self) -> dict | None:
        """Who holds it ({"pid", "host", "time", "started"}), None when free or unreadable."""
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None
