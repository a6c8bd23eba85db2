"""SFT: next-token cross-entropy on the trained tokens only (a pure function), its batch builder,
and the TrainingTask that joins them (train/task.py)."""

from __future__ import annotations

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn

from localtune.data.batching import Batch
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
    """sft_loss plus `alpha` x the unlikelihood term (train/unlikelihood.py), both per target token.
    Metrics: `nll` (the cross-entropy alone, comparable with runs without the term) and
    `unlikelihood`."""
    import numpy as np

    from localtune.train.logits import target_and_token_logprobs
    from localtune.train.unlikelihood import candidate_mask, unlikelihood_sum

    def loss(model: nn.Module, batch: Batch):
        logp, others = target_and_token_logprobs(model, batch, batch.targets)
        mask = mx.array(candidate_mask(np.array(batch.targets), np.array(batch.target_rows)))
        ntokens = mx.array(logp.size, mx.float32)
        nll = -logp.sum() / mx.maximum(ntokens, 1)
        ul = unlikelihood_sum(others, mask) / mx.maximum(ntokens, 1)
        return nll + alpha * ul, ntokens, {"nll": nll, "unlikelihood": ul}

    return loss


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
    loss = sft_unlikelihood_loss(alpha) if alpha > 0 else sft_loss
    return TrainingTask("sft", loss, build_sft_data, weight_unit="tokens")
