"""The training loop on a tiny random llama: learns a toy task, gradient accumulation is exact,
and a run stopped and resumed from its checkpoint matches an unbroken run."""

import json

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.utils import load

from localtune.data.batching import BatchStream, collate
from localtune.lora import LoraSpec, adapter_weights, attach_lora
from localtune.train import checkpoint as ckpt
from localtune.train.loop import LoopSettings, LoopState, train
from localtune.train.sft import sft_loss


def toy_rows(n=32, seed=0):
    """Each row counts up from a random start (mod 40, offset 10): learnable from context.
    The first 3 tokens are 'prompt' (not trained), so the mask matters."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        start, length = int(rng.integers(0, 40)), int(rng.integers(8, 20))
        ids = [10 + (start + i) % 40 for i in range(length)]
        rows.append((ids, [False] * 3 + [True] * (length - 3)))
    return rows


def fresh_model(path, dropout=0.0, seed=0):
    mx.random.seed(seed)
    model, _ = load(str(path))
    attach_lora(model, LoraSpec(rank=4, alpha=8, layers=-1, dropout=dropout))
    mx.eval(model.parameters())
    return model


def collect(events):
    return lambda e: events.append(e)


def test_loss_falls_on_a_learnable_task(tiny_model_dir):
    model = fresh_model(tiny_model_dir)
    rows = toy_rows()
    stream = BatchStream(rows, 4, seed=0)
    events = []
    settings = LoopSettings(iters=60, report_every=1)
    train(model, optim.Adam(learning_rate=1e-2), sft_loss, stream.next, settings, LoopState(),
          on_event=collect(events))
    losses = [e["train_loss"] for e in events if e["event"] == "train"]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < first - 1.0, (first, last)  # measured: ~4.4 -> ~1.6 nats


def test_grad_accumulation_equals_the_big_batch(tiny_model_dir):
    rows = toy_rows(8, seed=3)  # different lengths: the micro-batches pad differently
    big, small = fresh_model(tiny_model_dir), fresh_model(tiny_model_dir)
    order_big = iter([collate(rows, list(range(8)))])
    order_small = iter([collate(rows, [0, 1, 2, 3]), collate(rows, [4, 5, 6, 7])])
    ev_big, ev_small = [], []
    train(big, optim.SGD(learning_rate=0.5), sft_loss, lambda: next(order_big),
          LoopSettings(iters=1, report_every=1), LoopState(), on_event=collect(ev_big))
    train(small, optim.SGD(learning_rate=0.5), sft_loss, lambda: next(order_small),
          LoopSettings(iters=1, grad_accum=2, report_every=1), LoopState(), on_event=collect(ev_small))
    assert abs(ev_big[0]["train_loss"] - ev_small[0]["train_loss"]) < 1e-5
    wb, ws = adapter_weights(big), adapter_weights(small)
    moved = max(float(mx.abs(wb[k] - adapter_weights(fresh_model(tiny_model_dir))[k]).max()) for k in wb)
    assert moved > 1e-3  # the step did something
    for k in wb:
        np.testing.assert_allclose(np.array(wb[k]), np.array(ws[k]), atol=1e-5)


def test_token_weighting_gives_every_token_of_an_epoch_the_same_weight(tiny_model_dir):
    # Two batches of very different sizes. With targets_per_step = mean targets per step, two
    # small SGD steps apply the gradient of (sum of every token's loss) / that mean: a token of the
    # short batch weighs what a token of the long one does. A per-batch mean (the default off)
    # gives each token of the short batch several times the weight.
    rows = toy_rows(40, seed=5)
    short = [r for r in rows if len(r[0]) <= 10][:1]
    long_ = [r for r in rows if len(r[0]) >= 17][:4]
    rows = short + long_
    batches = [collate(rows, [0]), collate(rows, [1, 2, 3, 4])]
    per_step = sum(b.targets.size for b in batches) / 2
    lr = 1e-3  # small: the second gradient is taken almost where the first was

    def run(weighted):
        model = fresh_model(tiny_model_dir)
        it = iter(batches)
        train(model, optim.SGD(learning_rate=lr), sft_loss, lambda: next(it),
              LoopSettings(iters=2, targets_per_step=per_step if weighted else None), LoopState())
        return adapter_weights(model)

    start = fresh_model(tiny_model_dir)
    w0 = adapter_weights(start)

    def token_sum(model, b):
        return sft_loss(model, b)[0] * b.targets.size

    grads = [dict(tree_flatten(nn.value_and_grad(start, token_sum)(start, b)[1])) for b in batches]
    expect = {k: np.array(grads[0][k] + grads[1][k]) / per_step for k in w0}

    def error(w):
        return max(np.abs(np.array(w0[k] - w[k]) / lr - expect[k]).max() / np.abs(expect[k]).max()
                   for k in w0 if np.abs(expect[k]).max() > 0)

    assert error(run(True)) < 0.02
    assert error(run(False)) > 0.2


def test_resume_matches_an_unbroken_run(tiny_model_dir, tmp_path):
    rows = toy_rows(20)
    spec = LoraSpec(rank=4, alpha=8, layers=-1, dropout=0.1)  # dropout: RNG must replay too

    def run(iters, stop_at=None, run_dir=None, resume=False):
        model = fresh_model(tiny_model_dir, dropout=0.1)
        opt = optim.AdamW(learning_rate=optim.cosine_decay(5e-3, 12))
        stream = BatchStream(rows, 3, seed=7)  # 7 batches per epoch: crosses an epoch
        state = LoopState()
        if resume:
            state, position = ckpt.load_checkpoint(ckpt.latest_checkpoint(run_dir), model, opt)
            stream.seek(position)
        events = []

        def save(s):
            ckpt.save_checkpoint(run_dir, model, opt, s, spec, data_position=stream.position, keep=2)

        outcome = train(model, opt, sft_loss, stream.next, LoopSettings(iters=iters, report_every=1, seed=5),
                        state, on_event=collect(events), save_checkpoint=save,
                        should_stop=lambda: stop_at is not None and state.step >= stop_at)
        losses = {e["step"]: e["train_loss"] for e in events if e["event"] == "train"}
        return outcome, losses, adapter_weights(model)

    _, unbroken, w_unbroken = run(12, run_dir=tmp_path / "a")
    outcome, first_half, _ = run(12, stop_at=5, run_dir=tmp_path / "b")
    assert outcome == "stopped"
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "b")] == ["step-000005"]
    _, second_half, w_resumed = run(12, run_dir=tmp_path / "b", resume=True)
    assert sorted(second_half) == list(range(6, 13))
    for step in range(1, 6):
        assert first_half[step] == unbroken[step]
    for step in range(6, 13):
        assert second_half[step] == unbroken[step], step  # bit-identical
    for k in w_unbroken:
        assert mx.array_equal(w_unbroken[k], w_resumed[k]), k


def test_grad_checkpointing_gives_the_same_training(tiny_model_dir):
    from localtune.train.memory import enable_grad_checkpoint

    rows = toy_rows(12, seed=4)
    results = []
    for checkpointed in (False, True):
        model = fresh_model(tiny_model_dir)
        if checkpointed:
            enable_grad_checkpoint(model.layers)
            assert type(model.layers[0]).__name__ == "TransformerBlock"  # names kept: adapters stay compatible
        stream = BatchStream(rows, 4, seed=0)
        events = []
        train(model, optim.Adam(learning_rate=1e-2), sft_loss, stream.next, LoopSettings(iters=4, report_every=1),
              LoopState(), on_event=collect(events))
        results.append(([e["train_loss"] for e in events], adapter_weights(model)))
    (loss_a, w_a), (loss_b, w_b) = results
    np.testing.assert_allclose(loss_a, loss_b, atol=1e-5)
    for k in w_a:
        np.testing.assert_allclose(np.array(w_a[k]), np.array(w_b[k]), atol=1e-5)
    # Another model of the same class in the process is untouched by the per-instance patch.
    other = fresh_model(tiny_model_dir)
    assert not getattr(type(other.layers[0]), "_localtune_checkpointed", False)


def test_iters_from_epochs():
    from localtune.config import TrainConfig
    from localtune.train.session import iters_for

    assert iters_for(TrainConfig(iters=7), 100) == 7
    assert iters_for(TrainConfig(), 30) == 30  # one epoch by default
    assert iters_for(TrainConfig(epochs=2.5, grad_accum=2), 30) == 38  # ceil(2.5 * 30 / 2)


@pytest.mark.parametrize("tied", [True, False])
def test_target_only_logits_equal_the_full_computation(tmp_path, tied):
    """The loss from logits at target positions only == masked cross-entropy over full logits."""
    import mlx.nn as nn
    from tiny import make_tiny_model_dir

    path = make_tiny_model_dir(tmp_path / "m", seed=2)
    if not tied:  # an untied head: give the model its own lm_head
        cfg = json.loads((path / "config.json").read_text())
        cfg["tie_word_embeddings"] = False
        (path / "config.json").write_text(json.dumps(cfg))
        w = dict(mx.load(str(path / "model.safetensors")))
        w["lm_head.weight"] = mx.random.normal(w["model.embed_tokens.weight"].shape) * 0.1
        mx.save_safetensors(str(path / "model.safetensors"), w)
    model = fresh_model(path)
    batch = collate(toy_rows(6, seed=9), list(range(6)))
    loss, ntok, _ = sft_loss(model, batch)
    logits = model(batch.ids[:, :-1]).astype(mx.float32)
    mask = batch.mask[:, 1:].astype(mx.float32)
    full = (nn.losses.cross_entropy(logits, batch.ids[:, 1:]) * mask).sum() / mask.sum()
    assert float(ntok) == float(mask.sum())
    assert abs(float(loss) - float(full)) < 1e-5
    g_fast = nn.value_and_grad(model, lambda m, b: sft_loss(m, b)[0])(model, batch)[1]
    g_full = nn.value_and_grad(model, lambda m, b: (nn.losses.cross_entropy(
        m(b.ids[:, :-1]).astype(mx.float32), b.ids[:, 1:]) * mask).sum() / mask.sum())(model, batch)[1]
    from mlx.utils import tree_flatten

    for (k, a), (_, b) in zip(tree_flatten(g_fast), tree_flatten(g_full)):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-5, err_msg=k)


def test_per_sequence_logprob_sums_equal_the_full_computation(tiny_model_dir):
    import mlx.nn as nn

    from localtune.train.reference import sequence_logps

    model = fresh_model(tiny_model_dir)
    batch = collate(toy_rows(5, seed=11), list(range(5)))
    sums, counts = sequence_logps(model, batch)
    logits = model(batch.ids[:, :-1]).astype(mx.float32)
    mask = batch.mask[:, 1:].astype(mx.float32)
    full = (-nn.losses.cross_entropy(logits, batch.ids[:, 1:]) * mask).sum(axis=1)
    np.testing.assert_allclose(np.array(sums), np.array(full), atol=1e-4)
    np.testing.assert_array_equal(np.array(counts), np.array(mask.sum(axis=1)))
