"""Reward models (`localtune train reward`) on a tiny model: the Bradley-Terry loss against numpy,
rewards from the last real token after the final norm, a learnable preference learned (held-out
accuracy), the head saved in its own file beside a plain mlx_lm adapter and in every checkpoint,
exact resume, a damaged head passed over, the margin column, the config and the CLI."""

import json
import math

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.utils import load

from localtune.cli import main
from localtune.config_reward import RewardConfig
from localtune.data.preferences import load_pairs, read_preferences
from localtune.errors import LocaltuneError
from localtune.lora import LoraSpec, attach_lora, save_adapter
from localtune.reward.head import HEAD_ATTR, backbone, last_token_hidden, new_head, read_head, sequence_rewards
from localtune.runs import RunDir, layout, list_runs, read_metrics
from localtune.runs.checkpoints import list_checkpoints
from localtune.train.dpo import collate_pairs
from localtune.train.reward import RewardLoss, bradley_terry_loss, reward_task
from localtune.train.session import run_training
from tui.follow import RunFollower

LOG2 = math.log(2)


def np_bradley_terry(rc, rr, margin=0.0):
    """-log σ(x) = log(1 + exp(-x)), written the stable way numpy users write it."""
    x = np.asarray(rc, np.float64) - np.asarray(rr, np.float64) - margin
    return np.logaddexp(0.0, -x)


@pytest.mark.parametrize("margin", [0.0, 0.5, "per-pair"])
def test_bradley_terry_loss_equals_numpy(margin):
    rng = np.random.default_rng(0)
    rc = rng.normal(0, 3, 64).astype(np.float32)
    rr = rng.normal(0, 3, 64).astype(np.float32)
    rc[:4] = [40.0, -40.0, 0.0, 1e-3]  # saturated both ways, a tie, a near-tie
    rr[:4] = [-40.0, 40.0, 0.0, 0.0]
    m = rng.uniform(0, 2, 64).astype(np.float32) if margin == "per-pair" else margin
    got = np.array(bradley_terry_loss(mx.array(rc), mx.array(rr), mx.array(m) if margin == "per-pair" else m))
    np.testing.assert_allclose(got, np_bradley_terry(rc, rr, m), atol=1e-6, rtol=1e-6)
    assert got[2] == pytest.approx(LOG2 if margin == 0.0 else got[2])  # a tie costs log 2 without margin


@pytest.fixture(scope="module")
def data(echo_pair_files):
    """48 train and 24 held-out pairs over disjoint word pairs (chosen ends with the marker " #")."""
    return echo_pair_files


@pytest.fixture(scope="module")
def config(pair_config):
    return lambda data, out, **kw: pair_config(RewardConfig, data, out, **kw)


def events_of(kind, events):
    return [e for e in events if e["event"] == kind]


def test_backbone_output_is_the_final_normed_hidden_state(tiny_model_dir):
    """What the head reads is exactly what the LM head reads: lm_head(backbone(x)) == model(x)."""
    model, _ = load(str(tiny_model_dir))
    ids = mx.array([[5, 60, 61, 62, 7], [9, 70, 71, 0, 0]])
    logits = model.model.embed_tokens.as_linear(backbone(model)(ids))  # tiny ties its embeddings
    assert mx.array_equal(logits, model(ids))
    # The last REAL token of a right-padded row: the same state as the row alone.
    got = last_token_hidden(model, ids, [5, 3])
    alone = backbone(model)(ids[1:, :3])[0, -1]
    np.testing.assert_allclose(np.array(got[1]), np.array(alone), atol=1e-5)
    np.testing.assert_allclose(np.array(got[0]), np.array(backbone(model)(ids[:1])[0, -1]), atol=1e-6)


def test_the_loss_the_loop_sees_matches_numpy_with_margins_and_centring(tiny_model_dir, tmp_path, echo_pairs):
    model, tok = load(str(tiny_model_dir))
    attach_lora(model, LoraSpec(rank=4, layers=-1))
    model[HEAD_ATTR] = new_head(64)
    model[HEAD_ATTR].weight = mx.random.normal((1, 64), key=mx.random.key(3))
    path = echo_pairs(tmp_path / "p.jsonl", [("apple", "river"), ("stone", "cloud"), ("ember", "maple")])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["margin"], rows[2]["margin"] = 1.5, -0.25  # the middle row has none: 0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = load_pairs(str(path), tok, max_seq_len=512)
    batch = collate_pairs(pairs, [0, 1, 2])
    assert np.array(batch.margins).tolist() == [1.5, 0.0, -0.25]
    cfg = RewardConfig(margin=0.5, center_rewards=0.01)
    loss, weight, metrics = RewardLoss(cfg)(model, batch)
    r = np.array(sequence_rewards(model, model[HEAD_ATTR], batch.ids, batch.lengths), np.float64)
    rc, rr = r[:3], r[3:]
    want = np_bradley_terry(rc, rr, np.array([1.5, 0.0, -0.25]) + 0.5).mean() + 0.01 * ((rc + rr) ** 2).mean()
    assert float(loss) == pytest.approx(want, abs=1e-6)
    assert float(weight) == 3
    assert float(metrics["reward_accuracy"]) == pytest.approx(np.mean(rc > rr))
    assert float(metrics["reward_margin"]) == pytest.approx((rc - rr).mean(), abs=1e-6)
    assert float(metrics["reward_mean"]) == pytest.approx(r.mean(), abs=1e-6)


def test_a_reward_model_learns_a_learnable_preference(config, data, tmp_path, tiny_model_dir):
    events = []
    run = run_training(config(data, tmp_path / "run", iters=24, eval_every=8), reward_task, on_event=events.append)
    vals = events_of("val", events)
    assert [v["step"] for v in vals] == [0, 8, 16, 24]
    first, last = vals[0], vals[-1]
    # A zero head: every reward 0 at the start, loss exactly log 2, no pair won.
    assert first["val_loss"] == pytest.approx(LOG2, abs=1e-6)
    assert first["val_reward_accuracy"] == 0.0 and first["val_reward_mean"] == 0.0
    assert last["val_reward_accuracy"] >= 0.95, last
    assert last["val_loss"] < 0.1 and last["val_reward_margin"] > 2.0, last
    train = events_of("train", events)
    assert train[0]["train_loss"] == pytest.approx(LOG2, abs=1e-6) and train[-1]["train_loss"] < 0.1
    record = RunDir(run).read()
    assert record["kind"] == "reward" and record["train_pairs"] == 48 and record["valid_pairs"] == 24
    assert record["weight_unit"] == "pairs" and record["reward_head_hidden"] == 64
    # The head is trainable beside LoRA: counted in the run's trainable parameters.
    model, _ = load(str(tiny_model_dir))
    attach_lora(model, LoraSpec(rank=4, layers=-1))
    lora_params = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    assert record["trainable_params"] == lora_params + 64
    declared = {m["key"] for m in record["metrics"]}
    assert {"val_reward_accuracy", "val_reward_margin", "reward_mean", "val_reward_mean"} <= declared
    row = next(r for r in list_runs(tmp_path) if r["path"] == str(run))
    assert row["final_val_reward_accuracy"] == last["val_reward_accuracy"]
    follower = RunFollower(run)  # the TUI's reader: the reward plot gets the run's series
    follower.poll()
    assert follower.is_dpo
    assert {"reward acc", "val reward acc", "margin", "val margin", "mean reward"} <= set(follower.series)
    assert follower.series["val reward acc"] == ([0, 8, 16, 24], [v["val_reward_accuracy"] for v in vals])
    print(f"\nreward model on the tiny model: val loss {first['val_loss']:.4f} -> {last['val_loss']:.4f}, "
          f"val accuracy {first['val_reward_accuracy']:.2f} -> {last['val_reward_accuracy']:.2f}, "
          f"val margin {first['val_reward_margin']:.3f} -> {last['val_reward_margin']:.3f}")


def test_the_head_has_its_own_file_beside_a_plain_mlx_lm_adapter(config, data, tmp_path, tiny_model_dir):
    run = run_training(config(data, tmp_path / "run", iters=4, save_every=2), reward_task)
    head_file = RunDir(run).reward_head_path
    weights, meta = mx.load(str(head_file), return_metadata=True)
    assert list(weights) == ["score.weight"] and weights["score.weight"].shape == (1, 64)
    assert meta["format"] == "localtune-reward-head-1" and meta["hidden_size"] == "64"
    assert float(mx.abs(weights["score.weight"]).sum()) > 0  # trained away from zero
    adapter = mx.load(str(RunDir(run).adapter_path))
    assert all(k.rsplit(".", 1)[-1] in ("lora_a", "lora_b") for k in adapter)  # no head in the adapter
    load(str(tiny_model_dir), adapter_path=str(run))  # mlx_lm still reads the run as an adapter
    assert mx.array_equal(read_head(head_file, 64).weight, weights["score.weight"])
    for ckpt in list_checkpoints(run):  # every checkpoint holds its head, named by its state
        assert (ckpt / layout.REWARD_HEAD_FILE).is_file()
        assert json.loads((ckpt / layout.STATE_FILE).read_text())["parts"] == [layout.REWARD_HEAD_FILE]
    last = list_checkpoints(run)[-1]
    assert mx.array_equal(mx.load(str(last / layout.REWARD_HEAD_FILE))["score.weight"], weights["score.weight"])
    with pytest.raises(LocaltuneError, match="hidden size is 32"):
        read_head(head_file, 32)


def test_stop_then_resume_gives_the_unbroken_runs_losses_and_weights(config, data, tmp_path, stop_after):
    cfg = dict(iters=14, lora_dropout=0.1, save_every=4, batch_size=5)  # 10 batches per epoch: crosses one
    unbroken = []
    run_a = run_training(config(data, tmp_path / "a", **cfg), reward_task, on_event=unbroken.append)
    run_b = run_training(config(data, tmp_path / "b", **cfg), reward_task, should_stop=stop_after(6))
    assert RunDir(run_b).read()["status"] == "stopped"
    resumed = []
    run_training(None, reward_task, resume=run_b, on_event=resumed.append, cfg_cls=RewardConfig)
    assert events_of("resumed", resumed)[0]["step"] == 6
    a = {e["step"]: (e["train_loss"], e["reward_margin"]) for e in unbroken if e["event"] == "train"}
    b = {m["step"]: (m["train_loss"], m["reward_margin"]) for m in read_metrics(run_b) if "train_loss" in m}
    assert sorted(a) == sorted(b) == list(range(1, 15))
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-6), step
    for name in (layout.ADAPTER_FILE, layout.REWARD_HEAD_FILE):
        wa, wb = mx.load(str(run_a / name)), mx.load(str(run_b / name))
        for k in wa:
            np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), atol=1e-6)


def test_a_newest_checkpoint_with_a_torn_head_is_passed_over(config, data, tmp_path):
    run = run_training(config(data, tmp_path / "run", iters=6, save_every=2, keep_checkpoints=3), reward_task)
    newest = list_checkpoints(run)[-1]
    head = newest / layout.REWARD_HEAD_FILE
    head.write_bytes(head.read_bytes()[:-10])
    events = []
    run_training(None, reward_task, resume=run, on_event=events.append, cfg_cls=RewardConfig,
                 overrides={"iters": 8})
    bad = events_of("unusable_checkpoint", events)
    assert [e["path"] for e in bad] == [str(newest)] and "reward_head.safetensors" in bad[0]["reason"]
    assert events_of("resumed", events)[0]["step"] == 4


def test_a_checkpoint_without_the_head_is_damage_for_a_reward_run(config, data, tmp_path):
    run = run_training(config(data, tmp_path / "run", iters=4, save_every=2), reward_task)
    newest = list_checkpoints(run)[-1]
    state = json.loads((newest / layout.STATE_FILE).read_text())
    del state["parts"]  # as an SFT checkpoint would be
    (newest / layout.STATE_FILE).write_text(json.dumps(state))
    events = []
    run_training(None, reward_task, resume=run, on_event=events.append, cfg_cls=RewardConfig,
                 overrides={"iters": 6})
    assert "missing reward_head.safetensors" in events_of("unusable_checkpoint", events)[0]["reason"]
    assert events_of("resumed", events)[0]["step"] == 2


def test_starting_from_another_reward_run_takes_its_adapter_and_head(config, data, tmp_path, tiny_model_dir):
    first = run_training(config(data, tmp_path / "first", iters=6), reward_task)
    events = []
    second = run_training(config(data, tmp_path / "second", iters=2, adapter=str(first), eval_every=0),
                          reward_task, on_event=events.append)
    start = RunDir(second).start_adapter_dir
    assert (start / layout.REWARD_HEAD_FILE).read_bytes() == (first / layout.REWARD_HEAD_FILE).read_bytes()
    step0 = events_of("val", events)[0]
    assert step0["step"] == 0 and step0["val_reward_accuracy"] >= 0.9  # it starts where the first ended


def test_starting_from_an_sft_adapter_gives_a_zero_head_on_its_weights(config, data, tmp_path, tiny_model_dir):
    model, _ = load(str(tiny_model_dir))
    spec = LoraSpec(rank=4, alpha=8, layers=-1)
    attach_lora(model, spec)
    for _, layer in model.named_modules():
        if hasattr(layer, "lora_b"):
            layer.lora_b = mx.random.normal(layer.lora_b.shape, key=mx.random.key(1)) * 0.05
    sft = tmp_path / "sft"
    save_adapter(model, sft, spec)
    events = []
    run = run_training(config(data, tmp_path / "run", iters=1, adapter=str(sft)), reward_task, on_event=events.append)
    assert events_of("val", events)[0]["val_loss"] == pytest.approx(LOG2, abs=1e-6)  # zero head: 0 rewards
    assert RunDir(run).read()["config"]["adapter"] == str(sft)


def test_margin_column_is_read_and_checked(tmp_path):
    path = tmp_path / "m.jsonl"
    rows = [{"prompt": "a", "chosen": "b", "rejected": "c", "margin": 2},
            {"prompt": "a", "chosen": "b", "rejected": "c", "margin": "big"},
            {"prompt": "a", "chosen": "b", "rejected": "c", "margin": True},
            {"prompt": "a", "chosen": "b", "rejected": "c"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = read_preferences(path)
    assert [ex.margin for ex in ds.examples] == [2.0, None]
    assert [(p.line, "'margin' must be a finite number" in p.message) for p in ds.problems] == [(2, True), (3, True)]


@pytest.mark.parametrize("options, message", [
    ({"pack": True}, "pack applies to SFT only (a reward model"),
    ({"format": "messages"}, "format does not apply to a reward model"),
    ({"train_on_prompt": True}, "train_on_prompt does not apply to a reward model"),
    ({"center_rewards": -1.0}, "center_rewards must be >= 0"),
    ({"margin": "wide"}, "margin must be a number"),
])
def test_bad_reward_options_are_refused(options, message):
    with pytest.raises(LocaltuneError, match=message.replace("(", r"\(")):
        RewardConfig(**options)


def test_yaml_numbers_for_reward_options_are_coerced(tmp_path):
    from localtune.config import build_config

    cfg_file = tmp_path / "rm.yaml"
    cfg_file.write_text("data: x.jsonl\nmargin: 1e-1\ncenter_rewards: 0\n")
    cfg = build_config(cfg_file, {}, cls=RewardConfig)
    assert cfg.margin == 0.1 and cfg.center_rewards == 0.0


def test_cli_train_reward(data, tmp_path, tiny_model_dir, capsys):
    train, valid = data
    out = tmp_path / "rm"
    rc = main(["train", "reward", "--model", str(tiny_model_dir), "--data", str(train), "--valid", str(valid),
               "--out", str(out), "--iters", "2", "--batch-size", "4", "--lora-rank", "4", "--margin", "0.1",
               "--center-rewards", "0.01"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert f"localtune reward score {out}" in printed
    cfg = RunDir(out).read()["config"]
    assert cfg["margin"] == 0.1 and cfg["center_rewards"] == 0.01
    assert RunDir(out).reward_head_path.is_file()


def test_kill_9_then_resume_gives_the_unbroken_runs_losses(data, tmp_path, tiny_model_dir):
    """A trainer process killed with SIGKILL after its first checkpoints: every visible file is whole,
    and `--resume` ends with the losses and weights of an unbroken run."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from localtune.runs.checkpoints import checkpoint_problem, safetensors_problem

    train, valid = data
    cfg = tmp_path / "c.yaml"
    cfg.write_text("report_every: 1\n")

    def argv(out):
        return ["train", "reward", "--config", str(cfg), "--model", str(tiny_model_dir), "--data", str(train),
                "--out", str(out), "--iters", "30", "--batch-size", "4", "--lora-rank", "4", "--lora-dropout",
                "0.1", "--lr", "5e-3", "--save-every", "2", "--keep-checkpoints", "2"]

    assert main(argv(tmp_path / "unbroken")) == 0
    killed = tmp_path / "killed"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "localtune", *argv(killed)], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list_checkpoints(killed)) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps = [layout.step_of(c) for c in list_checkpoints(killed)]
    assert steps and max(steps) < 30, steps  # killed mid-run
    assert all(checkpoint_problem(c) is None for c in list_checkpoints(killed))
    assert safetensors_problem(RunDir(killed).reward_head_path) is None
    assert main(["train", "reward", "--resume", str(killed)]) == 0
    a = {m["step"]: m["train_loss"] for m in read_metrics(tmp_path / "unbroken") if "train_loss" in m}
    b = {m["step"]: m["train_loss"] for m in read_metrics(killed) if "train_loss" in m}
    assert sorted(a) == sorted(b) == list(range(1, 31))
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-6), step
    for name in (layout.ADAPTER_FILE, layout.REWARD_HEAD_FILE):
        wa, wb = mx.load(str(tmp_path / "unbroken" / name)), mx.load(str(killed / name))
        for k in wa:
            np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), atol=1e-6)
