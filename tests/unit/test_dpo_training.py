"""DPO end to end on a tiny model: policy == reference at step 0 (live and cached, from the base and
from an SFT adapter), a learnable preference is learned, resume matches an unbroken run and reuses
the cached references, and `localtune train dpo` runs."""

import math

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.utils import load

from localtune.cli import main
from localtune.config_dpo import DPOConfig
from localtune.lora import ADAPTER_FILE, LoraSpec, attach_lora, load_adapter_weights, save_adapter
from localtune.runs import RunDir, read_metrics
from localtune.train.dpo import dpo_task, preference_report
from localtune.train.reference import CACHE_DIR
from localtune.train.session import run_training

LOG2 = math.log(2)


@pytest.fixture(scope="module")
def data(echo_pair_files):
    return echo_pair_files


@pytest.fixture(scope="module")
def config(pair_config):
    """make((train, valid), out, **options): 4 DPO steps of 4 pairs, no checkpoint before the end."""
    return lambda data, out, **kw: pair_config(DPOConfig, data, out, **kw)


def events_of(kind, events):
    return [e for e in events if e["event"] == kind]


@pytest.fixture(scope="module")
def sft_adapter(tiny_model_dir, tmp_path_factory):
    """A stand-in SFT run: an adapter with non-zero weights, so base != reference."""
    out = tmp_path_factory.mktemp("sft")
    mx.random.seed(1)
    model, _ = load(str(tiny_model_dir))
    spec = LoraSpec(rank=4, alpha=8, layers=-1)
    attach_lora(model, spec)
    for _, layer in model.named_modules():
        if hasattr(layer, "lora_b"):
            layer.lora_b = mx.random.normal(layer.lora_b.shape) * 0.05
    save_adapter(model, out, spec)
    return out


@pytest.mark.parametrize("start", ["base", "sft"])
def test_step0_policy_equals_reference_live_and_cached(config, data, tmp_path, sft_adapter, start):
    adapter = str(sft_adapter) if start == "sft" else None
    curves = {}
    for ref in ("cached", "live"):
        events = []
        run_training(config(data, tmp_path / ref, ref=ref, adapter=adapter, iters=3),
                     dpo_task, on_event=events.append)
        val0 = events_of("val", events)[0]
        assert val0["step"] == 0
        assert val0["val_loss"] == pytest.approx(LOG2, abs=1e-5), (ref, val0)
        for k in ("val_reward_chosen", "val_reward_rejected", "val_reward_margin", "val_logp_drift"):
            assert abs(val0[k]) < 1e-5, (ref, k, val0[k])
        train = events_of("train", events)
        assert train[0]["train_loss"] == pytest.approx(LOG2, abs=1e-5)  # step 1's loss is before its update
        curves[ref] = [e["train_loss"] for e in train]
        assert len(events_of("reference", events)) == (2 if ref == "cached" else 0)
    assert curves["cached"][-1] < LOG2 - 1e-3  # it moved
    np.testing.assert_allclose(curves["cached"], curves["live"], atol=1e-5)
    assert RunDir(tmp_path / "live").read()["reference"] == "live"
    assert not (tmp_path / "live" / CACHE_DIR).exists()


def test_learnable_preference_reaches_high_heldout_accuracy(tiny_model_dir, config, data, tmp_path):
    _, valid = data
    model, tok = load(str(tiny_model_dir))
    attach_lora(model, LoraSpec(rank=4, alpha=8, layers=-1))
    before = preference_report(model, tok, valid)
    assert before["reward"] == 0.0  # a fresh adapter gains nothing over the base: no pair is won

    events = []
    run = run_training(config(data, tmp_path / "run", iters=30, eval_every=15), dpo_task,
                       on_event=events.append)
    vals = events_of("val", events)
    assert [v["step"] for v in vals] == [0, 15, 30]
    assert vals[0]["val_reward_accuracy"] == 0.0  # all rewards are 0 at the start: no pair is won
    assert vals[-1]["val_reward_accuracy"] >= 0.95, vals[-1]
    assert vals[-1]["val_loss"] < 0.3 and vals[-1]["val_reward_margin"] > 1.0

    load_adapter_weights(model, run / ADAPTER_FILE)
    after = preference_report(model, tok, valid)
    assert after["reward"] == pytest.approx(vals[-1]["val_reward_accuracy"])  # DPO's own metric
    assert after["pairs"] == 24
    assert before["tuned"] == before["base"] <= 0.6, before  # the random model does not know the marker
    assert after["tuned"] >= 0.95 and after["base"] == before["base"], after
    info = RunDir(run).read()
    assert info["kind"] == "dpo" and info["train_pairs"] == 48 and info["valid_pairs"] == 24
    metrics = read_metrics(run / "metrics.jsonl")
    assert all("reward_accuracy" in m for m in metrics if "train_loss" in m)


def test_stop_then_resume_matches_unbroken_and_reuses_references(config, data, tmp_path, echo_pairs):
    cfg = dict(iters=12, lora_dropout=0.1, save_every=4)  # 12 batches per epoch: crosses an epoch
    unbroken = []
    run_a = tmp_path / "elsewhere" / "a"  # not a sibling of b: b computes its own references
    run_training(config(data, run_a, **cfg, batch_size=5), dpo_task, on_event=unbroken.append)

    calls = {"n": 0}

    def stop_after_6():
        calls["n"] += 1
        return calls["n"] > 6

    first = []
    run_b = run_training(config(data, tmp_path / "b", **cfg, batch_size=5), dpo_task,
                         should_stop=stop_after_6, on_event=first.append)
    assert RunDir(run_b).read()["status"] == "stopped"
    caches = sorted((run_b / CACHE_DIR).iterdir())
    assert [c.name.split("-")[0] for c in caches] == ["train", "valid"]
    assert [e["status"] for e in events_of("reference", first)] == ["computed", "computed"]
    stamps = [c.stat().st_mtime_ns for c in caches]

    resumed = []
    run_training(None, dpo_task, resume=run_b, on_event=resumed.append, cfg_cls=DPOConfig)
    assert [e["status"] for e in events_of("reference", resumed)] == ["loaded", "loaded"]
    assert [c.stat().st_mtime_ns for c in caches] == stamps  # not recomputed, not rewritten
    a = {e["step"]: e["train_loss"] for e in unbroken if e["event"] == "train"}
    b = {m["step"]: m["train_loss"] for m in read_metrics(run_b / "metrics.jsonl") if "train_loss" in m}
    assert sorted(b) == sorted(a) == list(range(1, 13))
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-6), step
    wa = mx.load(str(run_a / "adapters.safetensors"))
    wb = mx.load(str(run_b / "adapters.safetensors"))
    for k in wa:
        np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), atol=1e-6)

    # A later run over the same data and starting weights reuses a sibling run's references.
    later = []
    run_training(config(data, tmp_path / "c", iters=1, batch_size=5), dpo_task,
                 on_event=later.append)
    assert [e["status"] for e in events_of("reference", later)] == ["reused", "reused"]
    # ... but not when the data changes.
    train, valid = data
    other = echo_pairs(tmp_path / "other.jsonl", [("apple", "river"), ("stone", "cloud")])
    later = []
    run_training(config((other, valid), tmp_path / "d", iters=1), dpo_task,
                 on_event=later.append)
    assert [e["status"] for e in events_of("reference", later)] == ["computed", "reused"]


@pytest.mark.parametrize("loss", ["ipo", "hinge", "orpo", "simpo"])
def test_other_losses_train_and_reference_free_ones_skip_the_reference(config, data, tmp_path, loss):
    events = []
    beta = 2.0 if loss == "simpo" else 0.1
    run_training(config(data, tmp_path / loss, loss=loss, beta=beta, iters=8),
                 dpo_task, on_event=events.append)
    losses = [e["train_loss"] for e in events_of("train", events)]
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-3:]) < losses[0], losses
    refs = events_of("reference", events)
    assert len(refs) == (0 if loss in ("orpo", "simpo") else 2)
    assert ("logp_drift" in events_of("train", events)[0]) == (loss not in ("orpo", "simpo"))


def test_cli_train_dpo(tiny_model_dir, data, tmp_path, capsys):
    train, valid = data
    out = tmp_path / "cli"
    rc = main(["train", "dpo", "--model", str(tiny_model_dir), "--data", str(train), "--valid", str(valid),
               "--out", str(out), "--iters", "2", "--batch-size", "4", "--lora-layers", "-1",
               "--beta", "0.2", "--loss", "sigmoid", "--label-smoothing", "0.1", "--ref", "live"])
    assert rc == 0
    info = RunDir(out).read()
    assert info["status"] == "finished" and info["kind"] == "dpo"
    assert info["config"]["beta"] == 0.2 and info["config"]["label_smoothing"] == 0.1
    assert info["config"]["ref"] == "live"
    assert f"adapter: {out}" in capsys.readouterr().out
    assert main(["train", "dpo", "--data", str(train), "--loss", "simpo", "--label-smoothing", "0.1"]) == 2
    assert "sigmoid loss only" in capsys.readouterr().err


def test_rpo_alpha_adds_the_chosen_nll_and_keeps_chosen_likely(config, data, tmp_path):
    """--rpo-alpha a: the loss is DPO's plus a times the chosen tokens' mean NLL (TRL's rpo_alpha); at
    step 1 (policy == reference) that is log 2 + a * NLL. Trained, the chosen answers stay likelier
    than with DPO alone."""
    runs = {}
    for alpha in (0.0, 1.0):
        events = []
        run_training(config(data, tmp_path / f"rpo{alpha}", iters=6, lr=2e-2, rpo_alpha=alpha),
                     dpo_task, on_event=events.append)
        runs[alpha] = events
    first = events_of("train", runs[1.0])[0]
    assert first["step"] == 1 and first["chosen_nll"] > 1.0
    assert first["train_loss"] == pytest.approx(LOG2 + first["chosen_nll"], rel=1e-5)
    assert events_of("train", runs[0.0])[0]["train_loss"] == pytest.approx(LOG2, abs=1e-5)
    end = {alpha: events_of("val", ev)[-1] for alpha, ev in runs.items()}
    start = events_of("val", runs[1.0])[0]["val_chosen_nll"]
    # measured on this toy (random tiny model): 29.1 at the start -> 7.8 with rpo, 14.5 without
    assert end[1.0]["val_chosen_nll"] < 0.75 * end[0.0]["val_chosen_nll"], (start, end)
    assert end[1.0]["val_reward_accuracy"] >= 0.5
