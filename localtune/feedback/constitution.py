"""A constitution: the named principles the judge judges by and critiques are written against.

The file is a YAML list of mappings (`samples/constitution.yaml` is the example and the default):
    - name: helpful
      text: The answer does what the user asked ...
      critique: (optional) the critique request for this principle
      revision: (optional) the revision request
Every problem is reported as FILE:LINE: what is wrong. Read with yaml's safe composer (nodes
keep their line numbers; no Python objects are ever built from the file).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from localtune.errors import DataError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
KEYS = ("name", "text", "critique", "revision")
MAX_TEXT = 500  # characters: every principle goes into every judge prompt
DEFAULT_FILE = "constitution.yaml"  # the packaged copy next to this module (== samples/constitution.yaml)


@dataclass(frozen=True)
class Principle:
    name: str
    text: str
    critique: str | None = None
    revision: str | None = None
    line: int = 0

    def critique_request(self) -> str:
        return self.critique or (f"Critique your last answer by this principle: {self.text} "
                                 "Say briefly and specifically where it falls short.")

    def revision_request(self) -> str:
        return self.revision or (f"Rewrite your answer so that it follows this principle: {self.text} "
                                 "Address the critique.")


@dataclass(frozen=True)
class Constitution:
    principles: tuple[Principle, ...]
    source: str = "<built in>"

    def __post_init__(self):
        if not self.principles:
            raise DataError(f"{self.source}: a constitution needs at least one principle")

    def __len__(self) -> int:
        return len(self.principles)

    def names(self) -> list[str]:
        return [p.name for p in self.principles]

    def as_text(self) -> str:
        """The principles as the judge reads them: one numbered line each."""
        return "\n".join(f"{i}. {p.name}: {p.text}" for i, p in enumerate(self.principles, start=1))

    def digest(self) -> str:
        """A short hash of the principles (not the file's formatting): part of a judge's identity."""
        data = json.dumps([[p.name, p.text, p.critique, p.revision] for p in self.principles])
        return hashlib.sha256(data.encode("utf-8")).hexdigest()[:12]

    def to_json(self) -> dict:
        return {"source": self.source, "digest": self.digest(),
                "principles": [{k: v for k, v in asdict(p).items() if k != "line" and v is not None}
                               for p in self.principles]}


def _bad(source: str, node, message: str) -> DataError:
    line = node.start_mark.line + 1 if node is not None else 1
    return DataError(f"{source}:{line}: {message}")


def parse_constitution(text: str, source: str = "<text>") -> Constitution:
    import yaml
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise DataError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if root is None:
        raise DataError(f"{source}: empty; a constitution is a YAML list of principles (name, text)")
    if not isinstance(root, SequenceNode):
        raise _bad(source, root, "a constitution is a YAML list of principles, each with 'name' and 'text'")
    principles, seen = [], {}
    for item in root.value:
        if not isinstance(item, MappingNode):
            raise _bad(source, item, "each principle is a mapping with 'name' and 'text'")
        fields = {}
        for key, value in item.value:
            k = key.value if isinstance(key, ScalarNode) else None
            if k not in KEYS:
                raise _bad(source, key, f"unknown key {k!r} (a principle has {', '.join(KEYS)})")
            if k in fields:
                raise _bad(source, key, f"{k!r} given twice")
            if not isinstance(value, ScalarNode) or value.tag != "tag:yaml.org,2002:str" \
                    or not value.value.strip():
                raise _bad(source, value, f"{k!r} must be a non-empty text")
            if len(value.value) > MAX_TEXT:
                raise _bad(source, value, f"{k!r} is {len(value.value)} characters; keep each under {MAX_TEXT} "
                                          "(every principle is part of every judge prompt)")
            fields[k] = " ".join(value.value.split())
        for k in ("name", "text"):
            if k not in fields:
                raise _bad(source, item, f"this principle has no {k!r}")
        if not NAME.match(fields["name"]):
            raise _bad(source, item, f"name {fields['name']!r}: use letters, digits, '-' and '_' only")
        if fields["name"] in seen:
            raise _bad(source, item, f"name {fields['name']!r} is used already (line {seen[fields['name']]})")
        seen[fields["name"]] = item.start_mark.line + 1
        principles.append(Principle(**fields, line=item.start_mark.line + 1))
    if not principles:
        raise _bad(source, root, "no principles; give at least one (name, text)")
    return Constitution(tuple(principles), source)


def load_constitution(path: str | Path | None = None) -> Constitution:
    """The constitution in `path`; None: localtune's default (the same as samples/constitution.yaml)."""
    path = Path(path) if path is not None else Path(__file__).with_name(DEFAULT_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such constitution file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable: {e}") from None
    return parse_constitution(text, str(path))
