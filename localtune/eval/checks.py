"""User checks: named rules a person writes for their own style or persona, read from YAML.

    checks:
      - name: greets                # shown in the table and summary.json
        starts_with: "Aye!"         # exactly one rule: starts_with | ends_with | must_match
        on: first_line              #   (alias regex) | must_not_match | max_words
      - name: signs_off             # on: answer (default) | first_line | last_line
        ends_with: "Fair winds!"
        on: last_line
      - name: no_double_greeting
        must_not_match: "^Aye!\\s+Aye!"
        ignore_case: true           # optional, for the text and regex rules
        sources: [prompts, data]    # optional: only answers to these prompt sets (ifeval, prompts, data)

Texts are compared after stripping surrounding whitespace; first/last line = the first/last
non-empty line. Regexes are Python's, searched anywhere in the text (anchor with ^ and $).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from localtune.errors import LocaltuneError

RULES = ("starts_with", "ends_with", "must_match", "must_not_match", "max_words")
_ALIASES = {"regex": "must_match"}
PARTS = ("answer", "first_line", "last_line")
SOURCES = ("ifeval", "prompts", "data")
_KEYS = set(RULES) | set(_ALIASES) | {"name", "on", "ignore_case", "sources", "__line__"}


@dataclass(frozen=True)
class UserCheck:
    name: str
    rule: str  # one of RULES
    value: object  # the text, the regex source, or the word limit
    on: str = "answer"
    ignore_case: bool = False
    sources: tuple[str, ...] = SOURCES

    def applies_to(self, kind: str) -> bool:
        return kind in self.sources

    def passes(self, answer: str) -> bool:
        text = _part(answer, self.on)
        if self.rule == "max_words":
            return len(text.split()) <= self.value
        if self.rule in ("must_match", "must_not_match"):
            found = re.search(self.value, text, re.IGNORECASE if self.ignore_case else 0) is not None
            return found if self.rule == "must_match" else not found
        want, have = (self.value.casefold(), text.casefold()) if self.ignore_case else (self.value, text)
        return have.startswith(want) if self.rule == "starts_with" else have.endswith(want)

    def describe(self) -> dict:
        return {"name": self.name, "rule": self.rule, "value": self.value, "on": self.on,
                "ignore_case": self.ignore_case, "sources": list(self.sources)}


def _part(answer: str, on: str) -> str:
    if on == "answer":
        return answer.strip()
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0] if on == "first_line" else lines[-1]


def _line_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """Records the line each mapping starts on, for messages that point at it."""

        def construct_mapping(self, node, deep=False):
            mapping = super().construct_mapping(node, deep=deep)
            mapping["__line__"] = node.start_mark.line + 1
            return mapping

    # YAML 1.2 booleans (true/false only): in YAML 1.1 the key `on:` would read as True.
    bool_tag = "tag:yaml.org,2002:bool"
    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != bool_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    return Loader


def _check(item, path: str, index: int) -> UserCheck:
    if not isinstance(item, dict):
        raise LocaltuneError(f"{path}: check {index}: expected a mapping with a name and one rule")
    where = f"{path}:{item['__line__']}"
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise LocaltuneError(f"{where}: unknown key(s) {unknown}; a check has name, one of "
                             f"{', '.join(RULES)}, and optionally on, ignore_case, sources")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise LocaltuneError(f"{where}: every check needs a name (a non-empty string)")
    rules = [(_ALIASES.get(k, k), v) for k, v in item.items() if k in RULES or k in _ALIASES]
    if len(rules) != 1:
        raise LocaltuneError(f"{where}: check {name!r} needs exactly one rule of {', '.join(RULES)}, "
                             f"has {len(rules)}")
    rule, value = rules[0]
    on = item.get("on", "answer")
    if on not in PARTS:
        raise LocaltuneError(f"{where}: check {name!r}: on: {on!r}; use one of {', '.join(PARTS)}")
    if rule == "max_words":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LocaltuneError(f"{where}: check {name!r}: max_words must be a whole number >= 0")
    elif not isinstance(value, str) or not value:
        raise LocaltuneError(f"{where}: check {name!r}: {rule} must be a non-empty string")
    elif rule in ("must_match", "must_not_match"):
        try:
            re.compile(value)
        except re.error as e:
            raise LocaltuneError(f"{where}: check {name!r}: bad regex {value!r}: {e}") from None
    sources = item.get("sources", list(SOURCES))
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or not sources or any(s not in SOURCES for s in sources):
        raise LocaltuneError(f"{where}: check {name!r}: sources must be a list of {', '.join(SOURCES)}")
    ignore_case = item.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise LocaltuneError(f"{where}: check {name!r}: ignore_case must be true or false")
    return UserCheck(name.strip(), rule, value.strip() if isinstance(value, str) and rule in
                     ("starts_with", "ends_with") else value, on, ignore_case, tuple(sources))


def load_checks(path) -> list[UserCheck]:
    """The checks of a YAML file (a list, or a mapping with a `checks` list); LocaltuneError naming
    the file and line of the first bad check."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LocaltuneError(f"{path}: checks file not found") from None
    except OSError as e:
        raise LocaltuneError(f"{path}: cannot read: {e}") from None
    try:
        loader = _line_loader()(text)  # a SafeLoader: plain data only, no Python objects
        try:
            doc = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise LocaltuneError(f"{path}: invalid YAML: {e}") from None
    items = doc.get("checks") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise LocaltuneError(f"{path}: expected a list of checks (or `checks:` with a list)")
    checks = [_check(item, str(path), i) for i, item in enumerate(items, start=1)]
    names = [c.name for c in checks]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise LocaltuneError(f"{path}: two checks are named {dup!r}; names must be unique")
    return checks


def run_checks(answer: str, checks: list[UserCheck], kind: str) -> dict[str, bool]:
    """{check name: passed} for the checks that apply to answers of this prompt kind."""
    return {c.name: c.passes(answer) for c in checks if c.applies_to(kind)}
