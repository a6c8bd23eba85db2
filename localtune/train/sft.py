"""SFT: next-token cross-entropy on the trained tokens only (a pure function; with --unlikelihood
plus the term of train/unlikelihood.py, with --answer-start-weight each answer's first tokens
weighted as in train/answer_start.py), its batch builder, and the TrainingTask that joins them
(train/task.py)."""

from __future__ import annotations

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn

from localtune.data.batching import Batch
from localtune.events import Metric
from localtune.train.logits import target_logprobs
from localtune.train.task import TaskContext, TaskData, TrainingTask


def sft_loss(model: nn.Module, batch: Batch):
    """Mean cross-entropy over target tokens. Returns (loss, ntokens, metrics).

    mask[:, i] marks token i as a target, predicted from tokens < i; padding is never a target.
    Logits are computed at the target positions only (see train/logits.py).
    """
    logp = target_logprobs(model, batch)
    ntokens = mx.array(logp.size, mx.float32)
    return -logp.sum() / mx.maximum(ntokens, 1), ntokens, {}


def sft_unlikelihood_loss(alpha: float):
    """sft_loss plus `alpha` x the unlikelihood term (train/unlikelihood.py), both per target token."""
    return sft_objective(alpha=alpha)


def sft_objective(alpha: float = 0.0, start_weight: float = 1.0, start_tokens: int = 3):
    """The SFT loss with its optional terms, per target token: the cross-entropy, each answer's first
    `start_tokens` targets weighted `start_weight` (train/answer_start.py; a weighted mean, so the
    loss keeps its scale), plus `alpha` x the unlikelihood term (train/unlikelihood.py). Metrics:
    `nll` (the plain mean cross-entropy, comparable with runs without the terms) and, with alpha,
    `unlikelihood` (the term, unweighted)."""
    import numpy as np

    from localtune.train.answer_start import start_weights
    from localtune.train.logits import target_and_token_logprobs
    from localtune.train.unlikelihood import answers, unlikelihood_sum

    def loss(model: nn.Module, batch: Batch):
        found = []
        if alpha > 0:
            found = answers(np.array(batch.targets), np.array(batch.target_rows), np.array(batch.positions))
            groups = [(mx.array(a.index), mx.array(a.tokens)) for a in found]
            logp, others = target_and_token_logprobs(model, batch, groups)
        else:
            logp = target_logprobs(model, batch)
        ntokens = mx.array(logp.size, mx.float32)
        nll = -logp.sum() / mx.maximum(ntokens, 1)
        objective, metrics = nll, {"nll": nll}
        if start_weight != 1.0:
            w = mx.array(start_weights(np.array(batch.target_rows), np.array(batch.positions), start_tokens,
                                       start_weight))
            objective = -(w * logp).sum() / mx.maximum(w.sum(), 1e-6)
        if alpha > 0:
            ul = sum((unlikelihood_sum(o, mx.array(a.mask)) for o, a in zip(others, found)), mx.array(0.0))
            ul = ul / mx.maximum(ntokens, 1)
            objective = objective + alpha * ul
            metrics["unlikelihood"] = ul
        return objective, ntokens, metrics

    return loss


# Reported by a run with --unlikelihood or --answer-start-weight: val_loss is then the whole
# objective; the cross-entropy alone is what compares with other runs and tools.
NLL_METRICS = (
    Metric("nll", "NLL", plot="loss", fmt=".3f", summary=True),
    Metric("val_nll", "val NLL", plot="loss", fmt=".3f", summary=True, card=True, final=True, better="lower"))
UNLIKELIHOOD_METRICS = NLL_METRICS + (
    Metric("val_unlikelihood", "val unlikelihood", fmt=".3f", card=True, better="lower"),)


def build_sft_data(ctx: TaskContext) -> TaskData:
    """Token rows from the data files; batches bucketed by length, or packed (--pack)."""
    from localtune.data.batching import BatchStream, eval_batches
    from localtune.data.packing import PackedStream
    from localtune.train.prepare import load_rows

    cfg = ctx.cfg
    opts = dict(format=cfg.format, train_on_prompt=cfg.train_on_prompt, max_seq_len=cfg.max_seq_len,
                overlong=cfg.overlong, on_event=ctx.emit, columns=cfg.columns)
    rows, _ = load_rows(ctx.files["train"], ctx.tokenizer, role="train", **opts)
    stream = (PackedStream(rows, cfg.batch_size, cfg.seed, capacity=cfg.max_seq_len, shard=ctx.shard)
              if cfg.pack else BatchStream(rows, cfg.batch_size, cfg.seed, shard=ctx.shard))
    data = TaskData(stream, record={"train_rows": len(rows)})
    if "valid" in ctx.files:
        vrows, _ = load_rows(ctx.files["valid"], ctx.tokenizer, role="valid", **opts)
        data.valid = lambda: eval_batches(vrows, cfg.batch_size, cfg.val_batches)
        data.record["valid_rows"] = len(vrows)
    return data


def sft_task(cfg) -> TrainingTask:
    """SFT: rows from the data files, the loss above, weighted by target tokens."""
    alpha = getattr(cfg, "unlikelihood", 0.0)
    start_weight = getattr(cfg, "answer_start_weight", 1.0)
    if alpha > 0 or start_weight != 1.0:
        loss = sft_objective(alpha, start_weight, getattr(cfg, "answer_start_tokens", 3))
        return TrainingTask("sft", loss, build_sft_data, weight_unit="tokens",
                            metrics=UNLIKELIHOOD_METRICS if alpha > 0 else NLL_METRICS)
    return TrainingTask("sft", sft_loss, build_sft_data, weight_unit="tokens")
