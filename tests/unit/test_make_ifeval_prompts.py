"""scripts/make_ifeval_prompts.py: many IFEval-schema training prompts whose kwargs every checker
accepts, covering every instruction type, reproducible from a seed, and sharing no task topic with
the validation and held-out sets that judge the GRPO runs trained on them."""

import json

from localtune.eval.ifeval import check, registry
from localtune.eval.runner import check_rows
from localtune.data.prompts import read_ifeval
from script_modules import ROOT, load_script


def script():
    return load_script("scripts/make_ifeval_prompts.py")


def make(module, out, seed):
    module.main(["--rows", "150", "--seed", str(seed), "--out", str(out), "--avoid",
                 str(ROOT / "samples/ifeval/valid.jsonl"), str(ROOT / "samples/ifeval/heldout.jsonl")])
    return out.read_text(encoding="utf-8")


def test_rows_are_checkable_cover_every_type_and_repeat_from_their_seed(tmp_path):
    module = script()
    text = make(module, tmp_path / "a.jsonl", 0)
    assert make(module, tmp_path / "b.jsonl", 0) == text
    assert make(module, tmp_path / "c.jsonl", 1) != text
    rows = read_ifeval(tmp_path / "a.jsonl")
    assert len(rows) == 150 and len({r.key for r in rows}) == 150 and len({r.prompt for r in rows}) == 150
    check_rows(rows)  # every instruction has the kwargs its checker needs
    assert {i for r in rows for i in r.instruction_id_list} == set(registry())
    assert not list(tmp_path.glob("*.tmp"))
    for row in rows:  # the checkers run on an answer without raising (kwargs of the right types)
        assert len(check("A plain answer.", row.instruction_id_list, row.kwargs, row.prompt)) == len(row.kwargs)
    repeat = [r for r in rows if "combination:repeat_prompt" in r.instruction_id_list]
    assert repeat and all(r.prompt.startswith(r.kwargs[0]["prompt_to_repeat"] + " ") for r in repeat)


def test_no_row_shares_a_task_topic_with_the_judging_sets(tmp_path):
    module = script()
    make(module, tmp_path / "a.jsonl", 0)
    judged = [json.loads(line)["prompt"] for name in ("valid", "heldout")
              for line in (ROOT / "samples/ifeval" / f"{name}.jsonl").read_text().splitlines()]

    topic = module.task_topic
    judged_topics = [topic(p) for p in judged]
    judged_keys = {json.loads(line)["key"] for name in ("train", "valid", "heldout")
                   for line in (ROOT / "samples/ifeval" / f"{name}.jsonl").read_text().splitlines()}
    for row in read_ifeval(tmp_path / "a.jsonl"):
        assert all(len(topic(row.prompt) & t) < 2 for t in judged_topics), row.prompt
        assert row.key not in judged_keys
    # The rule bites: a judging set that names one of the script's own topics keeps it out of the rows.
    avoid = tmp_path / "avoid.jsonl"
    avoid.write_text(json.dumps({"key": 1, "prompt": "Describe a mountain hike. Use no commas.",
                                 "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}) + "\n")
    module.main(["--rows", "150", "--seed", "0", "--out", str(tmp_path / "d.jsonl"), "--avoid", str(avoid)])
    with_topic = [r for r in read_ifeval(tmp_path / "a.jsonl") if "mountain hike" in r.prompt]
    assert with_topic  # seed 0 draws it when only valid and held-out are avoided...
    assert not [r for r in read_ifeval(tmp_path / "d.jsonl") if "mountain hike" in r.prompt]  # ...and not here


def test_the_sample_file_is_the_scripts_output(tmp_path):
    """samples/ifeval/synthetic.jsonl is what samples/README.md says made it (so the GRPO runs of
    bench/NOTES.md can be redone), and its prompts are none of train/valid/held-out's."""
    module = script()
    module.main(["--rows", "480", "--seed", "0", "--out", str(tmp_path / "s.jsonl"), "--avoid",
                 str(ROOT / "samples/ifeval/valid.jsonl"), str(ROOT / "samples/ifeval/heldout.jsonl")])
    sample = ROOT / "samples/ifeval/synthetic.jsonl"
    assert (tmp_path / "s.jsonl").read_bytes() == sample.read_bytes()
    others = {r.prompt for name in ("train", "valid", "heldout") for r in read_ifeval(ROOT / "samples/ifeval" / f"{name}.jsonl")}
    assert not {r.prompt for r in read_ifeval(sample)} & others


def test_bad_arguments_are_refused_by_name_and_write_nothing(tmp_path, capsys):
    import pytest

    module = script()
    for argv, said in ((["--avoid", str(tmp_path / "missing.jsonl")], "missing.jsonl: no such file"),
                       (["--rows", "0"], "--rows must be at least 1")):
        with pytest.raises(SystemExit) as stop:
            module.main(["--out", str(tmp_path / "out.jsonl")] + argv)
        assert stop.value.code == 2 and said in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
