"""SFT's answer-start weight (train/answer_start.py): which targets it weights, the loss it gives
(a weighted mean of the same log-probabilities; weight 1 is the plain loss), a tiny run where it
lifts the answers' first tokens faster than the same run without it, and every other mode
refusing it."""

import localtune  # noqa: F401
import numpy as np
import pytest

from localtune.config import TrainConfig, build_config
from localtune.errors import LocaltuneError


def test_the_first_tokens_of_every_answer_get_the_weight():
    from localtune.train.answer_start import answer_spans, start_weights

    # row 0: two turns (positions 3-6, then 9-10); row 1: one answer right after (positions 11-13)
    rows = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    positions = np.array([3, 4, 5, 6, 9, 10, 11, 12, 13])
    assert answer_spans(rows, positions) == [(0, 4), (4, 6), (6, 9)]
    assert start_weights(rows, positions, 3, 5.0).tolist() == [5, 5, 5, 1, 5, 5, 5, 5, 5]
    assert start_weights(rows, positions, 1, 4.0).tolist() == [4, 1, 1, 1, 4, 1, 4, 1, 1]
    assert start_weights(np.array([], int), np.array([], int), 3, 5.0).size == 0


def test_the_loss_is_the_weighted_mean_of_the_plain_log_probabilities(tiny_model_dir):
    from localtune.data.batching import collate
    from localtune.models.load import load_model
    from localtune.train.answer_start import start_weights
    from localtune.train.logits import target_logprobs
    from localtune.train.sft import sft_loss, sft_objective

    model, _ = load_model(tiny_model_dir)
    rng = np.random.default_rng(2)
    seqs = [(list(rng.integers(0, 20, n)), [0] * 4 + [1] * (n - 4)) for n in (12, 9, 15)]
    batch = collate(seqs, [0, 1, 2])
    logp = np.array(target_logprobs(model, batch))
    w = start_weights(np.array(batch.target_rows), np.array(batch.positions), 3, 8.0)
    expected = -(w * logp).sum() / w.sum()
    loss, ntokens, metrics = sft_objective(start_weight=8.0, start_tokens=3)(model, batch)
    assert abs(loss.item() - expected) < 1e-5 * abs(expected)
    assert ntokens.item() == logp.size  # a step is still weighted by its target tokens
    assert abs(metrics["nll"].item() - (-logp.mean())) < 1e-5  # the plain cross-entropy, reported
    # the first tokens here are likelier to be wrong than the rest, so weighting them moves the loss
    plain = sft_loss(model, batch)[0].item()
    assert abs(plain - metrics["nll"].item()) < 1e-5 and abs(loss.item() - plain) > 1e-3
    assert abs(sft_objective(start_weight=1.0)(model, batch)[0].item() - plain) < 1e-6
    # with the unlikelihood term too: the weighted cross-entropy plus alpha x the term
    both, _, m = sft_objective(alpha=2.0, start_weight=8.0, start_tokens=3)(model, batch)
    assert abs(both.item() - (expected + 2.0 * m["unlikelihood"].item())) < 1e-4 * abs(both.item())


def _first_token_logp(model, tokenizer, valid, tokens=3):
    """Mean log p of the validation answers' first `tokens` targets, and of the rest."""
    from localtune.data.batching import eval_batches
    from localtune.train.answer_start import start_weights
    from localtune.train.logits import target_logprobs
    from localtune.train.prepare import load_rows

    rows, _ = load_rows(str(valid), tokenizer, format=None, train_on_prompt=False, max_seq_len=512,
                        overlong="truncate", on_event=lambda e: None, role="valid")
    first, rest = [], []
    for b in eval_batches(rows, 4, -1):
        logp = np.array(target_logprobs(model, b))
        w = start_weights(np.array(b.target_rows), np.array(b.positions), tokens, 2.0)
        first += logp[w == 2.0].tolist()
        rest += logp[w == 1.0].tolist()
    return float(np.mean(first)), float(np.mean(rest))


def test_a_run_with_the_weight_learns_the_first_tokens_faster(tiny_config, tiny_model_dir, echo_rows, tmp_path):
    from localtune.lora import eval_mode, load_adapter
    from localtune.models.load import load_model
    from localtune.runs import read_metrics
    from localtune.train.session import run_training
    from localtune.train.sft import sft_task

    train, valid = echo_rows(tmp_path / "train.jsonl", 48, 0), echo_rows(tmp_path / "valid.jsonl", 12, 1)
    opts = dict(valid=str(valid), iters=8, batch_size=4, lr=3e-3, eval_every=8, save_every=8, warmup=2)
    weighted = run_training(tiny_config(tmp_path / "w", train, answer_start_weight=10.0, **opts), sft_task,
                            on_event=lambda e: None)
    plain = run_training(tiny_config(tmp_path / "p", train, **opts), sft_task, on_event=lambda e: None)

    vals = [m for m in read_metrics(weighted / "metrics.jsonl") if m.get("event") == "val"]
    assert "val_nll" in vals[-1] and vals[-1]["val_nll"] != vals[-1]["val_loss"]  # the plain loss reported too

    found = {}
    for name, run in (("weighted", weighted), ("plain", plain)):
        model, tokenizer = load_model(tiny_model_dir)
        with eval_mode(model):
            before = _first_token_logp(model, tokenizer, valid)
        load_adapter(model, run)
        with eval_mode(model):
            found[name] = _first_token_logp(model, tokenizer, valid)
    # "Aye" opens every answer: both runs learn it, the weighted one much further in 8 steps
    # (measured: log p -27.1 at the start -> -0.32 weighted, -3.9 plain). The price: these answers
    # are short, so the rest of each answer gets a smaller share of the loss and is learnt more
    # slowly in as many steps (-27.4 -> -9.9 weighted, -4.6 plain); it is still learnt.
    assert found["weighted"][0] > found["plain"][0] + 0.5, (before, found)
    assert found["plain"][0] > before[0], (before, found)
    assert found["weighted"][1] > before[1] + 5.0, (before, found)


@pytest.mark.parametrize("mode", ["dpo", "grpo", "reward", "dpo-online"])
def test_the_weight_is_sft_only_and_positive(mode):
    from localtune.config_dpo import DPOConfig, OnlineDPOConfig
    from localtune.config_grpo import GRPOConfig
    from localtune.config_reward import RewardConfig

    with pytest.raises(LocaltuneError, match="answer_start_weight must be"):
        build_config(None, dict(data="x.jsonl", answer_start_weight=0.0), cls=TrainConfig)
    with pytest.raises(LocaltuneError, match="answer_start_tokens must be"):
        build_config(None, dict(data="x.jsonl", answer_start_tokens=0), cls=TrainConfig)
    cls = {"dpo": DPOConfig, "grpo": GRPOConfig, "reward": RewardConfig, "dpo-online": OnlineDPOConfig}[mode]
    with pytest.raises(LocaltuneError, match="answer_start_weight"):
        build_config(None, dict(data="x.jsonl", answer_start_weight=4.0), cls=cls)
