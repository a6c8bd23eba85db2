"""GRPO's pure pieces against numpy transcriptions of the papers' formulas: the group advantages of
GRPO, Dr. GRPO and RLOO (answers without a reward left out), the clipped per-token objective and
its k3 KL, and the two ways of averaging tokens into the batch loss."""

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest

from localtune.train.grpo import aggregate, group_advantages, token_objective


def numpy_advantages(rewards, valid, g, algo, eps=1e-4):
    """Straight from the definitions, one group and one answer at a time."""
    out = np.zeros(len(rewards))
    for start in range(0, len(rewards), g):
        idx = [i for i in range(start, start + g) if valid[i]]
        if len(idx) < 2:
            continue
        r = np.array([rewards[i] for i in idx], np.float64)
        for k, i in enumerate(idx):
            if algo == "grpo":  # DeepSeekMath: (r - mean) / std; TRL's std is the sample std
                out[i] = (r[k] - r.mean()) / (r.std(ddof=1) + eps)
            elif algo == "dr-grpo":  # Dr. GRPO: no std
                out[i] = r[k] - r.mean()
            else:  # RLOO: the baseline is the mean of the *other* answers
                out[i] = r[k] - np.delete(r, k).mean()
    return out


@pytest.mark.parametrize("algo", ["grpo", "dr-grpo", "rloo"])
def test_group_advantages_equal_the_numpy_transcription(algo):
    rng = np.random.default_rng(0)
    g = 6
    rewards = rng.normal(size=8 * g) * rng.uniform(0.1, 3)
    rewards[:g] = 0.5  # a group where everyone ties: nothing to learn
    valid = rng.random(8 * g) > 0.2
    valid[g:2 * g] = [True] + [False] * (g - 1)  # one answer with a reward: nothing to compare
    rewards[~valid] = np.nan  # how a missing reward may arrive
    got = np.array(group_advantages(mx.array(rewards.astype(np.float32)), mx.array(valid), g, algo))
    want = numpy_advantages(rewards, valid, g, algo)
    assert np.allclose(got, want, atol=1e-6, rtol=0), np.abs(got - want).max()
    assert np.all(got[:2 * g] == 0) and np.all(got[~valid] == 0)
    assert np.isfinite(got).all()


def test_rloo_is_a_scaled_dr_grpo_and_grpo_has_unit_spread():
    r = mx.array([1.0, 0.0, 0.0, 1.0, 0.25, 0.5, 0.75, 1.0])
    v = mx.ones(8)
    dr, rloo, grpo = (np.array(group_advantages(r, v, 4, a)) for a in ("dr-grpo", "rloo", "grpo"))
    assert np.allclose(rloo, dr * 4 / 3, atol=1e-7)
    assert np.allclose(grpo.reshape(2, 4).std(axis=1, ddof=1), 1.0, atol=1e-3)


def test_the_clipped_objective_and_the_k3_kl_match_numpy():
    rng = np.random.default_rng(1)
    n = 200
    logp = rng.normal(-2, 1, n).astype(np.float32)
    old = (logp + rng.normal(0, 0.3, n)).astype(np.float32)
    ref = (logp + rng.normal(0, 0.5, n)).astype(np.float32)
    adv = rng.normal(0, 1, n).astype(np.float32)
    eps, beta = 0.2, 0.1
    loss, clipped, kl = token_objective(mx.array(logp), mx.array(old), mx.array(ref), mx.array(adv), beta, eps)
    ratio = np.exp(logp.astype(np.float64) - old)
    pg = -np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv)
    k3 = np.exp(ref - logp.astype(np.float64)) - (ref - logp) - 1
    assert np.allclose(np.array(kl), k3, atol=1e-5) and (k3 >= 0).all()
    assert np.allclose(np.array(loss), pg + beta * k3, atol=1e-5)
    want_clip = ((ratio < 1 - eps) & (adv < 0)) | ((ratio > 1 + eps) & (adv > 0))
    assert want_clip.any() and np.array_equal(np.array(clipped), want_clip)


def test_with_one_update_per_batch_the_ratio_is_one_and_the_gradient_is_the_advantage():
    logp = mx.array([-1.0, -2.0, -0.5])
    adv = mx.array([1.0, -2.0, 0.5])

    def f(x):
        loss, clipped, kl = token_objective(x, mx.stop_gradient(x), None, adv, 0.0, 0.2)
        assert kl is None and not bool(clipped.any())
        return loss.sum()

    value, grad = mx.value_and_grad(f)(logp)
    assert float(value) == pytest.approx(-float(adv.sum()))
    assert np.allclose(np.array(grad), -np.array(adv))  # REINFORCE: d loss / d logp = -A
    _, _, kl = token_objective(logp, logp, logp, adv, 0.04, 0.2)
    assert np.array(kl).tolist() == [0.0, 0.0, 0.0]  # policy == reference: no KL


def test_token_losses_become_the_batch_loss_per_answer_or_over_a_fixed_length():
    rows = mx.array([0, 0, 0, 1, 2, 2])  # answer 0 has 3 tokens, 1 has 1, 2 has 2
    tok = mx.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    keep = mx.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])  # answer 2 is not trained on
    loss, n = aggregate(tok, keep, rows, 3, "grpo", max_completion=10)
    assert float(n) == 2 and float(loss) == pytest.approx((2.0 + 4.0) / 2)  # mean of per-answer means
    loss, n = aggregate(tok, keep, rows, 3, "dr-grpo", max_completion=10)
    assert float(n) == 2 and float(loss) == pytest.approx((1 + 2 + 3 + 4) / (2 * 10))
    _, n = aggregate(tok, mx.zeros(6), rows, 3, "grpo", max_completion=10)
    assert float(n) == 1  # nothing trained on: a weight the loop can still divide by
