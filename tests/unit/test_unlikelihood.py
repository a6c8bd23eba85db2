"""SFT's unlikelihood term (train/unlikelihood.py): which earlier tokens are candidates, the
log-probabilities it reads (fast CPU head and stock path agree with a full log-softmax), and a
tiny run in which the term falls and the model gives less probability to used tokens than the
same run without it."""

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from localtune.config import TrainConfig, build_config
from localtune.errors import LocaltuneError


def test_candidates_are_earlier_distinct_other_tokens_of_the_same_row():
    from localtune.train.unlikelihood import candidate_mask

    targets = np.array([5, 6, 5, 7, 5, 5])
    rows = np.array([0, 0, 0, 0, 1, 1])
    expected = np.zeros((6, 6), bool)
    expected[1, 0] = True  # 6 after 5: 5 is a candidate
    expected[2, 1] = True  # 5 again: 5 is the target, so only 6
    expected[3, [0, 1]] = True  # 7: 5 (once, at its first use) and 6
    # row 1 starts afresh; its second 5 is the target, so nothing
    assert (candidate_mask(targets, rows) == expected).all()


def test_unlikelihood_sum_is_minus_log_one_minus_p_over_the_mask():
    from localtune.train.unlikelihood import unlikelihood_sum

    p = np.array([[0.5, 0.2], [0.9, 1.0]], np.float32)
    mask = np.array([[True, False], [True, True]])
    got = unlikelihood_sum(mx.log(mx.array(p)), mx.array(mask)).item()
    want = -(np.log(1 - 0.5) + np.log(1 - 0.9) + np.log(1e-6))  # p = 1 is capped, not inf
    assert abs(got - want) < 1e-3 * want


@pytest.mark.parametrize("fast", ["1", "0"])
def test_token_logprobs_equal_a_full_log_softmax_with_gradients(tiny_model_dir, monkeypatch, fast):
    from localtune.data.batching import collate
    from localtune.models.load import load_model
    from localtune.train.logits import target_and_token_logprobs

    monkeypatch.setenv("LOCALTUNE_FAST_MATH", fast)
    model, _ = load_model(tiny_model_dir)
    rng = np.random.default_rng(0)
    seqs = [(list(rng.integers(0, 200, n)), [0] * (n // 2) + [1] * (n - n // 2)) for n in (9, 14, 5)]
    batch = collate(seqs, [0, 1, 2])
    weights = mx.array(rng.normal(size=(batch.targets.size, batch.targets.size)).astype(np.float32))

    def ours(m):
        logp, others = target_and_token_logprobs(m, batch, batch.targets)
        return logp.sum() + (others * weights).sum(), (logp, others)

    def reference(m):
        logits = m(batch.ids[:, :-1]).reshape(-1, m.args.vocab_size)[batch.positions].astype(mx.float32)
        full = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        logp = mx.take_along_axis(full, batch.targets[:, None], axis=-1).squeeze(-1)
        others = full[:, batch.targets]
        return logp.sum() + (others * weights).sum(), (logp, others)

    logp, others = ours(model)[1]
    ref_logp, ref_others = reference(model)[1]
    assert others.shape == (batch.targets.size, batch.targets.size)
    assert mx.abs(logp - ref_logp).max().item() < 1e-4
    assert mx.abs(others - ref_others).max().item() < 1e-4
    g_ours = nn.value_and_grad(model, lambda m: ours(m)[0])(model)[1]
    g_ref = nn.value_and_grad(model, lambda m: reference(m)[0])(model)[1]
    from mlx.utils import tree_flatten

    ref = dict(tree_flatten(g_ref))
    for name, g in tree_flatten(g_ours):
        if "embed_tokens" in name:  # the fast head treats the (tied) head weight as frozen, as LoRA does
            continue
        scale = mx.abs(ref[name]).max().item() + 1e-6
        assert mx.abs(g - ref[name]).max().item() < 1e-3 * scale, name


def _used_token_mass(model, tokenizer, valid):
    """Mean unlikelihood term of the validation rows under `model` (no gradient)."""
    from localtune.data.batching import eval_batches
    from localtune.train.prepare import load_rows
    from localtune.train.sft import sft_unlikelihood_loss

    rows, _ = load_rows(str(valid), tokenizer, format=None, train_on_prompt=False, max_seq_len=512,
                        overlong="truncate", on_event=lambda e: None, role="valid")
    loss = sft_unlikelihood_loss(1.0)
    values = [loss(model, b)[2]["unlikelihood"].item() for b in eval_batches(rows, 4, -1)]
    return float(np.mean(values))


def test_a_run_with_the_term_gives_less_probability_to_used_tokens(tiny_config, tiny_model_dir, echo_rows,
                                                                   tmp_path):
    from localtune.lora import eval_mode, load_adapter
    from localtune.models.load import load_model
    from localtune.runs import read_metrics
    from localtune.train.session import run_training
    from localtune.train.sft import sft_task

    train, valid = echo_rows(tmp_path / "train.jsonl", 48, 0), echo_rows(tmp_path / "valid.jsonl", 12, 1)
    opts = dict(valid=str(valid), iters=40, batch_size=4, lr=3e-3, eval_every=20, save_every=20, warmup=2)
    with_term = run_training(tiny_config(tmp_path / "ul", train, unlikelihood=1.0, **opts), sft_task,
                             on_event=lambda e: None)
    without = run_training(tiny_config(tmp_path / "plain", train, **opts), sft_task, on_event=lambda e: None)

    vals = [m for m in read_metrics(with_term / "metrics.jsonl") if m.get("event") == "val"]
    assert vals[0]["val_nll"] - vals[-1]["val_nll"] > 1.0, vals  # it still learns the task
    assert vals[-1]["val_unlikelihood"] < 0.5 * vals[0]["val_unlikelihood"], vals
    assert abs(vals[-1]["val_loss"] - vals[-1]["val_nll"] - vals[-1]["val_unlikelihood"]) < 1e-4

    masses = {}
    for name, run in (("with", with_term), ("without", without)):
        model, tokenizer = load_model(tiny_model_dir)
        load_adapter(model, run)
        with eval_mode(model):
            masses[name] = _used_token_mass(model, tokenizer, valid)
    assert masses["with"] < 0.85 * masses["without"], masses  # measured 0.32 against 0.41


@pytest.mark.parametrize("mode", ["dpo", "grpo"])
def test_the_term_is_sft_only_and_not_negative(tmp_path, mode):
    with pytest.raises(LocaltuneError, match="unlikelihood must be"):
        build_config(None, dict(data="x.jsonl", unlikelihood=-1.0), cls=TrainConfig)
    if mode == "dpo":
        from localtune.config_dpo import DPOConfig as cls
    else:
        from localtune.config_grpo import GRPOConfig as cls
    with pytest.raises(LocaltuneError, match="unlikelihood"):
        build_config(None, dict(data="x.jsonl", unlikelihood=0.5), cls=cls)
