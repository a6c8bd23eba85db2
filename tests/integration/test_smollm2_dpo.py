"""A short real DPO run on SmolLM2-135M-Instruct with the project's preference samples (the pairs that
run on past the chosen answer's end: tests/sample_pairs.py): held-out
reward accuracy rises from 0 (policy = reference) and the preference report agrees with it."""

import pytest

import localtune  # noqa: F401
from localtune.config import build_config
from localtune.config_dpo import DPOConfig
from localtune.lora import ADAPTER_FILE, load_adapter
from localtune.models import load_model
from localtune.train.dpo import dpo_task, preference_report
from localtune.train.session import run_training
from sample_pairs import run_on_pairs

pytestmark = pytest.mark.integration


def test_short_dpo_run_raises_heldout_reward_accuracy(smollm2_dir, tmp_path):
    train = run_on_pairs("samples/dpo/train.jsonl", tmp_path / "train.jsonl", 16)
    valid = run_on_pairs("samples/dpo/valid.jsonl", tmp_path / "valid.jsonl", 8)
    cfg = build_config(None, dict(model=str(smollm2_dir), data=str(train), valid=str(valid),
                                  out=str(tmp_path / "run"), iters=8, batch_size=2, lr=5e-4, beta=0.1,
                                  lora_layers=4, max_seq_len=256, eval_every=0, save_every=0),
                       cls=DPOConfig)
    events = []
    run = run_training(cfg, dpo_task, on_event=events.append, cfg_cls=DPOConfig)
    vals = [e for e in events if e["event"] == "val"]
    assert vals[0]["val_loss"] == pytest.approx(0.6931, abs=1e-3)  # policy = reference at step 0
    assert vals[0]["val_reward_accuracy"] == 0.0
    print(f"\nSmolLM2 DPO, 8 steps on 16 run-on pairs: val loss {vals[0]['val_loss']:.3f} -> "
          f"{vals[-1]['val_loss']:.3f}, reward accuracy {vals[0]['val_reward_accuracy']:.3f} -> "
          f"{vals[-1]['val_reward_accuracy']:.3f}")
    assert vals[-1]["val_reward_accuracy"] >= 0.5, vals[-1]
    assert vals[-1]["val_loss"] < 0.5

    model, tok = load_model(smollm2_dir)
    load_adapter(model, run)
    report = preference_report(model, tok, valid, batch_size=4, max_seq_len=256)
    assert report["reward"] == pytest.approx(vals[-1]["val_reward_accuracy"])
    assert (run / ADAPTER_FILE).exists()
