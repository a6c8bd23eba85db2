"""`--columns a=b,c=d`: rename the keys of every row before the format is detected, so a dataset
with its own column names reads as one of the known formats (question=instruction,answer=output
makes it alpaca; good=chosen,bad=rejected makes preference pairs)."""

from __future__ import annotations

import re
from dataclasses import replace

from localtune.errors import DataError

_NAME = re.compile(r"^[^\s=,]+$")
EXAMPLE = "question=instruction,answer=output"


def parse_columns(spec) -> dict[str, str] | None:
    """'a=b,c=d' (or a mapping) -> {"a": "b", "c": "d"}; None/'' -> None. DataError names the
    bad part."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        pairs = [(str(k), str(v)) for k, v in spec.items()]
    elif isinstance(spec, str):
        if not spec.strip():
            return None
        pairs = []
        for part in spec.split(","):
            if not part.strip():
                raise DataError(f"--columns {spec!r}: empty entry (expected name=key pairs separated "
                                f"by commas, e.g. {EXAMPLE})")
            if part.count("=") != 1:
                raise DataError(f"--columns: bad entry {part.strip()!r}: expected source=key "
                                f"(e.g. {EXAMPLE})")
            src, dst = (s.strip() for s in part.split("="))
            pairs.append((src, dst))
    else:
        raise DataError(f"--columns must be a string like {EXAMPLE!r}, got {type(spec).__name__}")
    mapping: dict[str, str] = {}
    for src, dst in pairs:
        for name in (src, dst):
            if not _NAME.match(name):
                raise DataError(f"--columns: bad entry {f'{src}={dst}'!r}: column names must be "
                                f"non-empty, without spaces, '=' or ',' (e.g. {EXAMPLE})")
        if src in mapping:
            raise DataError(f"--columns: column {src!r} is mapped twice")
        mapping[src] = dst
    targets = list(mapping.values())
    dup = next((t for t in targets if targets.count(t) > 1), None)
    if dup is not None:
        raise DataError(f"--columns: two columns are mapped to {dup!r}")
    return mapping


def rename_row(row, mapping: dict[str, str]):
    """The row with its keys renamed (a renamed column replaces a key of the same name)."""
    if not isinstance(row, dict):
        return row
    shadowed = {dst for src, dst in mapping.items() if src in row}
    out = {k: v for k, v in row.items() if k not in mapping and k not in shadowed}
    out.update({dst: row[src] for src, dst in mapping.items() if src in row})
    return out


def apply_columns(raw: list, columns, source: str) -> list:
    """RawRows with renamed keys. DataError when a mapped column is in none of the rows (likely
    a typo), listing the keys the rows do have."""
    mapping = parse_columns(columns)
    if not mapping:
        return raw
    keys: set[str] = set()
    for r in raw:
        if r.problem is None and isinstance(r.value, dict):
            keys.update(r.value)
    missing = [s for s in mapping if s not in keys]
    if missing and keys:
        raise DataError(f"{source}: --columns names column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(repr, missing))} that no row has; rows have keys {sorted(keys)}")
    return [replace(r, value=rename_row(r.value, mapping)) if r.problem is None else r for r in raw]
