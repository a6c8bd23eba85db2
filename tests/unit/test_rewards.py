"""Reward sources for online RL: the --reward syntax, each rule source's verdicts, a user's Python
function (its row fields, None/NaN as "no verdict", its failures as clear errors), the weighted
total, and the RL prompt rows they score."""

import json
import math
import os

import pytest

from localtune.data.prompts import read_prompt_set
from localtune.errors import DataError, LocaltuneError
from localtune.rewards import RewardError, open_sources, parse_spec, parse_specs, score_all, with_absolute_path
from localtune.rewards.python_fn import PythonReward
from localtune.rewards.rules import ChecksReward, IFEvalReward, LengthReward


# --- the spec syntax --------------------------------------------------------------------------------

def test_specs_parse_kinds_arguments_and_weights():
    s = parse_spec("ifeval")
    assert (s.kind, s.args, s.weight, s.name) == ("ifeval", (), 1.0, "ifeval")
    assert parse_spec("ifeval:2").weight == 2.0
    s = parse_spec("python:rewards/mine.py:brevity:0.5")
    assert (s.args, s.weight, s.name, s.path) == (("rewards/mine.py", "brevity"), 0.5, "python_brevity", "rewards/mine.py")
    s = parse_spec("length:20-120:3")
    assert (s.args, s.weight) == (("20-120",), 3.0)
    s = parse_spec("checks:my checks.yaml")
    assert (s.args, s.weight, s.path) == (("my checks.yaml",), 1.0, "my checks.yaml")
    assert [x.name for x in parse_specs(["checks:a.yaml", "checks:b.yaml", "ifeval"])] == \
        ["checks", "checks_2", "ifeval"]


@pytest.mark.parametrize("bad, says", [
    ("bleu", "unknown kind 'bleu'"), ("ifeval:x", "takes no argument"), ("python:r.py", "needs 2 argument"),
    ("python:r.py:not-a-name", "not a Python function name"), ("length:short", "MIN-MAX"),
    ("ifeval:0", "weight must be > 0"), ("", "empty"), ("checks:", "needs 1 argument"),
])
def test_bad_specs_say_what_is_wrong(bad, says):
    with pytest.raises(LocaltuneError, match=says):
        parse_spec(bad)


def test_no_reward_is_an_error():
    with pytest.raises(LocaltuneError, match="no reward"):
        parse_specs([])


def test_spec_paths_become_absolute_and_keep_their_weight(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert with_absolute_path("python:r.py:f:0.5") == f"python:{tmp_path}/r.py:f:0.5"
    assert with_absolute_path("checks:c.yaml") == f"checks:{tmp_path}/c.yaml"
    assert with_absolute_path("ifeval:2") == "ifeval:2"
    assert with_absolute_path("length:1-5") == "length:1-5"


# --- rows to score ----------------------------------------------------------------------------------

def _rows(tmp_path, lines):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return read_prompt_set(path)[0]


def test_rl_prompt_rows_are_read_by_their_keys_and_keep_every_field(tmp_path):
    rows = _rows(tmp_path, [
        {"prompt": "Write a haiku in lowercase.", "instruction_id_list": ["change_case:english_lowercase"],
         "kwargs": [{}], "topic": "sea"},
        {"messages": [{"role": "user", "content": "What is 2+2?"}], "answer": "4"},
        {"prompt": "Name a port.", "system": "Be brief.", "answer": "Oslo"},
    ])
    assert [r.kind for r in rows] == ["ifeval", "prompts", "prompts"]
    assert rows[0].instruction_id_list == ["change_case:english_lowercase"] and rows[0].key == "prompts.jsonl:1"
    assert rows[0].fields["topic"] == "sea" and rows[1].fields["answer"] == "4"
    assert rows[2].messages[0] == {"role": "system", "content": "Be brief."} and rows[2].prompt == "Name a port."
    text = tmp_path / "plain.txt"
    text.write_text("first prompt\n\nsecond prompt\n")
    plain, _ = read_prompt_set(text)
    assert [r.fields for r in plain] == [{"prompt": "first prompt"}, {"prompt": "second prompt"}]


def test_a_bad_rl_prompt_row_names_its_line(tmp_path):
    with pytest.raises(DataError, match=r"prompts.jsonl:2: .*end with a user turn"):
        _rows(tmp_path, [{"prompt": "ok"}, {"messages": [{"role": "assistant", "content": "hi"}]}])


# --- rule sources -----------------------------------------------------------------------------------

def test_ifeval_reward_is_the_share_of_instructions_followed(tmp_path):
    rows = _rows(tmp_path, [
        {"prompt": "p", "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"],
         "kwargs": [{}, {}]},
        {"prompt": "no instructions here"},
    ])
    src = IFEvalReward()
    got = src.score([rows[0]] * 3 + [rows[1]], ["p"] * 4,
                    ["all lowercase and calm", "All Capitalised and calm", "Upper, and a comma", "anything"])
    assert got == [1.0, 0.5, 0.0, None]
    src.check_rows(rows)  # one row has instructions: fine
    with pytest.raises(LocaltuneError, match="needs IFEval-schema prompt rows"):
        src.check_rows(rows[1:])


def test_checks_reward_is_the_share_of_applicable_checks(tmp_path):
    checks = tmp_path / "c.yaml"
    checks.write_text("checks:\n  - name: greets\n    starts_with: 'Aye!'\n"
                      "  - name: short\n    max_words: 3\n"
                      "  - name: only_ifeval\n    must_match: x\n    sources: [ifeval]\n")
    rows = _rows(tmp_path, [{"prompt": "p"}])
    src = ChecksReward(str(checks))
    assert src.score(rows * 3, ["p"] * 3, ["Aye! hi", "Aye! a long answer here", "hello there"]) == [1.0, 0.5, 0.5]


def test_length_reward_is_one_inside_the_range_and_falls_off_outside():
    src = LengthReward(4, 8)
    assert [src.value(n) for n in (0, 2, 4, 8, 16)] == [0.0, 0.5, 1.0, 1.0, 0.5]
    assert src.score([None], ["p"], ["one two three four five"]) == [1.0]
    with pytest.raises(LocaltuneError, match="MIN <= MAX"):
        LengthReward(9, 3)


# --- a user's function ------------------------------------------------------------------------------

REWARDS_PY = '''
import math

def exact(prompt, completion, row):
    return 1.0 if completion.strip() == row["answer"] else 0.0

def unsure(prompt, completion, row):
    return None if "?" in completion else (math.nan if "nan" in completion else 0.5)

def text(prompt, completion, row):
    return "good"

def infinite(prompt, completion, row):
    return math.inf

def broken(prompt, completion, row):
    return row["missing_field"]

def two_args(prompt, completion):
    return 1.0
'''


@pytest.fixture()
def rewards_py(tmp_path):
    path = tmp_path / "rewards.py"
    path.write_text(REWARDS_PY)
    return path


def test_a_python_reward_sees_the_rows_fields_and_none_or_nan_mean_no_verdict(tmp_path, rewards_py):
    rows = _rows(tmp_path, [{"prompt": "2+2?", "answer": "4"}])
    exact = PythonReward(str(rewards_py), "exact")
    assert exact.name == "python_exact" and exact.spec == f"python:{rewards_py}:exact"
    assert exact.score(rows * 2, ["2+2?"] * 2, [" 4 ", "5"]) == [1.0, 0.0]
    unsure = PythonReward(str(rewards_py), "unsure", weight=2.0)
    scores = score_all([exact, unsure], rows * 3, ["2+2?"] * 3, ["4", "4?", "nan"])
    assert scores.by_source == {"python_exact": [1.0, 0.0, 0.0], "python_unsure": [0.5, None, None]}
    # Weighted sum of the verdicts given (python_unsure weighs 2); a missing one adds nothing.
    assert scores.total == [2.0, 0.0, 0.0] and scores.missing("python_unsure") == 2
    only_unsure = score_all([unsure], rows * 2, ["p"] * 2, ["?", "fine"])
    assert only_unsure.total == [None, 1.0]  # no source gave a verdict: no total, not trained on


def test_a_raising_python_reward_is_an_error_naming_the_function_the_line_and_the_row(tmp_path, rewards_py):
    rows = _rows(tmp_path, [{"prompt": "first"}, {"prompt": "second", "answer": "x"}])
    src = PythonReward(str(rewards_py), "broken")
    with pytest.raises(RewardError) as e:
        src.score(rows, ["first", "second"], ["a", "b"])
    msg = str(e.value)
    assert "reward function broken" in msg and "KeyError" in msg and "missing_field" in msg
    assert "(at rewards.py:17)" in msg  # where in the user's file it raised
    assert f"{tmp_path / 'prompts.jsonl'}:1 (key 'prompts.jsonl:1')" in msg


@pytest.mark.parametrize("function, says", [("text", "returned str 'good'"), ("infinite", "must be finite")])
def test_a_python_reward_returning_a_non_number_names_itself_and_the_row(tmp_path, rewards_py, function, says):
    rows = _rows(tmp_path, [{"prompt": "p"}])
    with pytest.raises(RewardError, match=says) as e:
        score_all([PythonReward(str(rewards_py), function)], rows, ["p"], ["a"])
    assert f"python:{rewards_py}:{function}" in str(e.value) and "prompts.jsonl:1" in str(e.value)


def test_a_python_reward_that_cannot_be_loaded_says_why(tmp_path, rewards_py):
    with pytest.raises(RewardError, match=r"no function 'nope' \(it has: broken, exact, infinite, text, two_args, "
                                          r"unsure\)"):
        PythonReward(str(rewards_py), "nope")
    with pytest.raises(RewardError, match=r"two_args\(prompt, completion\) must take \(prompt, completion, row\)"):
        PythonReward(str(rewards_py), "two_args")
    with pytest.raises(RewardError, match="no such file"):
        PythonReward(str(tmp_path / "absent.py"), "f")
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\nraise RuntimeError('boom at import')\n")
    with pytest.raises(RewardError, match=r"importing .*bad.py failed: RuntimeError: boom at import \(at bad.py:2\)"):
        PythonReward(str(bad), "f")


def test_open_sources_builds_each_kind_with_its_weight(tmp_path, rewards_py):
    checks = tmp_path / "c.yaml"
    checks.write_text("- name: a\n  max_words: 2\n")
    sources = open_sources(["ifeval:0.5", f"checks:{checks}", "length:1-3:2", f"python:{rewards_py}:exact"])
    assert [(type(s).__name__, s.name, s.weight) for s in sources] == [
        ("IFEvalReward", "ifeval", 0.5), ("ChecksReward", "checks", 1.0), ("LengthReward", "length", 2.0),
        ("PythonReward", "python_exact", 1.0)]
    assert not math.isnan(sources[2].value(2)) and os.path.isabs(str(rewards_py))


def test_the_sample_no_loops_reward_is_evals_loop_verdict_plus_character_runs():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "samples" / "grpo" / "rewards.py"
    src = PythonReward(str(path), "no_loops", weight=0.5)
    rows = prompt_rows(path.parent / "prompts.jsonl", 6)
    answers = ["Take a map.\nTake water.\nTake a map.\nTake a map.",  # a line 3 times: eval's loop
               "I like it because I like it because I like it because I like it.",  # a 4-gram 3 times
               "Rain " + "🌧" * 12,  # one character over and over: no words, one line
               "First idea: a museum.\n******\nSecond idea: a film.",  # IFEval's 6-star divider is no loop
               "A.\n\n***\n\nB.",
               "A calm, short answer that ends."]
    assert src.score(rows, ["p"] * 6, answers) == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def prompt_rows(path, n):
    """The first n rows of a prompt file (repeated when it has fewer)."""
    rows, _ = read_prompt_set(str(path))
    return (rows * n)[:n]


def test_the_sample_clean_ifeval_reward_zeroes_the_hacks_that_pass_ifevals_checks():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "samples" / "grpo" / "rewards.py"
    src = PythonReward(str(path), "clean_ifeval")
    rows, _ = read_prompt_set(str(path.parent.parent / "ifeval" / "train.jsonl"))
    no_comma = next(r for r in rows if r.fields["instruction_id_list"] == ["punctuation:no_comma"])
    answers = ["Children run and swing and the slide is warm from the sun.",  # follows: 1
               "Children run, swing and slide.",  # a comma: 0, as ifeval
               "🌱🌿🌸🌼🌻🌺🌷🌹🍀🌵",  # no comma at all, but no words either
               "Kids play.\nKids play.\nKids play.",  # no comma, but a loop
               "Kids laugh — the swings creak… what a day!"]  # typographic punctuation is text
    assert src.score([no_comma] * 5, ["p"] * 5, answers) == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert IFEvalReward().score([no_comma] * 3, ["p"] * 3, answers[1:4]) == [0.0, 1.0, 1.0]  # what it fixes
    assert src.score(prompt_rows(path.parent / "prompts.jsonl", 1), ["p"], ["an answer"]) == [None]


def test_the_sample_substantive_ifeval_reward_refuses_bare_answers_unless_the_row_asks_for_one():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "samples" / "grpo" / "rewards.py"
    src = PythonReward(str(path), "substantive_ifeval")
    rows, _ = read_prompt_set(str(path.parent.parent / "ifeval" / "train.jsonl"))

    def row(iid):
        return next(r for r in rows if r.fields["instruction_id_list"] == [iid])

    ps = row("detectable_content:postscript")
    letter = ("Dear Sam, the garden looks lovely this week and the tomatoes are nearly ripe.\n\n"
              "P.S. Bring a basket on Sunday.")
    assert src.score([ps, ps], ["p"] * 2, ["P.S.", letter]) == [0.0, 1.0]  # a bare marker passes IFEval
    assert IFEvalReward().score([ps], ["p"], ["P.S."]) == [1.0]
    yes = row("detectable_format:constrained_response")
    assert src.score([yes], ["p"], ["My answer is yes."]) == [1.0]  # asked for: no floor
    short = next(r for r in rows if r.fields["instruction_id_list"] == ["length_constraints:number_words"]
                 and r.fields["kwargs"][0] == {"num_words": 25, "relation": "less than"})  # floor min(10, 12)
    nine, eleven = "Spring brings warm rain and the first green leaves.", \
        "Spring brings warm rain, bright tulips and the first green leaves."
    assert src.score([short, short], ["p"] * 2, [nine, eleven]) == [0.0, 1.0]
