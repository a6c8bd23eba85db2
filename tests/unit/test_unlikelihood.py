"""SFT's unlikelihood term (train/unlikelihood.py): which earlier tokens are candidates, the
log-probabilities it reads (fast CPU head and stock path agree with a full log-softmax, gradients
too), a packed batch gives what its rows give unpacked, a tiny run that still learns its task and
gives less probability to used tokens than the same run without the term, and every other mode
refuses it."""

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from localtune.config import TrainConfig, build_config
from localtune.errors import LocaltuneError


def test_candidates_are_earlier_distinct_other_tokens_of_the_same_answer():
    from localtune.train.unlikelihood import answers

    # row 0: two turns (positions 3-6, then 9-10); row 1: one answer right after (positions 11-12)
    targets = np.array([5, 6, 5, 7, 5, 6, 5, 5])
    rows = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    positions = np.array([3, 4, 5, 6, 9, 10, 11, 12])
    found = answers(targets, rows, positions)
    # the last answer (5, 5) has no candidate: its second 5 is the target, so it is left out
    assert [list(a.index) for a in found] == [[0, 1, 2, 3], [4, 5]]
    first = found[0]
    assert list(first.tokens) == [5, 6, 7]
    assert first.mask.tolist() == [[False, False, False],  # nothing before
                                   [True, False, False],  # 6 after 5: 5
                                   [False, True, False],  # 5 again: the target, so only 6
                                   [True, True, False]]  # 7: 5 (once) and 6
    # the second turn starts afresh: the first turn's 7 is no candidate
    assert list(found[1].tokens) == [5, 6] and found[1].mask.tolist() == [[False, False], [True, False]]


def test_unlikelihood_sum_is_minus_log_one_minus_p_over_the_mask():
    from localtune.train.unlikelihood import unlikelihood_sum

    logp = np.array([[np.log(0.5), np.log(0.2)], [np.log(0.9), 0.0], [-1e-3, -1e-3 * (1 + 1e-2)]], np.float32)
    mask = np.array([[True, False], [True, True], [True, True]])
    got = unlikelihood_sum(mx.array(logp), mx.array(mask)).item()
    # p = 1 is capped (log p <= -1e-4), not inf; near 1 it stays exact where 1 - p would not
    want = -(np.log(0.5) + np.log(0.1) + np.log(-np.expm1(-1e-4)) + np.log(-np.expm1(-1e-3))
             + np.log(-np.expm1(-1.01e-3)))
    assert abs(got - want) < 1e-4 * want


def _reference(model, batch, groups):
    """log p(target) and each group's (n, k) token log-probs from a full log-softmax."""
    logits = model(batch.ids[:, :-1]).reshape(-1, model.args.vocab_size)[batch.positions].astype(mx.float32)
    full = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    logp = mx.take_along_axis(full, batch.targets[:, None], axis=-1).squeeze(-1)
    return logp, [full[i][:, t] for i, t in groups]


def _groups(batch):
    from localtune.train.unlikelihood import answers

    found = answers(np.array(batch.targets), np.array(batch.target_rows), np.array(batch.positions))
    return [(mx.array(a.index), mx.array(a.tokens)) for a in found]


@pytest.mark.parametrize("fast", ["1", "0"])
def test_token_logprobs_equal_a_full_log_softmax_with_gradients(tiny_model_dir, monkeypatch, fast):
    from mlx.utils import tree_flatten

    from localtune.data.batching import collate
    from localtune.models.load import load_model
    from localtune.train.logits import target_and_token_logprobs

    monkeypatch.setenv("LOCALTUNE_FAST_MATH", fast)
    model, _ = load_model(tiny_model_dir)
    rng = np.random.default_rng(0)
    seqs = [(list(rng.integers(0, 200, n)), [0] * (n // 2) + [1] * (n - n // 2)) for n in (9, 14, 5)]
    batch = collate(seqs, [0, 1, 2])
    groups = _groups(batch)
    assert len(groups) == 3
    weights = [mx.array(rng.normal(size=(i.size, t.size)).astype(np.float32)) for i, t in groups]

    def scalar(fn):
        def f(m):
            logp, others = fn(m, batch, groups)
            return logp.sum() + sum((o * w).sum() for o, w in zip(others, weights))
        return f

    logp, others = target_and_token_logprobs(model, batch, groups)
    ref_logp, ref_others = _reference(model, batch, groups)
    assert mx.abs(logp - ref_logp).max().item() < 1e-4
    for o, r, (i, t) in zip(others, ref_others, groups):
        assert o.shape == (i.size, t.size) and mx.abs(o - r).max().item() < 1e-4
    g_ours = nn.value_and_grad(model, scalar(target_and_token_logprobs))(model)[1]
    ref = dict(tree_flatten(nn.value_and_grad(model, scalar(_reference))(model)[1]))
    for name, g in tree_flatten(g_ours):
        if "embed_tokens" in name:  # the fast head treats the (tied) head weight as frozen, as LoRA does
            continue
        scale = mx.abs(ref[name]).max().item() + 1e-6
        assert mx.abs(g - ref[name]).max().item() < 1e-3 * scale, name


def test_a_packed_batch_gives_the_same_term_as_its_rows_unpacked(tiny_model_dir):
    from localtune.data.batching import collate
    from localtune.data.packing import collate_packed
    from localtune.models.load import load_model
    from localtune.train.sft import sft_unlikelihood_loss

    model, _ = load_model(tiny_model_dir)
    rng = np.random.default_rng(1)
    seqs = [(list(rng.integers(0, 20, n)), [0] * 4 + [1] * (n - 4)) for n in (12, 9, 15)]
    loss = sft_unlikelihood_loss(2.0)
    unpacked = loss(model, collate(seqs, [0, 1, 2]))
    packed = loss(model, collate_packed(seqs, [[0, 1], [2]]))
    assert unpacked[2]["unlikelihood"].item() > 0.1  # small vocabulary: plenty of reused tokens
    for a, b in ((unpacked[0], packed[0]), (unpacked[2]["unlikelihood"], packed[2]["unlikelihood"])):
        assert abs(a.item() - b.item()) < 1e-4 * abs(a.item())


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
    with_term = run_training(tiny_config(tmp_path / "ul", train, unlikelihood=2.0, **opts), sft_task,
                             on_event=lambda e: None)
    without = run_training(tiny_config(tmp_path / "plain", train, **opts), sft_task, on_event=lambda e: None)

    vals = [m for m in read_metrics(with_term / "metrics.jsonl") if m.get("event") == "val"]
    assert vals[0]["val_nll"] - vals[-1]["val_nll"] > 1.0, vals  # it still learns the task
    assert abs(vals[-1]["val_loss"] - vals[-1]["val_nll"] - 2.0 * vals[-1]["val_unlikelihood"]) < 1e-4

    masses = {}
    for name, run in (("with", with_term), ("without", without)):
        model, tokenizer = load_model(tiny_model_dir)
        load_adapter(model, run)
        with eval_mode(model):
            masses[name] = _used_token_mass(model, tokenizer, valid)
    assert masses["with"] < 0.85 * masses["without"], masses  # measured 0.32 against 0.41


@pytest.mark.parametrize("mode", ["dpo", "grpo", "reward", "dpo-online"])
def test_the_term_is_sft_only_and_not_negative(mode):
    from localtune.config_dpo import DPOConfig, OnlineDPOConfig
    from localtune.config_grpo import GRPOConfig
    from localtune.config_reward import RewardConfig

    with pytest.raises(LocaltuneError, match="unlikelihood must be"):
        build_config(None, dict(data="x.jsonl", unlikelihood=-1.0), cls=TrainConfig)
    cls = {"dpo": DPOConfig, "grpo": GRPOConfig, "reward": RewardConfig, "dpo-online": OnlineDPOConfig}[mode]
    with pytest.raises(LocaltuneError, match="unlikelihood"):
        build_config(None, dict(data="x.jsonl", unlikelihood=0.5), cls=cls)
