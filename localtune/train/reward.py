"""Reward models (the "reward model" of RLHF): the base with LoRA plus a scalar value head on the
final hidden state of each sequence's last real token (reward/head.py), trained on preference
pairs with the Bradley-Terry loss. Chosen and rejected go through ONE forward pass: the pair
batches are DPO's (train/dpo.py PairBatch/PairStream); the head is a ModelPart (train/task.py), so
the session saves it beside the adapter in every checkpoint and restores it on resume.
"""

from __future__ import annotations

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn

from localtune.events import Metric
from localtune.reward.head import (HEAD_ATTR, head_from, head_metadata, head_weights, hidden_size, new_head,
                                   read_head, sequence_rewards)
from localtune.runs import layout
from localtune.train.dpo import PairBatch, log_sigmoid
from localtune.train.task import ModelPart

__all__ = ["bradley_terry_loss", "RewardLoss", "reward_task", "HEAD_PART", "REWARD_METRICS"]


def bradley_terry_loss(r_chosen, r_rejected, margin=0.0):
    """Per pair: -log σ(r_chosen - r_rejected - margin) (Bradley & Terry 1952; Ouyang et al. 2022
    eq. 1; the margin as in Llama 2 / TRL's RewardTrainer: the chosen reward must win by it)."""
    return -log_sigmoid(r_chosen - r_rejected - margin)


class RewardLoss:
    """loss_fn(model, batch) -> (mean loss over pairs, number of pairs, metrics); rewards from the
    head in the model tree (reward.head.HEAD_ATTR)."""

    def __init__(self, cfg):
        self.cfg = cfg

    def __call__(self, model: nn.Module, batch: PairBatch):
        cfg = self.cfg
        b = len(batch.rows)
        rewards = sequence_rewards(model, model[HEAD_ATTR], batch.ids, batch.lengths)
        rc, rr = rewards[:b], rewards[b:]
        margin = cfg.margin if batch.margins is None else batch.margins + cfg.margin
        loss = bradley_terry_loss(rc, rr, margin).mean()
        if cfg.center_rewards:
            loss = loss + cfg.center_rewards * ((rc + rr) ** 2).mean()
        metrics = {"reward_accuracy": (rc > rr).astype(mx.float32).mean(), "reward_margin": (rc - rr).mean(),
                   "reward_chosen": rc.mean(), "reward_rejected": rr.mean(), "reward_mean": rewards.mean()}
        metrics = {k: mx.stop_gradient(v) for k, v in metrics.items()}
        return loss, mx.array(float(b)), metrics


def _load_head(model, weights: dict) -> None:
    head = model[HEAD_ATTR]
    head.weight = head_from(weights, head.weight.shape[-1], "checkpoint").weight
    mx.eval(head.weight)


# The head as a ModelPart: saved in its own file beside the adapter, in the run and each checkpoint.
HEAD_PART = ModelPart(layout.REWARD_HEAD_FILE, lambda model: head_weights(model[HEAD_ATTR]), _load_head,
                      lambda model: head_metadata(model[HEAD_ATTR]))

# The accuracy and margin share DPO's names (built-in metrics, drawn on the "reward" plot), so a
# reward run and a DPO run on the same pairs read side by side in `runs`, the TUI and the card.
REWARD_METRICS = (
    Metric("reward_accuracy", "reward acc", plot="reward", fmt=".3f", summary=True, final=True),
    Metric("val_reward_accuracy", "val reward acc", plot="reward", fmt=".3f", summary=True, card=True,
           final=True),
    Metric("reward_margin", "margin", plot="reward", fmt=".3f", summary=True),
    Metric("val_reward_margin", "val margin", plot="reward", fmt=".3f", card=True, final=True),
    Metric("reward_mean", "mean reward", plot="reward", fmt=".3f"),
    Metric("val_reward_mean", "val mean reward", plot="reward", fmt=".3f", card=True),
    Metric("val_reward_chosen", "val reward chosen", fmt=".3f"),
    Metric("val_reward_rejected", "val reward rejected", fmt=".3f"),
)


def attach_head(ctx) -> int:
    """Put the value head in the model tree (trainable: the loop's optimizer sees it beside LoRA).
    A run starting from another reward run's adapter (--adapter) starts from its head too; on
    resume the checkpoint's head replaces it. Returns the hidden size."""
    width = hidden_size(ctx.model)
    start = ctx.start_adapter / layout.REWARD_HEAD_FILE if ctx.start_adapter else None
    head = read_head(start, width) if start is not None and start.is_file() else new_head(width)
    ctx.model[HEAD_ATTR] = head
    mx.eval(head.parameters())
    return width


def build_reward_data(ctx):
    """The pairs (DPO's files, batches and validation), and the head in the model."""
    from localtune.train.dpo import PairStream, eval_pair_batches, load_pair_files
    from localtune.train.task import TaskData

    cfg = ctx.cfg
    pairs, vpairs = load_pair_files(ctx)
    width = attach_head(ctx)
    record = {"train_pairs": len(pairs), "reward_head_hidden": width,
              "margin_column": any(p.margin is not None for p in pairs)}
    data = TaskData(PairStream(pairs, cfg.batch_size, cfg.seed, shard=ctx.shard), record=record)
    if vpairs:
        data.valid = lambda: eval_pair_batches(vpairs, cfg.batch_size, cfg.val_batches)
        data.record["valid_pairs"] = len(vpairs)
    return data


def reward_task(cfg):
    """A reward model: Bradley-Terry on preference pairs, weighted by pairs, the head as a part."""
    from localtune.train.task import TrainingTask

    return TrainingTask("reward", RewardLoss(cfg), build_reward_data, weight_unit="pairs",
                        metrics=REWARD_METRICS, parts=(HEAD_PART,))
