"""Answer health (ended, loops) and user checks from YAML."""

import pytest

from localtune.errors import LocaltuneError
from localtune.eval import health
from localtune.eval.checks import load_checks, run_checks


@pytest.mark.parametrize("text,line,ngram", [
    ('Aye!\n- "Aye!"\n- "Aye!"\n- "Aye!"', '- "Aye!"', None),  # 4 words: one 4-gram
    ("Fair winds!\nFair winds!\n\nFair winds!", "Fair winds!", None),
    ("Aye! They are shining bright, Aye! They are shining bright, Aye! They are shining bright,", None,
     ("aye", "they", "are", "shining")),
    ("THE CORPORATION THE CORPORATION THE CORPORATION the corporation", None,
     ("the", "corporation", "the", "corporation")),
])
def test_loops_are_found(text, line, ngram):
    assert health.repeated_line(text) == line
    assert health.repeated_ngram(text) == ngram
    assert health.loops(text)


@pytest.mark.parametrize("text", [
    "Aye! The capital of France is Paris.\nFair winds! ⛵",
    "a b c d a b c d e",  # a 4-gram twice is not a loop
    "- item\n- item\n\nother",  # a line twice is not a loop
    "\n\n\n   \n",  # blank lines are not a repeated line
    "",
])
def test_healthy_answers_do_not_loop(text):
    assert not health.loops(text)


CHECKS_YAML = """\
# a comment
checks:
  - name: greets
    starts_with: "Aye!"
    on: first_line
  - name: signs_off
    ends_with: "fair winds! ⛵"
    on: last_line
    ignore_case: true
  - name: mentions_sea
    regex: '\\bsea\\b'
  - name: no_double
    must_not_match: '^Aye!\\s+Aye!'
  - name: short
    max_words: 6
  - name: persona_only
    starts_with: "Aye"
    sources: [prompts]
"""


@pytest.fixture
def checks(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CHECKS_YAML, encoding="utf-8")
    return load_checks(path)


def test_user_checks_pass_and_fail(checks):
    good = "\n  Aye! The sea is calm.\nFair Winds! ⛵\n"
    assert run_checks(good, checks, "prompts") == {
        "greets": True, "signs_off": True, "mentions_sea": True, "no_double": True, "short": False,
        "persona_only": True}
    bad = "Aye! Aye! Seaside.\nBye"
    assert run_checks(bad, checks, "data") == {
        "greets": True, "signs_off": False, "mentions_sea": False, "no_double": False, "short": True}
    assert run_checks("", checks, "ifeval")["greets"] is False


def test_on_is_a_key_not_a_yaml_boolean(checks):
    assert [c.on for c in checks][:2] == ["first_line", "last_line"]


@pytest.mark.parametrize("yaml_text,message", [
    ("- name: a\n  starts_with: x\n  ends_with: y\n", "c.yaml:1: check 'a' needs exactly one rule"),
    ("- name: a\n  starts_wiht: x\n", "c.yaml:1: unknown key(s) ['starts_wiht']"),
    ("- starts_with: x\n", "every check needs a name"),
    ("- name: ok\n  max_words: 3\n- name: b\n  regex: '(unclosed'\n", "c.yaml:3: check 'b': bad regex"),
    ("- name: a\n  max_words: -1\n", "max_words must be a whole number"),
    ("- name: a\n  ends_with: x\n  on: middle\n", "on: 'middle'"),
    ("- name: a\n  ends_with: x\n  sources: [web]\n", "sources must be a list"),
    ("- name: a\n  max_words: 3\n- name: a\n  max_words: 4\n", "two checks are named 'a'"),
    ("checks: {}\n", "expected a list of checks"),
    ("- name: [\n", "invalid YAML"),
])
def test_bad_checks_files_name_the_file_and_line(tmp_path, yaml_text, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(LocaltuneError) as e:
        load_checks(path)
    assert message in str(e.value)


def test_missing_checks_file(tmp_path):
    with pytest.raises(LocaltuneError, match="checks file not found"):
        load_checks(tmp_path / "nope.yaml")


def test_the_pip_sample_checks_pass_every_answer_of_the_sample_data():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "samples"
    checks = load_checks(root / "pip_checks.yaml")
    answers = [m["content"] for name in ("train", "valid") for line in (root / "sft" / f"{name}.jsonl").open()
               for m in json.loads(line)["messages"] if m["role"] == "assistant"]
    assert len(answers) > 300
    for a in answers:
        assert all(run_checks(a, checks, "data").values()), a
    looping = 'Aye! Aye! They are shining bright.\n- "Aye!"\n- "Aye!"\n- "Aye!"'
    assert not all(run_checks(looping, checks, "prompts").values())
    assert run_checks("anything", checks, "ifeval") == {}  # IFEval prompts ask for other shapes
