"""A short real reward-model run on SmolLM2-135M-Instruct with the project's preference samples: the
head reads the state the LM head reads, held-out accuracy rises from 0 (zero head), and the scorer,
on its own copy or inside an already loaded SmolLM2, reproduces the run's own validation numbers."""

import mlx.core as mx
import numpy as np
import pytest

import localtune  # noqa: F401
from localtune.config import build_config
from localtune.config_reward import RewardConfig
from localtune.lora import LoraSpec, attach_lora
from localtune.models import load_model
from localtune.reward.head import backbone
from localtune.reward.model import RewardModel
from localtune.reward.score_file import score_file
from localtune.train.reward import reward_task
from localtune.train.session import run_training
from sample_pairs import run_on_pairs

pytestmark = pytest.mark.integration


def test_smollm2_backbone_output_is_what_the_lm_head_reads(smollm2_dir):
    model, tok = load_model(smollm2_dir)
    ids = mx.array([tok.encode("Aye! Fair winds.")])
    hidden = backbone(model)(ids)
    logits = model.model.embed_tokens.as_linear(hidden)  # SmolLM2 ties its embeddings
    np.testing.assert_allclose(np.array(logits), np.array(model(ids)), atol=1e-4)


def test_short_reward_run_learns_and_scores_the_same_inside_a_loaded_model(smollm2_dir, tmp_path):
    train = run_on_pairs("samples/dpo/train.jsonl", tmp_path / "train.jsonl", 16)
    valid = run_on_pairs("samples/dpo/valid.jsonl", tmp_path / "valid.jsonl", 8)
    cfg = build_config(None, dict(model=str(smollm2_dir), data=str(train), valid=str(valid),
                                  out=str(tmp_path / "run"), iters=8, batch_size=2, lr=5e-4, lora_layers=4,
                                  max_seq_len=256, eval_every=0, save_every=0), cls=RewardConfig)
    events = []
    run = run_training(cfg, reward_task, on_event=events.append, cfg_cls=RewardConfig)
    vals = [e for e in events if e["event"] == "val"]
    assert vals[0]["val_loss"] == pytest.approx(0.6931, abs=1e-4)  # zero head at step 0
    assert vals[0]["val_reward_accuracy"] == 0.0
    # measured: see the report's numbers in the test output (-s)
    print(f"\nSmolLM2 reward model, 8 steps: val loss {vals[0]['val_loss']:.3f} -> {vals[-1]['val_loss']:.3f}, "
          f"accuracy {vals[0]['val_reward_accuracy']:.3f} -> {vals[-1]['val_reward_accuracy']:.3f}")
    assert vals[-1]["val_reward_accuracy"] >= 0.75, vals[-1]
    assert vals[-1]["val_loss"] < 0.6

    policy, tok = load_model(smollm2_dir)  # a caller's SmolLM2 with its own adapter (as GRPO's policy)
    attach_lora(policy, LoraSpec(rank=4, layers=2))
    shared = RewardModel.open(run, model=policy, tokenizer=tok)
    assert shared.shared
    s = score_file(shared, valid).summary()
    assert s["accuracy"] == pytest.approx(vals[-1]["val_reward_accuracy"])
    assert s["mean_margin"] == pytest.approx(vals[-1]["val_reward_margin"], rel=1e-3, abs=1e-3)
