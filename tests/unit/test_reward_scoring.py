"""Scoring with a trained reward run: RewardModel.open/score on its own copy of the base and inside a
caller's model (the caller's adapter untouched, bit for bit; the same scores), the scores agreeing
with the run's own validation numbers, `localtune reward score` on pairs / chat / prompt-completion
files, and `localtune eval --reward-model`."""

import json
import random

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.utils import load

from localtune.cli import main
from localtune.config_reward import RewardConfig
from localtune.errors import RunError
from localtune.lora import LoraSpec, adapter_weights, attach_lora, lora_modules, set_adapter_enabled
from localtune.reward.model import RewardModel
from localtune.reward.score_file import score_file
from localtune.runs import RunDir, read_metrics
from localtune.train.reward import reward_task
from localtune.train.session import run_training


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_config, echo_words, echo_pairs, tiny_model_dir):
    """A trained reward run (rank 4, all layers) on the tiny model, and its held-out pairs."""
    d = tmp_path_factory.mktemp("rscore")
    combos = [(a, b) for a in echo_words for b in echo_words if a != b]
    random.Random(1).shuffle(combos)
    train, valid = echo_pairs(d / "train.jsonl", combos[:40]), echo_pairs(d / "valid.jsonl", combos[40:60])
    cfg = tiny_config(d / "rm", train, cls=RewardConfig, valid=str(valid), iters=16, batch_size=4, lr=5e-3,
                      eval_every=0, save_every=0, warmup=0, lora_dropout=0.1)
    run = run_training(cfg, reward_task)
    return {"dir": d, "run": run, "train": train, "valid": valid, "model": tiny_model_dir}


def caller_model(model_dir, spec, seed=7):
    """A model as another mode holds it: its own adapter (non-zero, dropout on, training mode)."""
    model, tok = load(str(model_dir))
    attach_lora(model, spec)
    for i, (_, layer) in enumerate(lora_modules(model)):
        layer.lora_b = mx.random.normal(layer.lora_b.shape, key=mx.random.key(seed + i)) * 0.05
    model.train()
    mx.eval(model.parameters())
    return model, tok


def snapshot(model):
    """Everything of the caller's adapter that must survive scoring, exactly."""
    layers = lora_modules(model)
    return {"weights": {k: np.array(v) for k, v in adapter_weights(model).items()},
            "objects": [(p, id(m), id(m.lora_a), id(m.lora_b)) for p, m in layers],
            "flags": [(m.adapter_enabled, m.training, m.dropout.training) for _, m in layers],
            "trainable": sorted(k for k, _ in tree_flatten(model.trainable_parameters()))}


def pair_lists(rm_path):
    rows = [json.loads(line) for line in rm_path.read_text().splitlines()]
    prompts, answers = [], []
    for r in rows:
        prompt = [{"role": "user", "content": r["prompt"]}] if "prompt" in r else r["chosen"][:-1]
        for side in ("chosen", "rejected"):
            prompts.append(prompt)
            answers.append(r[side] if isinstance(r[side], str) else r[side][-1]["content"])
    return prompts, answers


def test_standalone_scores_agree_with_the_runs_validation_numbers(setup):
    events = []
    rm = RewardModel.open(setup["run"], on_event=events.append)
    opened = [e for e in events if e["event"] == "reward_model"]
    assert len(opened) == 1 and opened[0]["shared"] is False and "own copy" in opened[0]["message"]
    result = score_file(rm, setup["valid"])
    s = result.summary()
    last = [m for m in read_metrics(setup["run"]) if m.get("event") == "val"][-1]
    assert s["pairs"] == 20
    assert s["accuracy"] == pytest.approx(last["val_reward_accuracy"])
    assert s["mean_margin"] == pytest.approx(last["val_reward_margin"], rel=1e-4, abs=1e-4)
    assert s["mean_reward"] == pytest.approx(last["val_reward_mean"], rel=1e-4, abs=1e-4)
    assert s["accuracy"] >= 0.95  # it learned the held-out preference


@pytest.mark.parametrize("caller", ["other-spec", "same-spec", "adapter-off", "no-adapter"])
def test_scoring_inside_the_callers_model_leaves_its_adapter_untouched(setup, caller):
    spec = {"other-spec": LoraSpec(rank=2, alpha=4, layers=1, dropout=0.2, targets=("self_attn.q_proj",)),
            "same-spec": LoraSpec(rank=4, alpha=16, layers=-1, dropout=0.1)}.get(caller, LoraSpec(rank=4))
    if caller == "no-adapter":
        model, tok = load(str(setup["model"]))
    else:
        model, tok = caller_model(setup["model"], spec)
    if caller == "adapter-off":
        set_adapter_enabled(model, False)
    before = snapshot(model)
    probe = mx.array([[5, 60, 61, 62, 7, 8]])
    mx.random.seed(11)
    out_before = np.array(model(probe)) if caller != "other-spec" else None  # dropout on: only where off/absent

    events = []
    prompts, answers = pair_lists(setup["valid"])
    mx.random.seed(11)
    shared = RewardModel.open(setup["run"], model=model, tokenizer=tok, batch_size=7, on_event=events.append)
    scores = shared.score(prompts, answers)
    rng_after = np.array(mx.random.uniform(shape=(4,)))
    mx.random.seed(11)
    assert np.array_equal(rng_after, np.array(mx.random.uniform(shape=(4,))))  # the global RNG did not move

    assert shared.shared and shared.model is model
    assert [e["shared"] for e in events if e["event"] == "reward_model"] == [True]
    after = snapshot(model)
    assert after["objects"] == before["objects"] and after["flags"] == before["flags"]
    assert after["trainable"] == before["trainable"]
    assert after["weights"].keys() == before["weights"].keys()
    for k, v in before["weights"].items():
        assert np.array_equal(after["weights"][k], v), k  # bit-identical
    if out_before is not None and caller in ("adapter-off", "no-adapter"):
        mx.random.seed(11)
        assert np.array_equal(np.array(model(probe)), out_before)

    alone = RewardModel.open(setup["run"]).score(prompts, answers)
    np.testing.assert_allclose(scores, alone, atol=1e-5, rtol=1e-5)
    # Another batching (other padding widths) gives the same scores up to float rounding, in order.
    np.testing.assert_allclose(shared.score(prompts[:3][::-1], answers[:3][::-1]), scores[:3][::-1], rtol=1e-5)


def test_a_model_of_another_base_is_not_used(setup, tmp_path):
    from tiny import make_tiny_model_dir

    other, tok = load(str(make_tiny_model_dir(tmp_path / "other", seed=5)))
    events = []
    rm = RewardModel.open(setup["run"], model=other, tokenizer=tok, on_event=events.append)
    assert not rm.shared and rm.model is not other
    msg = [e for e in events if e["event"] == "reward_model"][0]["message"]
    assert "own copy" in msg and "not the run's base" in msg


def test_only_reward_runs_open(setup, tiny_config, tmp_path, numbered_rows):
    from localtune.train.sft import sft_task

    sft = run_training(tiny_config(tmp_path / "sft", numbered_rows(tmp_path / "d.jsonl", 8), iters=1), sft_task)
    with pytest.raises(RunError, match="a sft run, not a reward model"):
        RewardModel.open(sft)
    with pytest.raises(RunError, match="not a run directory"):
        RewardModel.open(tmp_path)


def test_a_run_still_training_is_read_from_its_newest_checkpoint(setup, tiny_config, tmp_path, stop_after):
    cfg = tiny_config(tmp_path / "rm", setup["train"], cls=RewardConfig, iters=6, save_every=2, batch_size=4)
    run = run_training(cfg, reward_task, should_stop=stop_after(4))  # stopped at 4: not finished
    RunDir(run).update(status="interrupted")
    events = []
    rm = RewardModel.open(run, on_event=events.append)
    assert rm.source.name == "step-000004"


def test_cli_reward_score_pairs_chat_and_prompt_completion(setup, tmp_path, capsys):
    out = tmp_path / "scores.jsonl"
    assert main(["reward", "score", str(setup["run"]), "--data", str(setup["valid"]), "--out", str(out),
                 "--json"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(printed[-1])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["kind"] == "pairs" and summary["pairs"] == len(rows) == 20
    assert summary["accuracy"] == pytest.approx(np.mean([r["chosen_reward"] > r["rejected_reward"] for r in rows]))
    assert printed[0].startswith("20 pairs: accuracy")

    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "echo apple river"},
                                             {"role": "assistant", "content": "apple river #"}]}) + "\n"
                    + json.dumps({"messages": [{"role": "user", "content": "echo apple river"}]}) + "\n")
    pc = tmp_path / "pc.jsonl"
    pc.write_text(json.dumps({"prompt": "echo apple river", "completion": "apple river #"}) + "\n"
                  + json.dumps({"prompt": "echo apple river", "completion": "apple river"}) + "\n")
    assert main(["reward", "score", str(setup["run"]), "--data", str(chat), "--json"]) == 0
    captured = capsys.readouterr()
    chat_summary = json.loads(captured.out.strip().splitlines()[-1])
    assert chat_summary == {"kind": "answers", "rows": 1, "skipped": 1, "mean_reward": chat_summary["mean_reward"]}
    assert "skipped" in captured.err and "chat.jsonl:2: no assistant turn" in captured.err
    out2 = tmp_path / "pc_scores.jsonl"
    assert main(["reward", "score", str(setup["run"]), "--data", str(pc), "--out", str(out2)]) == 0
    marked, plain = [json.loads(line)["reward"] for line in out2.read_text().splitlines()]
    assert marked == pytest.approx(chat_summary["mean_reward"], abs=1e-5)  # the same conversation
    assert marked > plain  # the learned preference: the marker wins


def test_cli_reward_score_refuses_a_non_reward_run(tmp_path, capsys):
    assert main(["reward", "score", str(tmp_path), "--data", str(tmp_path / "x.jsonl")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_eval_reward_model_adds_each_models_mean_reward(setup, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("echo apple river\necho stone cloud\n")
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(setup["model"]), "--adapter", str(setup["run"]), "--prompts", str(prompts),
                 "--reward-model", str(setup["run"]), "--max-tokens", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "score: reward" in printed.out
    assert "scoring inside the loaded model" in printed.err  # one model in memory
    summary = json.loads((out / "summary.json").read_text())
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert summary["reward_model"] == str(setup["run"])
    assert list(summary["models"]) == ["base", "rm"]
    rm = RewardModel.open(setup["run"])
    for name, m in summary["models"].items():
        mine = [a for a in answers if a["model"] == name]
        assert len(mine) == 2
        want = rm.score([[{"role": "user", "content": a["prompt"]}] for a in mine], [a["response"] for a in mine])
        np.testing.assert_allclose([a["scores"]["reward"] for a in mine], want, atol=1e-5)
        assert m["scores"]["reward"] == pytest.approx(np.mean(want), abs=1e-5)


def test_exporting_a_reward_run_says_the_head_stays_behind(setup, tmp_path):
    from localtune.export import export_run

    events = []
    export_run(setup["run"], "peft", tmp_path / "peft", base_name="tiny", on_event=events.append)
    notes = [e["message"] for e in events if e["event"] == "notice"]
    assert any("is a reward model" in n and "not its value head" in n for n in notes), notes
