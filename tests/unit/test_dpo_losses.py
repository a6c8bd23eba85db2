"""Each preference loss equals a plain-numpy transcription of its paper's formula (random log-probs),
plus the config checks that keep the knobs consistent."""

from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest

from localtune.config import build_config
from localtune.config_dpo import DPOConfig
from localtune.errors import LocaltuneError
from localtune.train.dpo import hinge_loss, ipo_loss, orpo_loss, sigmoid_loss, simpo_loss

TOL = 1e-6


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


@pytest.fixture()
def logps():
    """Per-sequence log-prob sums as a model produces them: negative, ~1-3 nats per token."""
    rng = np.random.default_rng(0)
    lc, lr = rng.integers(3, 40, 64).astype(np.float64), rng.integers(3, 40, 64).astype(np.float64)
    pc, pr = -lc * rng.uniform(0.2, 3, 64), -lr * rng.uniform(0.2, 3, 64)
    rc, rr = pc + rng.normal(0, 2, 64), pr + rng.normal(0, 2, 64)
    return dict(pc=pc, pr=pr, rc=rc, rr=rr, lc=lc, lr=lr)


def mlx_args(d, *keys):
    return [mx.array(d[k].astype(np.float32)) for k in keys]


def check(ours, expected):
    np.testing.assert_allclose(np.array(ours, np.float64), expected, rtol=0, atol=TOL)
    assert np.std(expected) > 1e-3  # the inputs exercise the formula, not one flat value


def test_sigmoid_dpo_with_label_smoothing(logps):
    # DPO (Rafailov et al. 2023, eq. 7):
    #   L = -log σ( β log π(y_w)/π_ref(y_w) − β log π(y_l)/π_ref(y_l) )
    # cDPO label smoothing ε: L_ε = (1−ε)·L(h) + ε·L(−h)
    d = {k: v.astype(np.float32).astype(np.float64) for k, v in logps.items()}
    for beta, eps in ((0.1, 0.0), (0.5, 0.2)):
        h = beta * (d["pc"] - d["rc"]) - beta * (d["pr"] - d["rr"])
        expected = -(1 - eps) * log_sigmoid(h) - eps * log_sigmoid(-h)
        check(sigmoid_loss(*mlx_args(logps, "pc", "pr", "rc", "rr"), beta, eps), expected)


def test_ipo(logps):
    # IPO (Azar et al. 2023, eq. 17), with length-averaged log-probs:
    #   h = (log π(y_w) − log π_ref(y_w))/|y_w| − (log π(y_l) − log π_ref(y_l))/|y_l|
    #   L = (h − 1/(2β))²
    d = {k: v.astype(np.float32).astype(np.float64) for k, v in logps.items()}
    beta = 1.0
    h = (d["pc"] - d["rc"]) / d["lc"] - (d["pr"] - d["rr"]) / d["lr"]
    expected = (h - 1 / (2 * beta)) ** 2
    check(ipo_loss(*mlx_args(logps, "pc", "pr", "rc", "rr", "lc", "lr"), beta), expected)


def test_hinge(logps):
    # Hinge (SLiC-HF, Zhao et al. 2023) on DPO's log-ratio difference:
    #   L = max(0, 1 − β·[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))])
    d = {k: v.astype(np.float32).astype(np.float64) for k, v in logps.items()}
    beta = 0.5
    h = (d["pc"] - d["rc"]) - (d["pr"] - d["rr"])
    expected = np.maximum(0.0, 1 - beta * h)
    assert (expected == 0).any() and (expected > 0).any()  # both sides of the hinge
    check(hinge_loss(*mlx_args(logps, "pc", "pr", "rc", "rr"), beta), expected)


def test_orpo(logps):
    # ORPO (Hong et al. 2024): L = L_SFT + λ·L_OR, with P(y|x) = exp(mean token log-prob)
    #   odds(y) = P / (1 − P);  L_OR = −log σ( log odds(y_w) − log odds(y_l) );  L_SFT = −mean log-prob of y_w
    d = {k: v.astype(np.float32).astype(np.float64) for k, v in logps.items()}
    lam = 0.1
    p_w, p_l = np.exp(d["pc"] / d["lc"]), np.exp(d["pr"] / d["lr"])
    log_odds_w, log_odds_l = np.log(p_w / (1 - p_w)), np.log(p_l / (1 - p_l))
    expected = -d["pc"] / d["lc"] + lam * -log_sigmoid(log_odds_w - log_odds_l)
    check(orpo_loss(*mlx_args(logps, "pc", "pr", "lc", "lr"), lam), expected)


def test_simpo(logps):
    # SimPO (Meng et al. 2024, eq. 6): L = −log σ( β/|y_w| log π(y_w) − β/|y_l| log π(y_l) − γ )
    d = {k: v.astype(np.float32).astype(np.float64) for k, v in logps.items()}
    beta, gamma = 2.0, 0.5
    expected = -log_sigmoid(beta / d["lc"] * d["pc"] - beta / d["lr"] * d["pr"] - gamma)
    check(simpo_loss(*mlx_args(logps, "pc", "pr", "lc", "lr"), beta, gamma), expected)


def test_dpo_config_layers_and_checks(tmp_path):
    y = tmp_path / "dpo.yaml"
    y.write_text("beta: 0.25\nloss: ipo\nref: live\nbatch_size: 2\n")
    cfg = build_config(y, {"beta": 0.3}, cls=DPOConfig)
    assert (cfg.beta, cfg.loss, cfg.ref, cfg.batch_size) == (0.3, "ipo", "live", 2)
    assert cfg.uses_reference and not cfg.replace(loss="simpo").uses_reference
    for bad, match in (({"loss": "kto"}, "loss must be one of"), ({"beta": 0}, "beta must be > 0"),
                       ({"label_smoothing": 0.1, "loss": "ipo"}, "sigmoid loss only"),
                       ({"ref": "twice"}, "ref must be one of"), ({"train_on_prompt": True}, "responses")):
        with pytest.raises(LocaltuneError, match=match):
            build_config(None, bad, cls=DPOConfig)
    y.write_text("beta: strong\n")
    with pytest.raises(LocaltuneError, match="beta must be a number"):
        build_config(y, cls=DPOConfig)


def test_sample_dpo_config_reads():
    root = Path(__file__).resolve().parents[2]
    cfg = build_config(root / "samples" / "dpo.yaml", cls=DPOConfig)
    assert (cfg.loss, cfg.ref, cfg.beta, cfg.adapter) == ("sigmoid", "cached", 0.1, None)
    assert (root / cfg.data).is_file() and (root / cfg.valid).is_file()
