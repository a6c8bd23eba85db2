"""`localtune eval` end to end on a tiny model: base and adapters side by side from one loaded model,
summary.json and answers.jsonl with their key names, the output folder rules, clear errors."""

import json
import shutil

import localtune  # noqa: F401
import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from localtune.cli import main
from localtune.data.prompts import read_ifeval, read_prompt_file
from localtune.errors import LocaltuneError, RunError
from localtune.eval import compare, evaluate, load_checks, variants_for
from localtune.generate import Sampling, generate_batch
from localtune.lora import LoraSpec, attach_lora, load_adapter, save_adapter
from localtune.models import load_model
from localtune.runs import RunDir

IFEVAL = [
    {"key": 1, "prompt": "Say hello without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 2, "prompt": "Write at least 3 words in lowercase.",
     "instruction_id_list": ["length_constraints:number_words", "change_case:english_lowercase"],
     "kwargs": [{"num_words": 3, "relation": "at least"}, {}]},
]
CHECKS = "checks:\n  - name: short\n    max_words: 3\n  - name: no_x\n    must_not_match: 'x'\n    sources: [prompts]\n"
SUMMARY_KEYS = {"prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose", "ended", "loops",
                "mean_tokens", "checks", "families"}
ANSWER_KEYS = {"model", "key", "prompt", "response", "instruction_id_list", "follow_instruction_list", "ended",
               "loops"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tiny import make_tiny_model_dir

    d = tmp_path_factory.mktemp("evalrun")
    model_dir = make_tiny_model_dir(d / "model")
    w = mx.load(str(model_dir / "model.safetensors"))
    w["model.embed_tokens.weight"] = w["model.embed_tokens.weight"] * 0.1  # varied answers (test_generate)
    mx.save_safetensors(str(model_dir / "model.safetensors"), w, metadata={"format": "mlx"})

    def run(name, rank, seed, base=model_dir):
        model, _ = load_model(model_dir)
        spec = LoraSpec(rank=rank, alpha=2 * rank, layers=-1)
        attach_lora(model, spec)
        mx.random.seed(seed)
        model.load_weights([(k, mx.random.normal(v.shape) * 0.5) for k, v in
                            tree_flatten(model.trainable_parameters()) if k.endswith("lora_b")], strict=False)
        save_adapter(model, d / name, spec)
        RunDir(d / name).write({"kind": "sft", "status": "finished", "model_path": str(base)})
        return d / name

    ifeval = d / "if.jsonl"
    ifeval.write_text("".join(json.dumps(r) + "\n" for r in IFEVAL))
    prompts = d / "p.txt"
    prompts.write_text("echo apple river\nname a fish\n")
    checks = d / "checks.yaml"
    checks.write_text(CHECKS)
    return {"model": model_dir, "a": run("run-a", 4, 1), "b": run("run-b", 8, 2),
            "other": run("run-other", 4, 3, base=d / "elsewhere"), "ifeval": ifeval, "prompts": prompts,
            "checks": checks, "dir": d}


def test_side_by_side_switching_gives_each_models_own_answers(setup):
    rows = read_ifeval(setup["ifeval"]) + read_prompt_file(setup["prompts"])
    again = setup["dir"] / "run-a-again"
    shutil.copytree(setup["a"], again)
    variants = variants_for([setup["a"], setup["b"], again])
    assert [v.name for v in variants] == ["base", "run-a", "run-b", "run-a-again"]
    model, tok = load_model(setup["model"])
    s = Sampling(max_tokens=10)
    evals = compare(model, tok, rows, variants, s, checks=load_checks(setup["checks"]))
    texts = {e.name: [a.completion.text for a in e.answers] for e in evals}
    # Each model's answers are those of a model loaded fresh in that state.
    fresh, _ = load_model(setup["model"])
    assert texts["base"] == [c.text for c in generate_batch(fresh, tok, [r.messages for r in rows], s)]
    for name, run in (("run-a", setup["a"]), ("run-b", setup["b"])):
        fresh, _ = load_model(setup["model"])
        load_adapter(fresh, run)
        assert texts[name] == [c.text for c in generate_batch(fresh, tok, [r.messages for r in rows], s)]
    assert texts["run-a"] != texts["base"] and texts["run-b"] != texts["run-a"]
    assert texts["run-a-again"] == texts["run-a"]  # a -> b (another rank) -> a: switched back exactly
    summary = evals[0].summary()
    assert SUMMARY_KEYS <= set(summary) and summary["ifeval_prompts"] == 2 and summary["answers"] == 4
    assert set(summary["families"]) == {"punctuation", "length_constraints", "change_case"}
    assert set(summary["checks"]) == {"short", "no_x"}
    # Answers to prompt-file rows only get the check scoped to them.
    assert [set(a.checks) for a in evals[0].answers] == [{"short"}, {"short"}, {"short", "no_x"}, {"short", "no_x"}]


def test_summary_numbers_come_from_the_answers(setup):
    model, tok = load_model(setup["model"])
    rows = read_ifeval(setup["ifeval"])
    result = evaluate(model, tok, rows, Sampling(max_tokens=8), name="m")
    s = result.summary()
    per_row = [[r.strict for r in a.instructions] for a in result.answers]
    assert s["prompt_strict"] == sum(all(x) for x in per_row) / 2
    assert s["instruction_strict"] == sum(map(sum, per_row)) / 3
    assert s["ended"] == sum(a.completion.finish_reason == "stop" for a in result.answers) / 2
    assert s["mean_tokens"] == sum(len(a.completion.token_ids) for a in result.answers) / 2
    metrics = result.metrics()
    assert metrics["eval_prompt_strict"] == s["prompt_strict"] and metrics["eval_loops"] == s["loops"]


def test_extra_scorers_add_per_answer_scores(setup):
    class Length:
        name = "length"

        def score(self, answers):
            return [len(a.completion.text) for a in answers]

    model, tok = load_model(setup["model"])
    result = evaluate(model, tok, read_prompt_file(setup["prompts"]), Sampling(max_tokens=6), scorers=[Length()])
    assert [a.scores["length"] for a in result.answers] == [len(a.completion.text) for a in result.answers]
    assert result.summary()["scores"]["length"] == sum(len(a.completion.text) for a in result.answers) / 2


def test_cli_writes_summary_and_answers_and_prints_one_table(setup, capsys):
    out = setup["dir"] / "out-cli"
    rc = main(["eval", "--model", str(setup["model"]), "--adapter", str(setup["a"]), "--ifeval", str(setup["ifeval"]),
               "--prompts", str(setup["prompts"]), "--checks", str(setup["checks"]), "--max-tokens", "8",
               "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "base (4)" in printed and "run-a (4)" in printed and "check: short" in printed
    assert "IFEval prompt-level strict" in printed and "punctuation" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["models"]) == ["base", "run-a"]
    for m in summary["models"].values():
        assert SUMMARY_KEYS <= set(m)
    assert summary["sampling"]["max_tokens"] == 8 and summary["model_path"] == str(setup["model"])
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 8 and all(ANSWER_KEYS <= set(a) for a in answers)
    assert [a["key"] for a in answers[:4]] == [1, 2, "p.txt:1", "p.txt:2"]
    assert answers[1]["instruction_id_list"] == IFEVAL[1]["instruction_id_list"]
    assert len(answers[1]["follow_instruction_list"]) == 2 and answers[2]["follow_instruction_list"] == []


def test_default_out_is_the_first_runs_eval_folder_and_the_runs_base_is_loaded(setup, capsys):
    run = setup["dir"] / "run-default"
    shutil.copytree(setup["a"], run)
    assert main(["eval", "--adapter", str(run), "--no-base", "--prompts", str(setup["prompts"]),
                 "--max-tokens", "4"]) == 0
    [folder] = list((run / "eval").iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert list(summary["models"]) == ["run-default"] and summary["model_path"] == str(setup["model"])


def test_a_run_of_another_base_is_refused(setup, capsys):
    assert main(["eval", "--model", str(setup["model"]), "--adapter", str(setup["a"]), "--adapter",
                 str(setup["other"]), "--prompts", str(setup["prompts"]), "--out", str(setup["dir"] / "never")]) == 2
    assert "run-other was trained on " in capsys.readouterr().err
    assert not (setup["dir"] / "never").exists()
    from localtune.eval import check_shared_base

    with pytest.raises(RunError, match="elsewhere, not on the evaluated model"):
        check_shared_base(setup["model"], [setup["a"], setup["other"]])


def test_a_non_empty_out_folder_is_refused_before_anything_loads(setup, capsys):
    out = setup["dir"] / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("a user's file")
    assert main(["eval", "--model", str(setup["model"]), "--prompts", str(setup["prompts"]), "--out", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("args,message", [
    ([], "nothing to evaluate"),
    (["--prompts", "p.txt", "--no-base"], "--no-base leaves nothing"),
    (["--prompts", "p.txt", "--max-tokens", "0"], "--max-tokens 0: must be at least 1"),
    (["--prompts", "p.txt", "--temperature", "-1"], "--temperature -1.0: must be >= 0"),
    (["--prompts", "p.txt", "--top-p", "0"], "--top-p 0.0: must be in (0, 1]"),
    (["--prompts", "p.txt", "--adapter", "no-such-run"], "no-such-run: no adapters.safetensors"),
])
def test_cli_errors_are_clear(setup, capsys, monkeypatch, args, message):
    monkeypatch.chdir(setup["dir"])
    assert main(["eval", "--model", str(setup["model"]), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_ifeval_instruction_fails_before_generating(setup, capsys):
    bad = setup["dir"] / "bad.jsonl"
    row = {"key": 1, "prompt": "x", "instruction_id_list": ["startend:nope"], "kwargs": [{}]}
    bad.write_text(json.dumps(row) + "\n")
    assert main(["eval", "--model", str(setup["model"]), "--ifeval", str(bad), "--out", str(setup["dir"] / "o2")]) == 2
    assert f"{bad}:1: unknown instruction 'startend:nope'" in capsys.readouterr().err


def test_chat_sampling_flags_are_checked_before_the_model_loads(capsys):
    assert main(["chat", "--model", "/nonexistent", "--max-tokens", "0", "--prompt", "hi"]) == 2
    assert "--max-tokens 0: must be at least 1" in capsys.readouterr().err
    with pytest.raises(LocaltuneError):
        Sampling(max_tokens=-3).validate()


def test_data_rows_are_answered_without_their_last_answer(setup):
    valid = setup["dir"] / "valid.jsonl"
    valid.write_text(json.dumps({"messages": [{"role": "user", "content": "Q"},
                                              {"role": "assistant", "content": "the old answer"}]}) + "\n")
    out = setup["dir"] / "out-data"
    assert main(["eval", "--model", str(setup["model"]), "--data", str(valid), "--max-tokens", "4",
                 "--out", str(out)]) == 0
    [answer] = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert answer["source"] == "data" and answer["prompt"] == "Q" and answer["reference"] == "the old answer"
    assert json.loads((out / "summary.json").read_text())["prompt_sets"] == [
        {"kind": "data", "source": str(valid), "rows": 1}]


def test_together_one_pass_gives_each_models_own_answers(setup):
    """compare(together=True) decodes base and adapters of different ranks in ONE batch (each row
    routed to its adapter): the same answers as one model after another, and the model is left with
    no adapter layers."""
    from localtune.lora import lora_modules

    rows = read_ifeval(setup["ifeval"]) + read_prompt_file(setup["prompts"])
    variants = variants_for([setup["a"], setup["b"]])
    model, tok = load_model(setup["model"])
    s = Sampling(max_tokens=10)
    checks = load_checks(setup["checks"])
    apart = compare(model, tok, rows, variants, s, checks=checks)
    events = []
    together = compare(model, tok, rows, variants, s, checks=checks, together=True, batch_size=5,
                       on_event=events.append)
    assert [e.name for e in together] == ["base", "run-a", "run-b"]
    for one, other in zip(apart, together):
        assert [a.completion.text for a in one.answers] == [a.completion.text for a in other.answers]
        assert one.summary() | {"seconds": 0} == other.summary() | {"seconds": 0}
    assert len({tuple(a.completion.text for a in e.answers) for e in together}) == 3  # three different models
    assert [e["model"] for e in events if e["stage"] == "model"] == ["base+run-a+run-b"]
    assert [e["model"] for e in events if e["stage"] == "done"] == ["base", "run-a", "run-b"]
    assert lora_modules(model) == []
