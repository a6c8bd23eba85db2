"""`localtune feedback rate` in a plain terminal: the prompt and its answers as text, one key per
label (no Enter on a terminal; piped stdin for scripts: one character a key, whitespace ignored).
The keys and the labels log are localtune.feedback.rating's; this file only reads keys and prints.

An edit opens $VISUAL / $EDITOR on a terminal; otherwise (no editor, or piped stdin) the corrected
answer is typed inline and ends with a line holding only ".".
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile

RULE = "─"


class KeyReader:
    """Single keys from stdin: a terminal in cbreak mode (Ctrl-C still interrupts), or a pipe."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdin
        self.tty = self.stream.isatty()
        self._saved = None

    def __enter__(self) -> "KeyReader":
        if self.tty:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.stream.fileno())
            tty.setcbreak(self.stream.fileno(), termios.TCSANOW)  # keep keys typed ahead (no flush)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)

    @contextlib.contextmanager
    def line_mode(self):
        """Ordinary line input (and echo) for typing an answer or running an editor."""
        self._restore()
        try:
            yield
        finally:
            if self._saved is not None:
                import termios
                import tty

                tty.setcbreak(self.stream.fileno(), termios.TCSANOW)

    def key(self) -> str | None:
        """The next key ("1", "t", "enter", "escape", ...); None at the end of input."""
        while True:
            ch = self.stream.read(1)
            if ch == "" or ch == "\x04":  # end of input, Ctrl-D
                return None
            if ch in "\r\n":
                if self.tty:
                    return "enter"
                continue  # a script's line breaks are not keys
            if ch in " \t":
                continue
            if ch == "\x1b":
                return "escape"
            return ch

    def read_lines(self) -> str | None:
        """Lines up to one holding only "." (None at the end of input: cancel). Blank lines around
        the text are dropped (a script's line break after the edit keys is not part of the answer)."""
        lines = []
        with self.line_mode():
            while True:
                line = self.stream.readline()
                if line == "":
                    return None
                if line.rstrip("\r\n") == ".":
                    return "\n".join(lines).strip("\n")
                lines.append(line.rstrip("\r\n"))


def show_item(rater, out) -> None:
    item = rater.item
    width = min(os.get_terminal_size(out.fileno()).columns, 100) if out.isatty() else 72
    head = f" {rater.index + 1}/{len(rater.session.items)} · {item.id}" + (f" · {item.key}" if item.key else "") + " "
    print(f"\n{head.center(width, RULE)}", file=out)
    for m in item.messages:
        print(f"[{m['role']}] {m['content']}", file=out)
    for i, c in enumerate(item.candidates, start=1):
        tag = "" if c.ended else "  (cut at max tokens)"
        print(f"{(f' answer {i}{tag} ').center(width, RULE)}\n{c.text}", file=out)
    print(RULE * width, file=out)


def edit_text(keys: KeyReader, original: str, out) -> str | None:
    """The corrected answer: $VISUAL/$EDITOR on a terminal, else typed inline."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if editor and keys.tty:
        fd, path = tempfile.mkstemp(prefix="localtune-edit-", suffix=".txt")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(original)
            with keys.line_mode():
                code = subprocess.call(shlex.split(editor) + [path])
            if code != 0:
                print(f"{editor} exited with {code}: edit cancelled", file=out)
                return None
            with open(path, encoding="utf-8") as f:
                return f.read()
        finally:
            os.unlink(path)
    print("type the corrected answer; end it with a line holding only '.' (the answer was:)", file=out)
    print(original, file=out)
    print(RULE * 8, file=out, flush=True)
    return keys.read_lines()


def rate(session, *, rater_name: str | None = None, stdin=None, out=None) -> int:
    """The rating loop. Returns 0 (quit or done)."""
    from localtune.feedback.rating import EDITING, Rater

    out = out or sys.stdout
    rater = Rater(session, rater_name)
    try:
        with KeyReader(stdin) as keys:
            shown = None
            while True:
                if rater.item is None:
                    print(f"\nall {len(session.items)} prompts rated ({rater.progress().text()})", file=out)
                    print("u undo · q quit", file=out, flush=True)
                elif rater.item is not shown:
                    show_item(rater, out)
                    shown = rater.item
                if rater.item is not None:
                    print(f"[{rater.progress().text()}]  {rater.hint()}", file=out, flush=True)
                key = keys.key()
                if key is None:
                    print("end of input: every label given is saved", file=out, flush=True)
                    return 0
                reply = rater.press(key)
                if reply.kind == "quit":
                    print(f"every label is saved ({rater.progress().text()}); `localtune feedback rate "
                          f"{session.path}` continues where you stopped", file=out, flush=True)
                    return 0
                if reply.kind == "edit":
                    text = edit_text(keys, rater.item.candidates[rater.edit_target].text, out)
                    reply = rater.cancel_edit() if text is None else rater.submit_edit(text)
                    if reply.kind == "ignored" and rater.step == EDITING:
                        rater.cancel_edit()
                if reply.kind == "undone":
                    shown = None  # show the prompt again
                if reply.message:
                    print(f"{reply.kind}: {reply.message}", file=out, flush=True)
    finally:
        rater.close()
