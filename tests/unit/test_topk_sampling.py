"""The top-k sampler keeps exactly the tokens mlx_lm's filters keep, with their probabilities, and
draws from them in proportion."""

import math

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p

from localtune.generate import Sampling, make_sampler
from localtune.topk_sampling import top_k_candidates


def mlx_lm_filtered(logprobs, top_k, top_p, min_p):
    if top_p < 1:
        logprobs = apply_top_p(logprobs, top_p)
    if min_p > 0:
        logprobs = apply_min_p(logprobs, min_p)
    return apply_top_k(logprobs, top_k)


def scattered(ids, values, vocab):
    out = np.full((ids.shape[0], vocab), -np.inf, dtype=np.float32)
    np.put_along_axis(out, np.array(ids), np.array(values), axis=-1)
    return out


@pytest.mark.parametrize("top_k,top_p,min_p", [(20, 1.0, 0.0), (20, 0.95, 0.0), (50, 0.5, 0.0),
                                               (5, 0.99, 0.0), (40, 1.0, 0.1), (30, 0.9, 0.05),
                                               (1, 0.9, 0.0)])
@pytest.mark.parametrize("normalised", [True, False])
def test_kept_tokens_and_values_equal_mlx_lm_filters(top_k, top_p, min_p, normalised):
    # normalised: float32 log-probs as mlx_lm hands them to a sampler (total mass taken as 1);
    # not: what a logits processor leaves, the mass summed.
    rng = np.random.default_rng(top_k)
    # Peaked rows (a few likely tokens, as a model's are) and one flat row.
    logits = rng.standard_normal((4, 3000)).astype(np.float32) * np.array([[6.0], [3.0], [1.0], [0.2]],
                                                                          dtype=np.float32)
    lp = mx.array(logits)
    lp = lp - mx.logsumexp(lp, axis=-1, keepdims=True)
    if not normalised:  # what a logits processor such as the repetition penalty leaves
        lp = lp + 0.7
    ids, values = top_k_candidates(lp, top_k, top_p, min_p, total_mass=None if not normalised else 1.0)
    ours = scattered(ids, values, lp.shape[-1])
    theirs = np.array(mlx_lm_filtered(lp, top_k, top_p, min_p))
    assert (np.isfinite(ours) == np.isfinite(theirs)).all()
    kept = np.isfinite(theirs)
    assert kept.sum(axis=-1).min() >= 1 and kept.sum(axis=-1).max() <= top_k
    np.testing.assert_array_equal(ours[kept], theirs[kept])
    for row in np.array(values):  # best first: the kept ones lead, in falling order
        finite = row[np.isfinite(row)]
        assert np.isfinite(row[:len(finite)]).all() and (np.diff(finite) <= 0).all()


def test_top_p_that_keeps_fewer_than_k_tokens_is_applied():
    lp = mx.log(mx.array([[0.5, 0.3, 0.1, 0.05, 0.05]]))
    ids, values = top_k_candidates(lp, 4, top_p=0.7)
    assert np.array(ids)[0, :2].tolist() == [0, 1]
    assert np.isfinite(np.array(values)).sum() == 2  # 0.5 + 0.3 reach 0.7


def test_draws_follow_the_kept_probabilities():
    probs = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.05])
    lp = mx.array(np.log(probs)[None].repeat(4000, axis=0).astype(np.float32))
    sample = make_sampler(Sampling(temperature=1.0, top_k=4, top_p=0.95, seed=3))
    tokens = np.array(sample(lp))
    assert set(np.unique(tokens)) <= {0, 1, 2, 3}
    expected = probs[:4] / probs[:4].sum()
    observed = np.bincount(tokens, minlength=6)[:4] / len(tokens)
    assert np.abs(observed - expected).max() < 0.03
    again = make_sampler(Sampling(temperature=1.0, top_k=4, top_p=0.95, seed=3))
    assert np.array_equal(np.array(again(lp)), tokens)  # the seed decides the draw


def test_temperature_sharpens_the_draw_among_candidates():
    lp = mx.array(np.log(np.array([[0.6, 0.4, 1e-9]] * 4000)).astype(np.float32))
    cold = np.array(make_sampler(Sampling(temperature=0.25, top_k=2, seed=1))(lp))
    share = (cold == 0).mean()
    expected = 0.6 ** 4 / (0.6 ** 4 + 0.4 ** 4)
    assert abs(share - expected) < 0.03 and math.isclose(expected, 0.835, abs_tol=0.001)


@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
def test_the_sampler_keeps_mlx_lm_tokens_in_half_precision(dtype):
    """In bf16/fp16 normalised rows do not sum to 1; the sampler measures the mass as mlx_lm does."""
    from localtune.topk_sampling import draw_top_k

    rng = np.random.default_rng(5)
    logits = mx.array((rng.standard_normal((256, 20000)) * rng.uniform(0.5, 6, (256, 1))).astype(np.float32))
    lp = (logits - mx.logsumexp(logits, axis=-1, keepdims=True)).astype(dtype)
    theirs = np.isfinite(np.array(mlx_lm_filtered(lp, 20, 0.95, 0.0).astype(mx.float32)))
    ids, values = top_k_candidates(lp, 20, 0.95, total_mass=None)
    ours = np.isfinite(scattered(ids, values.astype(mx.float32), lp.shape[-1]))
    assert (ours == theirs).all()
    drawn = np.array(draw_top_k(lp, 20, 0.95, 0.0, 1.0, mx.random.key(0)))
    assert theirs[np.arange(256), drawn].all()  # every draw is a token mlx_lm would keep


def test_tokens_tied_at_the_top_p_cut_are_all_kept_as_mlx_lm_keeps_them():
    lp = mx.log(mx.array([[0.25, 0.25, 0.25, 0.25] + [1e-9] * 8]))
    ids, values = top_k_candidates(lp, 6, top_p=0.5)
    theirs = np.array(mlx_lm_filtered(lp, 6, 0.5, 0.0))
    assert np.isfinite(theirs).sum() == 4
    np.testing.assert_array_equal(np.isfinite(scattered(ids, values, 12)), np.isfinite(theirs))
