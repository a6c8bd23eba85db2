"""Prompt sets for eval: IFEval-schema files, prompt files (text or JSON rows), data rows without
their last answer; bad rows name their file and line."""

import json

import pytest

from localtune.data.prompts import read_data_prompts, read_ifeval, read_prompt_file
from localtune.errors import DataError


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_ifeval_rows(tmp_path):
    rows = read_ifeval(write(tmp_path / "if.jsonl", [
        {"key": 1, "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        # Hub copies fill unused kwargs with null: they are dropped.
        {"key": 2, "prompt": "Count.", "instruction_id_list": ["length_constraints:number_words"],
         "kwargs": [{"num_words": 5, "relation": "at least", "language": None}]},
    ]))
    assert [(r.key, r.kind, r.line, r.prompt) for r in rows] == [(1, "ifeval", 1, "Say hi."),
                                                                 (2, "ifeval", 2, "Count.")]
    assert rows[1].kwargs == [{"num_words": 5, "relation": "at least"}]
    assert rows[0].messages == [{"role": "user", "content": "Say hi."}]


@pytest.mark.parametrize("row,message", [
    ({"key": 1, "prompt": "x", "instruction_id_list": ["a:b"]}, "missing 'kwargs'"),
    ({"key": 1, "prompt": " ", "instruction_id_list": ["a:b"], "kwargs": [{}]}, "'prompt' must be a non-empty"),
    ({"key": 1, "prompt": "x", "instruction_id_list": ["a:b", "c:d"], "kwargs": [{}]}, "2 instructions but 1 kwargs"),
    ({"key": 1, "prompt": "x", "instruction_id_list": [], "kwargs": []}, "non-empty list of strings"),
    ("{broken", "invalid JSON"),
])
def test_bad_ifeval_rows_name_file_and_line(tmp_path, row, message):
    good = {"key": 9, "prompt": "ok", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    path = write(tmp_path / "if.jsonl", [good, row])
    with pytest.raises(DataError) as e:
        read_ifeval(path)
    assert f"{path}:2: " in str(e.value) and message in str(e.value)


def test_duplicate_ifeval_keys(tmp_path):
    row = {"key": 1, "prompt": "ok", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    with pytest.raises(DataError, match="key 1 appears more than once"):
        read_ifeval(write(tmp_path / "if.jsonl", [row, row]))


def test_ifeval_hub_id_goes_through_the_hub_code_and_says_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LOCALTUNE_HF_CACHE", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="google/IFEval.*offline"):
        read_ifeval("google/IFEval")


def test_plain_text_prompt_file(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("What is the capital of France?\n\n  Write a poem.  \n")
    rows = read_prompt_file(path)
    assert [(r.key, r.prompt, r.kind) for r in rows] == [("p.txt:1", "What is the capital of France?", "prompts"),
                                                        ("p.txt:3", "Write a poem.", "prompts")]


def test_json_prompt_file(tmp_path):
    rows = read_prompt_file(write(tmp_path / "p.jsonl", [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Aye!"}]},
        {"prompt": "Name a fish.", "system": "You are Pip."},
    ]))
    assert rows[0].messages[0]["role"] == "system" and rows[0].reference is None
    assert rows[1].messages == [{"role": "user", "content": "Hi"}] and rows[1].reference == "Aye!"
    assert rows[2].messages == [{"role": "system", "content": "You are Pip."},
                                {"role": "user", "content": "Name a fish."}]


def test_bad_json_prompt_rows(tmp_path):
    path = write(tmp_path / "p.jsonl", [{"prompt": "ok"}, {"messages": [{"role": "robot", "content": "x"}]},
                                        {"text": "t"}])
    with pytest.raises(DataError) as e:
        read_prompt_file(path)
    assert f"{path}:2: message 1: unsupported role 'robot'" in str(e.value)
    assert f"{path}:3: expected 'messages'" in str(e.value)


def test_data_rows_lose_their_last_answer(tmp_path):
    path = write(tmp_path / "valid.jsonl", [
        {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                      {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]},
        {"messages": [{"role": "user", "content": "only a question"}]},  # skipped, as training skips it
    ])
    rows, problems = read_data_prompts(path)
    assert len(rows) == 1 and rows[0].kind == "data" and rows[0].reference == "A2"
    assert [m["content"] for m in rows[0].messages] == ["Q1", "A1", "Q2"]
    assert problems and problems[0].line == 2
    text = write(tmp_path / "text.jsonl", [{"text": "plain"}])
    with pytest.raises(DataError, match="text rows have no prompt"):
        read_data_prompts(text)


def test_the_sample_ifeval_sets_cover_every_family_and_type():
    from pathlib import Path

    from localtune.eval import FAMILIES
    from localtune.eval.ifeval import registry
    from localtune.eval.runner import check_rows

    root = Path(__file__).resolve().parents[2] / "samples" / "ifeval"
    train, heldout = read_ifeval(root / "train.jsonl"), read_ifeval(root / "heldout.jsonl")
    valid = read_ifeval(root / "valid.jsonl")  # picks a GRPO run's checkpoint: neither trained on nor reported
    assert len(heldout) >= 30 and len(train) >= 20 and len(valid) >= 20
    assert not {r.prompt for r in train} & {r.prompt for r in heldout}
    assert not {r.prompt for r in valid} & ({r.prompt for r in train} | {r.prompt for r in heldout})
    assert len({r.key for r in train} | {r.key for r in valid} | {r.key for r in heldout}) == (
        len(train) + len(valid) + len(heldout))
    check_rows(valid)
    # Held out means another task, not only other wording: no training prompt opens with a held-out
    # prompt's first sentence (the task; the instruction sentences are IFEval's and shared).
    def task(prompt):
        return prompt.split(". ")[0].split("? ")[0].strip().rstrip(".?").casefold()

    assert not {task(r.prompt) for r in train} & {task(r.prompt) for r in heldout}
    assert len({r.key for r in train} | {r.key for r in heldout}) == len(train) + len(heldout)
    for rows in (train, heldout):
        check_rows(rows)  # every instruction has the kwargs its checker needs
        ids = {i for r in rows for i in r.instruction_id_list}
        assert ids == set(registry())
        assert {i.split(":")[0] for i in ids} == set(FAMILIES)


def test_read_prompt_set_reads_every_shape_by_its_rows(tmp_path):
    """feedback sample's --prompts: one reader for plain lines, chat/prompt rows, IFEval rows,
    preference pairs (their prompt, the chosen answer as reference) and other chat datasets."""
    from localtune.data.prompts import read_prompt_set

    cases = {
        "lines.txt": (["hello there", "", "bye"], ["hello there", "bye"], "prompts"),
        "chat.jsonl": ([{"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a"}]}],
                       ["q1"], "prompts"),
        "if.jsonl": ([{"key": 7, "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"],
                       "kwargs": [{}]}], ["Say hi."], "ifeval"),
        "pairs.jsonl": ([{"prompt": "which?", "chosen": "good", "rejected": "bad", "system": "Be brief."}],
                        ["which?"], "data"),
        "alpaca.jsonl": ([{"instruction": "Add", "input": "1+1", "output": "2"}], None, "data"),
    }
    for name, (rows, prompts, kind) in cases.items():
        got, problems = read_prompt_set(write(tmp_path / name, rows))
        assert not problems and {r.kind for r in got} == {kind}, name
        if prompts is not None:
            assert [r.prompt for r in got] == prompts, name
    pairs, _ = read_prompt_set(tmp_path / "pairs.jsonl")
    assert pairs[0].messages[0] == {"role": "system", "content": "Be brief."} and pairs[0].reference == "good"
    alpaca, _ = read_prompt_set(tmp_path / "alpaca.jsonl")
    assert "Add" in alpaca[0].prompt and alpaca[0].reference == "2"


def test_one_prompt_reader_mixes_row_shapes_keeps_fields_and_checks_ifeval_keys(tmp_path):
    """RL prompts and feedback prompts come from the same reader: JSON rows of mixed shapes, each by
    its own keys (an IFEval row's key optional), every field kept; a repeated IFEval key is an error."""
    from localtune.data.prompts import read_prompt_set

    mixed, problems = read_prompt_set(write(tmp_path / "mixed.jsonl", [
        {"prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}], "topic": "x"},
        {"messages": [{"role": "user", "content": "q"}], "answer": "4"},
    ]))
    assert not problems and [r.kind for r in mixed] == ["ifeval", "prompts"]
    assert mixed[0].key == "mixed.jsonl:1" and mixed[0].fields["topic"] == "x" and mixed[1].fields["answer"] == "4"
    row = {"key": 3, "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    with pytest.raises(DataError, match=r"dup.jsonl: key 3 appears more than once"):
        read_prompt_set(write(tmp_path / "dup.jsonl", [row, row]))
    with pytest.raises(DataError, match=r"(?s)fix them \(training reads every row\).*bad.jsonl:2: "):
        read_prompt_set(write(tmp_path / "bad.jsonl", [{"prompt": "ok"}, {"prompt": ""}]), why="training reads every row")
