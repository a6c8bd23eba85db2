"""The SFT loss: next-token cross-entropy on the trained tokens only, as a pure function."""

from __future__ import annotations

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn

from localtune.data.batching import Batch
from localtune.train.logits import target_logprobs


def sft_loss(model: nn.Module, batch: Batch):
    """Mean cross-entropy over target tokens. Returns (loss, ntokens, metrics).

    mask[:, i] marks token i as a target, predicted from tokens < i; padding is never a target.
    Logits are computed at the target positions only (see train/logits.py).
    """
    logp = target_logprobs(model, batch)
    ntokens = mx.array(logp.size, mx.float32)
    return -logp.sum() / mx.maximum(ntokens, 1), ntokens, {}


def sft_task(cfg):
    """The SFT Task for train.session: rows from the data files, the loss above."""
    from localtune.data.batching import BatchStream, eval_batches
    from localtune.data.hub import VALID_SPLITS, resolve_dataset
    from localtune.data.packing import PackedStream
    from localtune.train.prepare import load_rows
    from localtune.train.session import Task

    def make_train(model, tokenizer, cfg, run_dir, emit):
        opts = dict(format=cfg.format, train_on_prompt=cfg.train_on_prompt,
                    max_seq_len=cfg.max_seq_len, overlong=cfg.overlong, on_event=emit,
                    columns=getattr(cfg, "columns", None))
        data = resolve_dataset(cfg.data, split="train", on_event=emit)  # a hub id -> a local file
        rows, _ = load_rows(data, tokenizer, role="train", **opts)
        stream = (PackedStream(rows, cfg.batch_size, cfg.seed, capacity=cfg.max_seq_len) if cfg.pack
                  else BatchStream(rows, cfg.batch_size, cfg.seed))
        valid, extra = None, {"train_rows": len(rows)}
        if cfg.valid:
            vdata = resolve_dataset(cfg.valid, split=VALID_SPLITS, on_event=emit)
            vrows, _ = load_rows(vdata, tokenizer, role="valid", **opts)
            valid = lambda: eval_batches(vrows, cfg.batch_size, cfg.val_batches)  # noqa: E731
            extra["valid_rows"] = len(vrows)
        return stream, valid, extra

    return Task("sft", sft_loss, make_train)
