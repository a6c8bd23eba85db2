"""--micro-batch: online RL's update differentiated a few answers at a time gives the loss, gradient
and metrics of the update over all answers at once (GRPO, Dr. GRPO, RLOO; online DPO by pairs),
with uneven answer lengths, an answer without a reward, and a micro-batch that does not divide the
answers; the no-gradient log-prob passes give the same numbers in parts; the flag is validated."""

from types import SimpleNamespace

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map

from localtune.cli import main
from localtune.config import build_config
from localtune.config_grpo import GRPOConfig
from localtune.errors import LocaltuneError
from localtune.lora import LoraSpec, attach_lora
from localtune.models import load_model
from localtune.train.grpo import GRPOLoss, assemble
from localtune.train.logits import target_logprobs, target_logprobs_by_rows
from localtune.train.loop import accumulate
from localtune.train.rollouts import Rollout

TOL = 1e-5
PROMPTS = [[1, 40, 41, 42, 2], [1, 50, 51, 2]]  # token ids of two prompts of different lengths
ANSWERS = [[60, 61, 62], [63], [64, 65, 66, 67, 68, 69, 70], [71, 72],  # group of prompt 0
           [73, 74, 75, 76, 77], [78, 79], [80], [81, 82, 83, 84, 85, 86, 87, 88, 89]]  # prompt 1
REWARDS = [1.0, 0.0, 0.5, None, 0.25, 1.0, 0.0, 0.75]  # answer 3 has no reward: not trained on


@pytest.fixture(scope="module")
def policy(flat_model_dir):
    """The tiny model with a LoRA adapter whose B is not zero (so every adapter weight has a gradient)."""
    model, _ = load_model(flat_model_dir)
    attach_lora(model, LoraSpec(rank=4, layers=-1))
    rng = np.random.default_rng(0)
    model.update(tree_map(lambda p: mx.array(rng.normal(0, 0.05, p.shape).astype(np.float32)),
                          model.trainable_parameters()))
    mx.eval(model.parameters())
    return model


def grpo_batch(model, algo):
    rollouts = [Rollout(k // 4, list(a), "", True, {}, r) for k, (a, r) in enumerate(zip(ANSWERS, REWARDS))]
    batch = assemble(rollouts, PROMPTS, 4, algo)
    logp = np.array(target_logprobs(model, batch, 0.8))
    noise = np.random.default_rng(1).normal(0, 0.3, logp.shape).astype(np.float32)
    batch.ref_logps = mx.array(logp - noise)  # a KL that is not 0
    batch.old_logps = mx.array(logp + noise)  # ratios away from 1: the clip is active on some tokens
    batch.stats = {"reward_mean": 0.5}
    return batch


def one_shot(model, loss_fn, batch):
    (loss, weight, metrics), grads = nn.value_and_grad(model, loss_fn)(model, batch)
    return grads, loss, weight, metrics


def assert_same(a, b):
    grads_a, loss_a, weight_a, metrics_a = a
    grads_b, loss_b, weight_b, metrics_b = b
    assert float(loss_a) == pytest.approx(float(loss_b), abs=TOL)
    assert float(weight_a) == pytest.approx(float(weight_b), abs=TOL)
    assert sorted(metrics_a) == sorted(metrics_b)
    for k in metrics_a:
        assert float(metrics_a[k]) == pytest.approx(float(metrics_b[k]), abs=TOL), k
    flat_a, flat_b = dict(tree_flatten(grads_a)), dict(tree_flatten(grads_b))
    assert flat_a.keys() == flat_b.keys() and flat_a
    biggest = max(float(mx.abs(g).max()) for g in flat_a.values())
    assert biggest > 1e-3  # a gradient that could differ
    for name in flat_a:
        assert np.allclose(np.array(flat_a[name]), np.array(flat_b[name]), atol=TOL, rtol=0), name


@pytest.mark.parametrize("algo", ["grpo", "dr-grpo", "rloo"])
@pytest.mark.parametrize("micro", [1, 3])
def test_micro_batched_update_equals_the_one_shot_update(policy, algo, micro):
    cfg = SimpleNamespace(algo=algo, temperature=0.8, kl_beta=0.04, clip_epsilon=0.2, max_completion=12)
    loss_fn = GRPOLoss(cfg)
    batch = grpo_batch(policy, algo)
    parts = batch.split(micro)
    assert [len(p.rows) for p in parts] == ([1] * 8 if micro == 1 else [3, 3, 2])
    whole = one_shot(policy, loss_fn, batch)
    assert float(whole[3]["clip_fraction"]) > 0 and float(whole[3]["kl"]) > 0
    grads, loss, weight, _, metrics = accumulate(nn.value_and_grad(policy, loss_fn), policy, [batch], micro)
    assert float(weight) == 7  # the answer without a reward is not counted
    assert_same(whole, (grads, loss, weight, metrics))


def test_micro_batches_with_gradient_accumulation_equal_one_shot_accumulation(policy):
    cfg = SimpleNamespace(algo="grpo", temperature=0.8, kl_beta=0.04, clip_epsilon=0.2, max_completion=12)
    loss_fn = GRPOLoss(cfg)
    lg = nn.value_and_grad(policy, loss_fn)
    batches = [grpo_batch(policy, "grpo"), grpo_batch(policy, "grpo")]
    batches[1].advantages = -batches[1].advantages  # another batch, another gradient
    g0, l0, w0, _, m0 = accumulate(lg, policy, batches, 0, summed=True)
    g3, l3, w3, _, m3 = accumulate(lg, policy, batches, 3, summed=True)
    assert_same((g0, l0, w0, m0), (g3, l3, w3, m3))


def test_a_batch_no_answer_of_which_is_trained_on_splits_into_zero_gradients(policy):
    cfg = SimpleNamespace(algo="grpo", temperature=0.8, kl_beta=0.0, clip_epsilon=0.2, max_completion=12)
    batch = grpo_batch(policy, "grpo")
    batch.valid = mx.zeros_like(batch.valid)
    batch.ref_logps = None
    grads, loss, weight, _, _ = accumulate(nn.value_and_grad(policy, GRPOLoss(cfg)), policy, [batch], 3)
    assert float(loss) == 0 and float(weight) == 1  # the one-shot loss's weight: never 0/0
    assert all(float(mx.abs(g).max()) == 0 for _, g in tree_flatten(grads))


def test_log_prob_passes_in_parts_give_the_same_numbers(policy):
    from localtune.train.reference import live_reference

    batch = grpo_batch(policy, "grpo")
    whole = np.array(target_logprobs(policy, batch, 0.8))
    for rows in (1, 3, 8):
        assert np.allclose(np.array(target_logprobs_by_rows(policy, batch, 0.8, rows)), whole, atol=1e-6)
    # the online DPO reference: per-row sums (the adapter switched off), 3 rows at a time
    assert np.allclose(np.array(live_reference(policy, batch, rows=3)), np.array(live_reference(policy, batch)),
                       atol=1e-5)


def test_online_dpo_micro_batches_of_pairs_equal_the_whole_batch(policy, tmp_path, flat_model_dir):
    from localtune.config_dpo import OnlineDPOConfig
    from localtune.train.online_dpo import OnlineDPOLoss, pair_batch

    rollouts = [Rollout(k // 2, list(a), "", True, {}, float(k % 3)) for k, a in enumerate(ANSWERS)]
    pairs = [(rollouts[i], rollouts[i + 1]) for i in range(0, 8, 2)]
    batch = pair_batch(pairs, PROMPTS * 2)
    from localtune.train.reference import live_reference

    batch.ref = live_reference(policy, batch)
    batch.stats = {"ties": 0.25}
    cfg = build_config(None, dict(model=str(flat_model_dir), data=str(tmp_path / "p.jsonl"), reward=("ifeval",),
                                  online=True, rpo_alpha=0.5), cls=OnlineDPOConfig)
    loss_fn = OnlineDPOLoss(cfg)
    parts = batch.split(3)  # 3 answers: one pair a part (a pair is never cut)
    assert [len(p.rows) for p in parts] == [1, 1, 1, 1]
    assert [p.ids.shape[0] for p in parts] == [2, 2, 2, 2]
    grads, loss, weight, _, metrics = accumulate(nn.value_and_grad(policy, loss_fn), policy, [batch], 3)
    assert float(weight) == 4
    assert float(metrics["chosen_nll"]) > 0  # with rpo_alpha: the chosen NLL, a mean over all chosen tokens
    assert_same(one_shot(policy, loss_fn, batch), (grads, loss, weight, metrics))


def test_the_micro_batch_flag_is_checked(tmp_path, flat_model_dir, capsys):
    opts = dict(model=str(flat_model_dir), data=str(tmp_path / "p.jsonl"), reward=("ifeval",))
    for bad in (0, -2):
        with pytest.raises(LocaltuneError, match="micro_batch must be >= 1"):
            build_config(None, {**opts, "micro_batch": bad}, cls=GRPOConfig)
    assert build_config(None, {**opts, "micro_batch": 4}, cls=GRPOConfig).micro_batch == 4
    assert main(["train", "grpo", "--model", opts["model"], "--prompts", opts["data"], "--reward", "ifeval",
                 "--micro-batch", "0"]) == 2
    assert "micro_batch must be >= 1" in capsys.readouterr().err
