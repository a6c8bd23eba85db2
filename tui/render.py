"""How things are shown: paths relative to the working directory, the dataset summary, the
loss-mask preview of one row (trained tokens highlighted), and a run's predicted cost."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text

TRAINED = "bold black on green"
CONTEXT = "grey70"


def relative(path: str | Path, root: str | Path | None = None) -> str:
    """A path as shown: relative to the working directory when it is inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path(root or Path.cwd()).resolve()))
    except ValueError:
        return str(path)


def summary_text(stats: dict, lengths: list[int], max_seq_len: int, shown_path: str) -> str:
    dups = stats.get("duplicates", {})
    lines = [
        f"file: {shown_path}",
        f"format: {stats.get('format')}   rows: {stats.get('rows')}   usable: {stats.get('usable_rows')}"
        f"   problems: {stats.get('problems')}",
        f"duplicates: {dups.get('count', 0)}"
        + (f" (lines {', '.join(map(str, dups.get('lines', [])))})" if dups.get("count") else ""),
    ]
    if lengths:
        s = sorted(lengths)
        over = sum(n > max_seq_len for n in lengths)
        lines.append(f"tokens per row: median {s[len(s) // 2]}  max {s[-1]}  total {sum(s)}   "
                     f"over max length {max_seq_len}: {over}")
    else:
        lines.append("token lengths: give a model (tokenizer) and press Enter")
    return "\n".join(lines)


def mask_text(segments: list[tuple[str, bool]]) -> Text:
    """The rendered row, trained tokens highlighted (what the loss sees)."""
    text = Text()
    for piece, trained in segments:
        text.append(piece, style=TRAINED if trained else CONTEXT)
    return text


def approximate_segments(example) -> list[tuple[str, bool]]:
    """Without a tokenizer: the turns as text, assistant turns marked trained."""
    if example.messages is None:
        return [(example.text or "", True)]
    out = []
    for m in example.messages:
        out.append((f"{m['role']}: ", False))
        out.append((m["content"] + "\n", m["role"] == "assistant"))
    return out


def row_label(example) -> str:
    if example.messages is None:
        return (example.text or "")[:70]
    user = next((m["content"] for m in example.messages if m["role"] == "user"), "")
    return user.replace("\n", " ")[:70]


def legend() -> Text:
    return Text.assemble(("trained", TRAINED), "  ", ("not trained (context)", CONTEXT))


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_text(r: dict, batch_size: int) -> str:
    """localtune.plan.plan's prediction, in short lines that fit the Train form's column."""
    verdict = "fits" if r["fits"] else "does NOT fit"
    return "\n".join([
        f"plan: peak {r['peak_memory_gb']:.2f} GB, {verdict} {r['memory_budget_gb']:.1f} GB",
        f"~{r['tokens_per_sec']:,.0f} tokens/s · {duration(r['epoch_seconds'])}/epoch",
        f"largest batch at this length: {r['max_batch_size'] or 'none fits'}",
        f"longest max seq len at batch {batch_size}: {r['max_seq_len'] or 'none fits'}",
    ])


CLI_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def without_cli_hints(message: str) -> str:
    """An engine message as the UI shows it: the clauses that tell a CLI user which flag to
    pass ("...; put a .gguf path in --model") are dropped, since there is no flag to pass here."""
    clauses = message.split("; ")
    kept = [c for c in clauses if not CLI_FLAG.search(c)]
    return "; ".join(kept or clauses[:1])
