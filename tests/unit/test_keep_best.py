"""--keep-best METRIC and --patience K through the session on the tiny model: the best step is picked
in the metric's direction, its checkpoint survives --keep-checkpoints and becomes the run's adapter,
patience stops the run, and a stop + resume keeps the best/patience state exactly.

The eval numbers are scripted (the session's judge_answers is replaced) so the right answer is known;
the eval-file and checks are real files, so the config is validated as a user's would be."""

import json

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest

from localtune.errors import LocaltuneError
from localtune.events import parse
from localtune.runs import RunDir, layout, list_checkpoints, read_metrics
from localtune.train import session
from localtune.train.keep_best import KeepBest, direction
from localtune.train.session import run_training
from localtune.train.sft import sft_task


@pytest.fixture()
def files(tmp_path, echo_rows):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("echo apple river\necho stone cloud\n")
    checks = tmp_path / "checks.yaml"
    checks.write_text("checks:\n  - name: greets\n    starts_with: 'Aye!'\n")
    return {"data": echo_rows(tmp_path / "train.jsonl", 32, 0), "eval_file": prompts, "eval_checks": checks}


@pytest.fixture()
def config(tiny_config, files):
    def make(out, **kw):
        base = dict(iters=12, eval_every=2, save_every=0, keep_checkpoints=1, eval_file=str(files["eval_file"]),
                    eval_checks=str(files["eval_checks"]), eval_max_tokens=4, keep_best="eval_checks_passed")
        return tiny_config(out, files["data"], **{**base, **kw})

    return make


@pytest.fixture()
def scripted(monkeypatch):
    """script({step: value}): the eval_checks_passed each eval point reports; records the steps asked."""
    asked = []

    def install(values: dict, key="eval_checks_passed"):
        def judge(s, step):
            asked.append(step)
            return {"eval_loops": 0.0, key: values[step]}

        monkeypatch.setattr(session, "judge_answers", judge)
        return asked

    return install


def adapter(path):
    return {k: np.array(v) for k, v in mx.load(str(path / layout.ADAPTER_FILE)).items()}


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_keep_best_picks_the_highest_step_keeps_its_checkpoint_and_makes_it_the_adapter(config, scripted, tmp_path):
    values = {0: 0.9, 2: 0.1, 4: 0.5, 6: 0.8, 8: 0.3, 10: 0.8, 12: 0.2}  # 0 is the start: not a candidate
    asked = scripted(values)
    events = []
    run = run_training(config(tmp_path / "run"), sft_task, on_event=events.append)
    assert asked == [0, 2, 4, 6, 8, 10, 12]
    record = RunDir(run).read()
    # 0.8 first at step 6; the tie at step 10 is not better
    assert (record["best_step"], record["best_value"], record["adapter_step"]) == (6, 0.8, 6)
    assert record["best_metric"] == "eval_checks_passed" and record["step"] == 12
    kept = [layout.step_of(p) for p in list_checkpoints(run)]
    assert kept == [6, 12]  # --keep-checkpoints 1 keeps the newest, and the best is never pruned
    assert same_weights(adapter(run), adapter(run / "checkpoints" / layout.checkpoint_name(6)))
    assert not same_weights(adapter(run), adapter(run / "checkpoints" / layout.checkpoint_name(12)))
    best = [e for e in events if e["event"] == "best_checkpoint"]
    assert best == [{"event": "best_checkpoint", "step": 6, "metric": "eval_checks_passed", "value": 0.8,
                     "last_step": 12, "path": str(run / "checkpoints" / layout.checkpoint_name(6))}]
    assert any(e.get("event") == "best_checkpoint" for e in read_metrics(run))  # in the run's log too


def test_keep_best_lower_is_better_for_loops(config, scripted, tmp_path):
    scripted({0: 0.0, 2: 0.5, 4: 0.25, 6: 0.1, 8: 0.3, 10: 0.1, 12: 0.4}, key="eval_loops")
    run = run_training(config(tmp_path / "run", keep_best="eval_loops"), sft_task)
    assert RunDir(run).read()["best_step"] == 6
    assert direction("eval_loops") == "lower" and direction("val_loss") == "lower"
    assert direction("eval_checks_passed") == "higher" and direction("eval_check_greets") == "higher"
    assert direction("eval_mean_tokens") is None


def test_patience_stops_the_run_early_and_says_where(config, scripted, tmp_path):
    values = {0: 0.0, 2: 0.2, 4: 0.6, 6: 0.5, 8: 0.6, 10: 0.9, 12: 1.0}
    asked = scripted(values)
    events = []
    run = run_training(config(tmp_path / "run", patience=2), sft_task, on_event=events.append)
    assert asked == [0, 2, 4, 6, 8]  # 6 and 8 do not beat 0.6: two in a row, stop at 8
    record = RunDir(run).read()
    assert record["status"] == "finished" and record["step"] == 8 and record["early_stopped_at"] == 8
    assert record["best_step"] == 4 and record["adapter_step"] == 4
    stop = [e for e in events if e["event"] == "early_stop"]
    assert stop == [{"event": "early_stop", "step": 8, "metric": "eval_checks_passed", "evals": 2, "best_step": 4,
                     "best": 0.6}]
    assert same_weights(adapter(run), adapter(run / "checkpoints" / layout.checkpoint_name(4)))
    assert [e["step"] for e in events if e["event"] == "train"][-1] == 8


def test_resume_keeps_best_and_patience_exactly(config, scripted, tmp_path, stop_after):
    # best at 4; 6 is worse (one bad eval before the stop at 7); after the resume 8 is worse again:
    # patience 2 must count the eval before the stop, so the run stops at 8, as the unbroken one does.
    values = {0: 0.0, 2: 0.3, 4: 0.7, 6: 0.4, 8: 0.5, 10: 0.9, 12: 1.0}
    scripted(values)
    run_a = run_training(config(tmp_path / "a", patience=2), sft_task)
    run_b = run_training(config(tmp_path / "b", patience=2), sft_task, should_stop=stop_after(7))
    assert RunDir(run_b).read()["status"] == "stopped"
    kept = [layout.step_of(p) for p in list_checkpoints(run_b)]
    assert 4 in kept and 7 in kept  # the best survives the stop's checkpoint and its prune
    state = json.loads((run_b / "checkpoints" / layout.checkpoint_name(7) / layout.STATE_FILE).read_text())
    assert state["loop"]["extra"][KeepBest.key] == {"metric": "eval_checks_passed", "best": 0.7, "best_step": 4,
                                                   "bad_evals": 1}
    run_training(None, sft_task, resume=run_b)
    a, b = RunDir(run_a).read(), RunDir(run_b).read()
    for key in ("status", "step", "best_step", "best_value", "early_stopped_at", "adapter_step"):
        assert a[key] == b[key], key
    assert b["early_stopped_at"] == 8 and b["best_step"] == 4
    assert same_weights(adapter(run_a), adapter(run_b))


def test_keep_best_on_validation_loss_takes_the_lowest(tiny_config, files, tmp_path, echo_rows):
    valid = echo_rows(tmp_path / "valid.jsonl", 8, 1)
    cfg = tiny_config(tmp_path / "run", files["data"], valid=str(valid), iters=8, eval_every=2, save_every=0,
                      keep_checkpoints=1, keep_best="val_loss", lr=3e-3)
    run = run_training(cfg, sft_task)
    vals = {e["step"]: e["val_loss"] for e in read_metrics(run) if e.get("event") == "val" and e["step"] > 0}
    assert RunDir(run).read()["best_step"] == min(vals, key=vals.get)


def test_a_metric_the_evaluations_do_not_report_is_a_clear_error(config, scripted, tmp_path):
    scripted({0: 0.5})
    with pytest.raises(LocaltuneError, match="eval_check_signs_off: this run's evaluations do not report it"):
        run_training(config(tmp_path / "run", keep_best="eval_check_signs_off"), sft_task)


@pytest.mark.parametrize("options, message", [
    (dict(keep_best="eval_mean_tokens"), "not a metric with a better direction"),
    (dict(keep_best="eval_loops", eval_file=None, eval_checks=None), "needs eval_file"),
    (dict(keep_best="val_loss"), "needs valid"),
    (dict(keep_best=None, patience=3), "patience needs keep_best"),
    (dict(patience=0), "patience must be >= 1"),
    (dict(eval_file=None), "eval_checks needs eval_file"),
    (dict(keep_best=None, keep_best_if="eval_ended>=0.9"), "keep_best_if needs keep_best"),
    (dict(keep_best_if="eval_ended=>0.9"), "'eval_ended=>0.9' is not METRIC>=NUMBER"),
    (dict(keep_best_if="eval_ended>=0.9,eval_loops<="), "'eval_loops<=' is not METRIC>=NUMBER"),
    (dict(keep_best_if="eval_answer_length<=50"), "keep_best_if 'eval_answer_length': not a number the evaluations report"),
    (dict(keep_best_if="eval_ended>=0.9,"), "an empty condition in 'eval_ended>=0.9,' \\(a stray comma\\?\\)"),
    (dict(keep_best_if="eval_ended>=95"), "eval_ended is a share from 0 to 1"),
    (dict(keep_best_if="tokens_per_sec>=100"), "'tokens_per_sec': not a number the evaluations report"),
    (dict(keep_best_if="val_loss<=2"), "keep_best_if val_loss: needs valid"),
])
def test_bad_keep_best_options_are_refused_before_anything_runs(config, tmp_path, options, message):
    with pytest.raises(LocaltuneError, match=message):
        config(tmp_path / "run", **options)


def test_keep_best_if_takes_the_best_among_the_evaluations_that_meet_it(config, monkeypatch, tmp_path):
    # checks passed rises while the answers stop ending: the best by checks alone is step 10 (0.9),
    # among the evaluations whose answers end >= 0.95 it is step 4 (0.6); step 0 is never a candidate.
    checks = {0: 0.9, 2: 0.3, 4: 0.6, 6: 0.8, 8: 0.5, 10: 0.9, 12: 0.7}
    ended = {0: 1.0, 2: 1.0, 4: 0.95, 6: 0.9, 8: 1.0, 10: 0.5, 12: float("nan")}
    monkeypatch.setattr(session, "judge_answers",
                        lambda s, step: {"eval_loops": 0.0, "eval_ended": ended[step], "eval_checks_passed": checks[step]})
    events = []
    run = run_training(config(tmp_path / "run", keep_best_if="eval_ended >= 0.95"), sft_task, on_event=events.append)
    record = RunDir(run).read()
    assert (record["best_step"], record["best_value"], record["adapter_step"]) == (4, 0.6, 4)
    assert same_weights(adapter(run), adapter(run / "checkpoints" / layout.checkpoint_name(4)))
    [best] = [e for e in events if e["event"] == "best_checkpoint"]
    assert best["only_if"] == "eval_ended>=0.95" and best["step"] == 4
    assert "among the evaluations with eval_ended>=0.95" in parse(best).text()


def test_a_condition_may_use_a_metric_without_a_better_direction(config, monkeypatch, tmp_path):
    # eval_mean_tokens has no better direction (--keep-best refuses it) but bounds a collapse fine
    tokens = {0: 60, 2: 50, 4: 4, 6: 30, 8: 3, 10: 2, 12: 40}
    monkeypatch.setattr(session, "judge_answers", lambda s, step: {
        "eval_loops": 0.0, "eval_mean_tokens": tokens[step], "eval_checks_passed": 1 - tokens[step] / 100})
    run = run_training(config(tmp_path / "run", keep_best_if="eval_mean_tokens>=10"), sft_task)
    assert RunDir(run).read()["best_step"] == 6


def test_keep_best_if_met_by_no_evaluation_leaves_the_last_step_and_says_so(config, monkeypatch, tmp_path):
    monkeypatch.setattr(session, "judge_answers",
                        lambda s, step: {"eval_loops": 0.5, "eval_checks_passed": 0.1 * step})
    events = []
    run = run_training(config(tmp_path / "run", keep_best_if="eval_loops<=0.2,eval_checks_passed>0"), sft_task,
                       on_event=events.append)
    record = RunDir(run).read()
    assert record["best_step"] is None and record["adapter_step"] == 12
    [best] = [e for e in events if e["event"] == "best_checkpoint"]
    assert parse(best).text() == ("--keep-best eval_checks_passed: no evaluation met eval_loops<=0.2, eval_checks_passed>0; "
                    "the adapter is the last step's")
    from localtune.export.card import model_card

    card = model_card(run, "peft", "base", has_plot=False)
    assert "- no evaluation met eval_loops<=0.2,eval_checks_passed>0; the adapter is the last step's (12)" in card
    assert "the best by" not in card


def test_keep_best_if_on_a_metric_the_evaluations_do_not_report_is_a_clear_error(config, scripted, tmp_path):
    scripted({0: 0.5})
    with pytest.raises(LocaltuneError, match="--keep-best-if eval_prompt_strict: this run's evaluations do not"):
        run_training(config(tmp_path / "run", keep_best_if="eval_prompt_strict>=0.5"), sft_task)


def test_a_condition_is_checked_against_the_files_it_needs():
    from localtune.train.keep_best import conditions_problem

    def problem(spec, **files):
        return conditions_problem(spec, **{"valid": False, "eval_file": False, "eval_checks": False, **files})

    assert problem("eval_mean_tokens<=50") == "keep_best_if eval_mean_tokens: needs eval_file (the prompts whose answers are judged)"
    assert problem("eval_mean_tokens<=50", eval_file=True) is None
    assert "needs valid" in problem("val_reward_margin>=0", eval_file=True)
    assert "needs eval_checks" in problem("eval_check_greets>=0.5", eval_file=True)
    assert problem("eval_check_greets>=0.5", eval_file=True, eval_checks=True) is None


def test_keep_best_if_survives_a_resume_and_names_itself_when_patience_runs_out(config, monkeypatch, tmp_path,
                                                                                stop_after):
    # the best checks value (0.9 at step 6) misses the condition; among those that meet it, step 4.
    # After step 4 nothing better meets it: patience 3 stops at 10, the same with a stop at 7 + resume.
    checks = {0: 0.0, 2: 0.3, 4: 0.5, 6: 0.9, 8: 0.2, 10: 0.6, 12: 1.0}
    ended = {0: 1.0, 2: 1.0, 4: 1.0, 6: 0.5, 8: 1.0, 10: 0.6, 12: 1.0}
    monkeypatch.setattr(session, "judge_answers",
                        lambda s, step: {"eval_loops": 0.0, "eval_ended": ended[step], "eval_checks_passed": checks[step]})
    cfg = dict(patience=3, keep_best_if="eval_ended>=0.95")
    events = []
    run_a = run_training(config(tmp_path / "a", **cfg), sft_task, on_event=events.append)
    run_b = run_training(config(tmp_path / "b", **cfg), sft_task, should_stop=stop_after(7))
    run_training(None, sft_task, resume=run_b)
    a, b = RunDir(run_a).read(), RunDir(run_b).read()
    for key in ("step", "best_step", "best_value", "early_stopped_at", "adapter_step"):
        assert a[key] == b[key], key
    assert (a["best_step"], a["early_stopped_at"]) == (4, 10)
    assert same_weights(adapter(run_a), adapter(run_b))
    [stop] = [e for e in events if e["event"] == "early_stop"]
    assert parse(stop).text() == ("stopping early at step 10: eval_checks_passed has not improved among the "
                                  "evaluations with eval_ended>=0.95 for 3 evaluations (best 0.5 at step 4)")
