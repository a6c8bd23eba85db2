"""Split a dataset file into train.jsonl and valid.jsonl, deterministically."""

from __future__ import annotations

import json
import random
from pathlib import Path

from localtune.data.formats import read_dataset
from localtune.data.reader import iter_rows
from localtune.errors import DataError
from localtune.fsutil import atomic_write_files


def split_dataset(path, out_dir, *, valid_fraction: float = 0.1, seed: int = 0,
                  format: str | None = None, force: bool = False) -> tuple[Path, Path]:
    """Usable rows only (bad ones are reported by read_dataset, not copied), each written as it
    was: a JSONL line verbatim; a JSON-array element as one compact JSON line. Which rows go to
    valid depends only on (rows, seed); both files keep the input's row order. Existing
    train.jsonl / valid.jsonl in out_dir are refused unless `force`; the two are written together
    (both new or both as they were)."""
    from localtune.outputs import check_output

    if not 0 < valid_fraction < 1:
        raise DataError(f"valid fraction must be between 0 and 1, got {valid_fraction}")
    path, out_dir = Path(path), Path(out_dir)
    train_path, valid_path = out_dir / "train.jsonl", out_dir / "valid.jsonl"
    src = path.resolve()
    if src in (train_path.resolve(), valid_path.resolve()):
        raise DataError(f"{path}: the split would overwrite its own input; choose another "
                        "output directory")
    for out in (train_path, valid_path):
        check_output(out, kind="file", force=force, sources=[path])
    usable = {ex.line for ex in read_dataset(path, format).examples}
    lines = []
    for r in iter_rows(path):
        if r.line in usable:
            raw = r.raw if "\n" not in r.raw else json.dumps(r.value, ensure_ascii=False)
            lines.append(raw)
    if len(lines) < 2:
        raise DataError(f"{path}: {len(lines)} usable row(s), need at least 2 to split")
    n_valid = min(len(lines) - 1, max(1, round(len(lines) * valid_fraction)))
    valid_idx = set(random.Random(seed).sample(range(len(lines)), n_valid))
    train = [ln for i, ln in enumerate(lines) if i not in valid_idx]
    valid = [ln for i, ln in enumerate(lines) if i in valid_idx]
    created = not out_dir.exists()
    try:
        atomic_write_files({train_path: "\n".join(train) + "\n", valid_path: "\n".join(valid) + "\n"})
    except BaseException:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # ours, and empty: a failed split leaves nothing behind
        raise
    return train_path, valid_path
