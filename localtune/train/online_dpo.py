"""Online DPO (Guo et al. 2024, TRL's OnlineDPOTrainer): the policy answers each prompt twice, the
reward picks the better answer, and one DPO step (train/dpo.py's losses, unchanged) learns from
the pair. The reference (for the losses that use one) is the starting policy, recovered inside the
one model and scored on each batch's new pair in next(), outside the gradient.

Ties are skipped: a prompt whose two answers get the same reward (or one gets none) teaches
nothing. A batch left with no pair draws the next prompts instead. After a whole epoch of batches
(at least TIE_ATTEMPTS) of ties in a row, the step trains on nothing (its loss is multiplied by 0,
with a notice): the reward no longer tells this model's answers apart (often: every answer now
gets the top reward), and an error would end a run that has converged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import localtune  # noqa: F401
import mlx.core as mx

from localtune import events
from localtune.data.batching import BatchStream, collate
from localtune.train.dpo import PairBatch, PreferenceLoss
from localtune.train.rollouts import RolloutSampler, load_prompts, rollout_metrics, rollout_seed

TIE_ATTEMPTS = 16


@dataclass
class OnlinePairBatch(PairBatch):
    stats: dict = field(default_factory=dict)  # the rollouts' numbers, reported as metrics
    learns: bool = True  # False: only ties were drawn; the loss counts 0 (module doc)
    # A micro-batch (split()): the whole batch's chosen tokens and pairs, for its chosen NLL (rpo_alpha).
    whole: tuple[float, int] | None = None

    def split(self, answers: int) -> list["OnlinePairBatch"]:
        """Micro-batches of whole pairs, at most `answers` answers (rows) each, at least one pair
        (--micro-batch). DPO's loss is a mean over pairs weighted by their count, so the loop's
        weighted sum of the parts is exactly the whole batch's (the chosen NLL of --rpo-alpha, a
        mean over the whole batch's chosen tokens, is scaled to match: OnlineDPOLoss)."""
        from localtune.data.batching import row_chunks, take_rows

        b = len(self.rows)
        per = max(1, answers // 2)
        if per >= b:
            return [self]
        chosen_tokens = float(np.array(self.mask)[:b, 1:].sum())
        parts = []
        for chunk in row_chunks(b, per):
            rows = chunk + [b + i for i in chunk]  # chosen rows, then their rejected rows
            part, _ = take_rows(self, rows)
            parts.append(OnlinePairBatch(
                part.ids, part.mask, part.lengths, [self.rows[i] for i in chunk],
                None if self.ref is None else self.ref[mx.array(rows)], part.positions, part.targets,
                part.target_rows, self.dummy, stats=self.stats, learns=self.learns, whole=(chosen_tokens, b)))
        return parts


def pick_pairs(rollouts) -> list[tuple]:
    """(chosen, rejected) rollouts of each prompt (answers i, i+1) whose rewards differ."""
    pairs = []
    for a, b in zip(rollouts[::2], rollouts[1::2]):
        if a.reward is None or b.reward is None or a.reward == b.reward:
            continue
        pairs.append((a, b) if a.reward > b.reward else (b, a))
    return pairs


def pair_batch(pairs, prompt_ids) -> OnlinePairBatch:
    """Chosen rows then rejected rows, each answer after its prompt (the answer is the target)."""
    def row(r):
        prompt = prompt_ids[r.item]
        return list(prompt) + r.answer_ids, [False] * len(prompt) + [True] * len(r.answer_ids)

    seqs = [row(c) for c, _ in pairs] + [row(r) for _, r in pairs]
    b = collate(seqs, list(range(len(seqs))))
    return OnlinePairBatch(b.ids, b.mask, b.lengths, [c.item for c, _ in pairs], None, b.positions, b.targets,
                           b.target_rows)


class OnlineDPOStream(BatchStream):
    """Endless pair batches of the current policy's own answers (module doc)."""

    def __init__(self, sampler: RolloutSampler, cfg, *, start_weights=None, shard=None):
        self.sampler, self.cfg, self.start_weights = sampler, cfg, start_weights
        self.told_ties = False
        opts = {} if shard is None else {"shard": shard}
        super().__init__(sampler.prompt_ids, cfg.batch_size, cfg.seed,
                         lengths=[len(p) for p in sampler.prompt_ids], **opts)

    def next(self) -> OnlinePairBatch:
        from localtune.train.reference import live_reference

        attempts = max(TIE_ATTEMPTS, self.batches_per_epoch)
        for attempt in range(attempts):
            items, dummy, (epoch, index) = self.take()
            rollouts, stats = self.sampler.sample(items, 2, rollout_seed(self.cfg.seed, epoch, index,
                                                                         self.shard.rank))
            pairs = pick_pairs(rollouts)
            learns = bool(pairs)
            if not learns and attempt + 1 < attempts:
                continue
            if not learns:
                self._tell_ties(attempts)
                pairs = list(zip(rollouts[::2], rollouts[1::2]))  # a stand-in: its loss counts 0
            batch = pair_batch(pairs, self.sampler.prompt_ids)
            if self.cfg.uses_reference:
                batch.ref = live_reference(self.sampler.model, batch, self.start_weights, rows=self.cfg.micro_batch)
                mx.eval(batch.ref)
            batch.stats = {**stats, "ties": 1.0 - (len(pairs) / len(items) if learns else 0.0)}
            batch.learns, batch.dummy = learns, dummy
            return batch

    def _tell_ties(self, attempts: int) -> None:
        if not self.told_ties:
            self.told_ties = True
            self.sampler.emit(events.Notice(
                f"online DPO: both answers got the same reward in every pair of {attempts} batches in a row; "
                "such a step learns nothing (the reward no longer separates this model's answers: a finer "
                "reward, a higher --temperature or a longer --max-completion would)").to_dict())


class OnlineDPOLoss(PreferenceLoss):
    """DPO's loss on the batch's pairs, plus the rollouts' numbers as metrics."""

    def __call__(self, model, batch: OnlinePairBatch):
        loss, weight, metrics = super().__call__(model, batch)
        if not batch.learns:
            loss = loss * 0.0
        metrics.update({k: mx.array(float(v)) for k, v in batch.stats.items()})
        return loss, weight, metrics

    def chosen_nll(self, batch, pc, lc):
        if batch.whole is None:
            return super().chosen_nll(batch, pc, lc)
        # A part of b of the whole batch's B pairs, weighted b/B by the loop: its share of the
        # whole batch's chosen-token NLL, times B/b.
        tokens, pairs = batch.whole
        return -pc.sum() / max(tokens, 1.0) * (pairs / len(batch.rows))


def build_online_dpo_data(ctx, loss_fn: OnlineDPOLoss):
    from localtune.train.reference import starting_adapter
    from localtune.train.rollouts import open_rewards
    from localtune.train.task import TaskData

    cfg = ctx.cfg
    sources, record = open_rewards(ctx)
    rows, prompt_ids = load_prompts(ctx, cfg, sources)
    sampler = RolloutSampler(ctx.model, ctx.tokenizer, rows, prompt_ids, sources, cfg, ctx.emit, ctx.phase)
    start = starting_adapter(ctx.start_adapter)
    loss_fn.start_weights = start
    stream = OnlineDPOStream(sampler, cfg, start_weights=start, shard=ctx.shard)
    return TaskData(stream, record={"train_prompts": len(rows), "online": True,
                                    "reference": "live" if cfg.uses_reference else "none", **record})


def online_dpo_task(cfg):
    """Online DPO: pairs of the policy's own answers, labelled by the reward; weighted by pairs."""
    from localtune.events import Metric
    from localtune.rewards import parse_specs
    from localtune.train.task import TrainingTask

    loss_fn = OnlineDPOLoss(cfg)
    metrics = rollout_metrics([s.name for s in parse_specs(cfg.reward)]) + (
        Metric("ties", "ties", fmt=".2f", summary=True),)
    return TrainingTask("dpo", loss_fn, lambda ctx: build_online_dpo_data(ctx, loss_fn), weight_unit="pairs",
                        metrics=metrics)
