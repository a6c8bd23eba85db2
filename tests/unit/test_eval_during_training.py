"""Eval during training on the tiny model: `--eval-file` answers are generated and judged at each
eval point (eval_* fields of the val events, declared metrics, RUN/eval/step-N/ folders listed by
runs.list_evals, an "evaluating n/N" phase); a stop + resume answers exactly as an unbroken run; the
CLI says which checkpoint became the adapter; --eval-file reads each prompt-set shape."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localtune.eval.during_training import read_eval_rows
from localtune.runs import RunDir, layout, list_evals, read_metrics, read_run
from localtune.train.session import run_training
from localtune.train.sft import sft_task

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def setup(tmp_path, echo_rows, tiny_config):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("echo apple river\necho stone cloud\necho maple frost\n")
    checks = tmp_path / "checks.yaml"
    checks.write_text("checks:\n  - name: greets\n    starts_with: 'Aye!'\n  - name: short\n    max_words: 3\n")
    data = echo_rows(tmp_path / "train.jsonl", 32, 0)

    def make(out, **kw):
        return tiny_config(out, data, **{**dict(iters=4, eval_every=2, eval_file=str(prompts),
                                                eval_checks=str(checks), eval_max_tokens=6, lr=3e-3), **kw})

    return make


def evals_of(run) -> dict[int, dict]:
    return {e["step"]: {k: v for k, v in e.items() if k.startswith("eval_")}
            for e in read_metrics(run) if e.get("event") == "val"}


def test_eval_points_judge_the_answers_and_keep_them(setup, tmp_path):
    events = []
    run = run_training(setup(tmp_path / "run"), sft_task, on_event=events.append)
    evals = evals_of(run)
    assert sorted(evals) == [0, 2, 4]
    keys = {"eval_ended", "eval_loops", "eval_mean_tokens", "eval_checks_passed", "eval_check_greets",
            "eval_check_short"}
    for step, numbers in evals.items():
        assert set(numbers) == keys, step
        assert all(0 <= numbers[k] <= 1 for k in keys - {"eval_mean_tokens"})
        assert 0 < numbers["eval_mean_tokens"] <= 6
    val = [e for e in read_metrics(run) if e.get("event") == "val"][0]
    assert val["val_loss"] is None  # no --valid: the answers alone
    # the metrics are declared in the record, so the TUI and `localtune runs` show them
    declared = read_run(run).metrics
    assert declared["eval_checks_passed"].plot == "answers" and declared["eval_loops"].better == "lower"
    assert read_run(run).as_row()["final_eval_checks_passed"] == evals[4]["eval_checks_passed"]
    # the answers themselves, one folder per eval point
    found = list_evals(run)
    assert [e.step for e in found] == [0, 2, 4] and [e.name for e in found] == [
        layout.checkpoint_name(s) for s in (0, 2, 4)]
    summary = found[-1].models["step 4"]
    assert summary["checks_passed"] == evals[4]["eval_checks_passed"] and summary["answers"] == 3
    answers = found[-1].answers()
    assert [a["prompt"] for a in answers] == ["echo apple river", "echo stone cloud", "echo maple frost"]
    # while it generates, the phase says so with counts of answers
    phases = [e for e in events if e["event"] == "phase" and e["phase"] == "evaluating"]
    assert phases and {e["total"] for e in phases} == {3} and phases[-1]["done"] == 3


def test_a_resumed_run_answers_as_an_unbroken_one(setup, tmp_path, stop_after):
    # sampled answers (not greedy): the draw is seeded by the run's seed and the step
    run_a = run_training(setup(tmp_path / "a", iters=6, eval_temperature=1.0), sft_task)
    run_b = run_training(setup(tmp_path / "b", iters=6, eval_temperature=1.0), sft_task, should_stop=stop_after(3))
    assert RunDir(run_b).read()["status"] == "stopped"
    run_training(None, sft_task, resume=run_b)
    assert evals_of(run_a) == evals_of(run_b)
    assert [a["response"] for e in list_evals(run_a) for a in e.answers()] == \
        [a["response"] for e in list_evals(run_b) for a in e.answers()]


def test_the_cli_shows_eval_numbers_and_the_best_checkpoint(setup, tmp_path, tiny_model_dir):
    cfg = setup(tmp_path / "unused")
    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "localtune", "train", "sft", "--model", str(tiny_model_dir), "--data", cfg.data,
         "--out", str(run), "--iters", "4", "--batch-size", "2", "--lora-rank", "4", "--eval-every", "2",
         "--eval-file", cfg.eval_file, "--eval-checks", cfg.eval_checks, "--eval-max-tokens", "6",
         "--keep-best", "eval_check_short", "--keep-checkpoints", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    best = RunDir(run).read()["best_step"]
    assert best in (2, 4)
    assert f"best checkpoint: step {best} (eval_check_short " in out.stdout
    assert "checks passed" in out.stdout and "loops" in out.stdout  # the eval numbers in the progress lines
    listed = subprocess.run([sys.executable, "-m", "localtune", "runs", "--root", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120).stdout.splitlines()
    assert listed[0].split()[-4:] == ["ended", "loops", "checks", "best"]
    assert listed[1].split()[0] == "run" and listed[1].split()[-1] == str(best)
    from localtune.export.card import model_card

    card = model_card(run, "peft", "tiny", has_plot=False)
    assert f"the adapter is the checkpoint of step {best}, the best by eval_check_short" in card
    assert "eval_checks_passed" in card


def test_eval_file_reads_ifeval_prompt_files_and_chat_rows(tmp_path):
    ifeval = read_eval_rows(str(ROOT / "samples" / "ifeval" / "heldout.jsonl"))
    assert {r.kind for r in ifeval} == {"ifeval"} and all(r.instruction_id_list for r in ifeval)
    plain = read_eval_rows(str(ROOT / "samples" / "sft" / "heldout_prompts.txt"))
    assert len(plain) == 6 and {r.kind for r in plain} == {"prompts"}
    chats = read_eval_rows(str(ROOT / "samples" / "sft" / "valid.jsonl"))
    assert len(chats) == 40 and all(r.messages[-1]["role"] == "user" for r in chats)
    assert all(r.reference and r.reference.startswith("Aye!") for r in chats)  # the removed answer
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text(json.dumps({"instruction": "Say hi", "input": "", "output": "Aye! hi"}) + "\n")
    [row] = read_eval_rows(str(alpaca))
    assert row.prompt == "Say hi" and row.reference == "Aye! hi"
