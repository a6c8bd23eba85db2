"""Constitutions: the sample file is the packaged default; every bad file is named with its line."""

from pathlib import Path

import pytest

from localtune.errors import DataError
from localtune.feedback.constitution import load_constitution, parse_constitution

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_the_sample_constitution_is_the_default():
    sample = load_constitution(SAMPLES / "constitution.yaml")
    default = load_constitution()
    assert sample.principles == default.principles and len(sample) >= 4
    assert sample.digest() == default.digest()
    names = sample.names()
    assert len(set(names)) == len(names) and "helpful" in names
    correct = next(p for p in sample.principles if p.name == "correct")
    assert correct.critique and correct.revision and correct.line > 1
    helpful = next(p for p in sample.principles if p.name == "helpful")
    assert helpful.text in helpful.critique_request()  # built from the text when not given
    assert "1. helpful: " in sample.as_text()


@pytest.mark.parametrize("text, line, message", [
    ("- name: a\n  text: fine\n- name: b\n", 3, "no 'text'"),
    ("- name: a\n  text: fine\n  weight: 2\n", 3, "unknown key 'weight'"),
    ("- name: a\n  text: fine\n- name: a\n  text: again\n", 3, "used already (line 1)"),
    ("- name: a b\n  text: fine\n", 1, "letters, digits"),
    ("- name: a\n  text: 3\n", 2, "non-empty text"),
    ("- name: a\n  text: ''\n", 2, "non-empty text"),
    ("name: a\ntext: b\n", 1, "YAML list of principles"),
    ("- just a string\n", 1, "mapping with 'name' and 'text'"),
    ("- name: a\n  text: [x\n", 3, "not valid YAML"),
    ("", 0, "empty"),
    ("[]\n", 1, "no principles"),
])
def test_bad_constitutions_are_reported_with_file_and_line(text, line, message):
    with pytest.raises(DataError) as e:
        parse_constitution(text, "c.yaml")
    assert message in str(e.value)
    if line:
        assert str(e.value).startswith(f"c.yaml:{line}: ")


def test_a_missing_file_and_python_tags_are_refused(tmp_path):
    with pytest.raises(DataError, match="no such constitution file"):
        load_constitution(tmp_path / "none.yaml")
    bad = tmp_path / "evil.yaml"
    bad.write_text("- name: a\n  text: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(DataError, match=r"evil.yaml:2: 'text' must be a non-empty text"):
        load_constitution(bad)
