"""GRPO, Dr. GRPO and RLOO: the policy answers each prompt G times, the answers are rewarded, and
each answer's tokens are pushed up or down by how it did against the other answers to its prompt.

Advantages, per answer i of a prompt's group (answers without a reward are left out of the group):
    grpo     A_i = (r_i - mean) / (std + 1e-4)          DeepSeekMath; std with Bessel's correction (TRL)
    dr-grpo  A_i = r_i - mean                           Dr. GRPO (Liu et al. 2025): no std
    rloo     A_i = r_i - mean of the other answers      Ahmadian et al. 2024 = G/(G-1) (r_i - mean)
Per answer token t (PPO's clipped objective, as TRL's GRPOTrainer and DeepSeekMath eq. 3):
    ratio = π(t) / π_old(t)       π_old: the policy that sampled the batch (= π with
                                   --updates-per-batch 1: the ratio is 1 and the clip inactive)
    pg    = -min(ratio·A, clip(ratio, 1-ε, 1+ε)·A)
    kl    = exp(ref - logp) - (ref - logp) - 1      k3 estimator of KL(π || π_ref) (Schulman; TRL, DeepSeek)
    loss_t = pg + β·kl
Aggregation: grpo and rloo average each answer's tokens, then the answers; dr-grpo sums the tokens
and divides by answers × --max-completion (no length normalisation). Log-probs are those of the
sampling distribution (the model's logits over --temperature, as TRL).

The reference π_ref is the starting policy recovered inside the one model (train/reference.py:
adapters off, or the starting SFT adapter swapped back in), never a second model. Its log-probs
and π_old's are computed in the stream's next(), outside the gradient, once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

import localtune  # noqa: F401
import mlx.core as mx

from localtune.data.batching import BatchStream, collate
from localtune.train.logits import target_logprobs, target_logprobs_by_rows
from localtune.train.rollouts import Rollout, RolloutSampler, load_prompts, rollout_metrics, rollout_seed

STD_EPS = 1e-4  # TRL's epsilon in (r - mean) / (std + eps)


# --- the pure pieces --------------------------------------------------------------------------

def group_advantages(rewards: mx.array, valid: mx.array, group_size: int, algo: str,
                     eps: float = STD_EPS) -> mx.array:
    """(N,) advantages of N = groups × group_size answers in group order. `valid` (N,) marks
    answers with a reward; the others get 0 and do not count in their group's statistics. A group
    with fewer than two valid answers has nothing to compare: all 0."""
    r = rewards.astype(mx.float32).reshape(-1, group_size)
    v = valid.astype(mx.float32).reshape(-1, group_size)
    r = mx.where(v > 0, r, 0.0)  # a missing reward may be stored as NaN: keep it out of the sums
    n = v.sum(axis=1, keepdims=True)
    mean = (r * v).sum(axis=1, keepdims=True) / mx.maximum(n, 1.0)
    centered = (r - mean) * v
    if algo == "grpo":
        std = mx.sqrt((centered * centered).sum(axis=1, keepdims=True) / mx.maximum(n - 1.0, 1.0))
        adv = centered / (std + eps)
    elif algo == "dr-grpo":
        adv = centered
    elif algo == "rloo":
        adv = centered * n / mx.maximum(n - 1.0, 1.0)
    else:
        raise ValueError(f"unknown algo {algo!r}")
    return mx.where(n >= 2, adv, 0.0).reshape(-1)


def token_objective(logp, old_logp, ref_logp, advantages, beta: float, epsilon: float):
    """Per-token loss, whether the clip was active, and the k3 KL (None without a reference)."""
    ratio = mx.exp(logp - old_logp)
    clipped_ratio = mx.clip(ratio, 1.0 - epsilon, 1.0 + epsilon)
    loss = -mx.minimum(ratio * advantages, clipped_ratio * advantages)
    # TRL's clip ratio: the clipped side won (ratio out of range in the direction the advantage pushes).
    clipped = ((ratio < 1.0 - epsilon) & (advantages < 0)) | ((ratio > 1.0 + epsilon) & (advantages > 0))
    kl = None
    if ref_logp is not None:
        d = ref_logp - logp
        kl = mx.exp(d) - d - 1.0
        if beta:
            loss = loss + beta * kl
    return loss, clipped, kl


def aggregate(token_loss, token_weight, target_rows, n_rows: int, algo: str, max_completion: int, n=None):
    """The batch loss from per-token losses, and the number of answers it averages over.
    token_weight (per token) is 1 for answers that are trained on, 0 for the others. `n`: the
    number to average over when it is not this batch's own (a micro-batch's: its whole batch's)."""
    answers = mx.zeros((n_rows,), mx.float32).at[target_rows].add(token_weight)  # tokens per answer
    trained = (answers > 0).astype(mx.float32)
    if n is None:
        n = mx.maximum(trained.sum(), 1.0)
    if algo == "dr-grpo":
        return (token_loss * token_weight).sum() / (n * max_completion), n
    sums = mx.zeros((n_rows,), mx.float32).at[target_rows].add(token_loss * token_weight)
    return (sums / mx.maximum(answers, 1.0) * trained).sum() / n, n


# --- batches ----------------------------------------------------------------------------------

@dataclass
class GRPOBatch:
    """A batch of rollouts: each answer after its prompt as one row (data.batching's ids/mask
    convention; the answer's tokens are the targets), with the group-normalised advantages and the
    reference and sampling policies' log-probs of every target token."""

    ids: mx.array
    mask: mx.array
    lengths: list[int]
    rows: list[int]  # prompt items, one per answer
    positions: mx.array
    targets: mx.array
    target_rows: mx.array
    advantages: mx.array  # (answers,)
    valid: mx.array  # (answers,) 1.0 = trained on
    rollouts: list[Rollout] = field(default_factory=list)
    ref_logps: mx.array | None = None  # per target token
    old_logps: mx.array | None = None  # per target token (only with --updates-per-batch > 1)
    stats: dict = field(default_factory=dict)  # rollout_stats, reported as metrics
    dummy: bool = False
    # A micro-batch (split()): (answers trained on, their tokens) of the whole batch, and its number of parts.
    whole: tuple[float, float, int] | None = None
    # The blocks before the adapter, run once for the reference pass and the update (frozen_prefix).
    prefix: tuple[int, mx.array] | None = None

    @property
    def ntokens(self) -> int:
        return int(sum(self.lengths))

    @property
    def ntargets(self) -> int:
        return int(self.targets.size)

    def split(self, answers: int) -> list["GRPOBatch"]:
        """The batch as micro-batches of at most `answers` answers, for the loop to differentiate
        one at a time (--micro-batch: the activations of a few answers in memory, not of all).
        Each part is normalised by the whole batch's counts and carries 1/K of its weight, so
        the loop's weighted sum of the K parts' losses and gradients is the whole batch's.
        Advantages were computed over whole groups (assemble), before any split."""
        from localtune.data.batching import row_chunks, take_rows

        n = len(self.rows)
        if answers >= n:
            return [self]
        tokens = np.array(self.mask)[:, 1:].sum(axis=1)
        trained = (np.array(self.valid) > 0) & (tokens > 0)
        whole_answers, whole_tokens = max(float(trained.sum()), 1.0), max(float(tokens[trained].sum()), 1.0)
        chunks = row_chunks(n, answers)
        parts = []
        for chunk in chunks:
            b, index = take_rows(self, chunk)
            at = mx.array(index)
            parts.append(GRPOBatch(
                b.ids, b.mask, b.lengths, [self.rows[r] for r in chunk], b.positions, b.targets, b.target_rows,
                self.advantages[chunk[0]: chunk[-1] + 1], self.valid[chunk[0]: chunk[-1] + 1],
                ref_logps=None if self.ref_logps is None else self.ref_logps[at],
                old_logps=None if self.old_logps is None else self.old_logps[at],
                stats=self.stats, dummy=self.dummy, whole=(whole_answers, whole_tokens, len(chunks)),
                prefix=b.prefix))
        return parts


def assemble(rollouts: list[Rollout], prompt_ids, group_size: int, algo: str) -> GRPOBatch:
    """The training batch of rollouts (groups of group_size consecutive answers)."""
    seqs = [(list(prompt_ids[r.item]) + r.answer_ids,
             [False] * len(prompt_ids[r.item]) + [True] * len(r.answer_ids)) for r in rollouts]
    b = collate(seqs, list(range(len(seqs))))
    rewards = np.array([0.0 if r.reward is None else r.reward for r in rollouts], np.float32)
    valid = np.array([r.reward is not None for r in rollouts], np.float32)
    adv = group_advantages(mx.array(rewards), mx.array(valid), group_size, algo)
    return GRPOBatch(b.ids, b.mask, b.lengths, [r.item for r in rollouts], b.positions, b.targets, b.target_rows,
                     adv, mx.array(valid), rollouts)


class GRPOStream(BatchStream):
    """Endless batches of rollouts: each next() answers the next batch of prompts (data order as
    every stream's: a pure function of seed and epoch) with the current policy.

    With --updates-per-batch mu > 1 the answers of one optimizer step (its --grad-accum batches)
    are trained on mu times; until they are used up the position carries them (answers and the
    sampling policy's log-probs), so a resume mid-way trains on exactly the same samples."""

    def __init__(self, sampler: RolloutSampler, cfg, *, start_weights=None, shard=None, accum: int = 1):
        self.sampler, self.cfg, self.start_weights = sampler, cfg, start_weights
        self.cycle, self.calls, self.buffer = accum * cfg.updates_per_batch, 0, []
        self.accum = accum
        opts = {} if shard is None else {"shard": shard}
        super().__init__(sampler.prompt_ids, cfg.batch_size, cfg.seed,
                         lengths=[len(p) for p in sampler.prompt_ids], **opts)

    # the loop's side
    def next(self) -> GRPOBatch:
        if self.cfg.updates_per_batch == 1:
            return self.fresh()
        at = self.calls % self.cycle
        if at == 0:
            self.buffer = []
        if at < self.accum:
            batch = self.fresh()
            self.buffer.append(batch)
        else:  # a later update on the same answers: nothing was generated for it
            batch = self.buffer[at % self.accum]
            batch = replace(batch, stats={**batch.stats, "generate_seconds": 0.0, "score_seconds": 0.0})
        self.calls += 1
        return batch

    def fresh(self) -> GRPOBatch:
        items, dummy, (epoch, index) = self.take()
        cfg = self.cfg
        rollouts, stats = self.sampler.sample(items, cfg.group_size,
                                              rollout_seed(cfg.seed, epoch, index, self.shard.rank))
        batch = self.score(assemble(rollouts, self.sampler.prompt_ids, cfg.group_size, cfg.algo))
        batch.stats, batch.dummy = stats, dummy
        return batch

    def score(self, batch: GRPOBatch, old=None, ref=None) -> GRPOBatch:
        """The reference's log-probs (KL) and, for several updates, the sampling policy's."""
        from localtune.train.frozen_prefix import batch_prefix
        from localtune.lora import eval_mode
        from localtune.train.reference import reference_policy

        model, cfg = self.sampler.model, self.cfg
        if cfg.kl_beta > 0 or cfg.updates_per_batch > 1:
            # Two passes over these answers (this one and the update): the blocks before the
            # adapter run once for both. Decided by the settings alone, so a batch restored on
            # resume (ref and old given) trains from the same numbers as in the unbroken run.
            batch.prefix = batch_prefix(model, batch, cfg.micro_batch)
        # --micro-batch answers at a time: this pass must not hold more than the update does.
        if ref is None and cfg.kl_beta > 0:
            with reference_policy(model, self.start_weights):
                ref = target_logprobs_by_rows(model, batch, cfg.temperature, cfg.micro_batch)
        if old is None and cfg.updates_per_batch > 1:
            with eval_mode(model):
                old = target_logprobs_by_rows(model, batch, cfg.temperature, cfg.micro_batch)
        batch.ref_logps = None if ref is None else mx.stop_gradient(mx.array(ref))
        batch.old_logps = None if old is None else mx.stop_gradient(mx.array(old))
        mx.eval([a for a in (batch.ref_logps, batch.old_logps) if a is not None])
        return batch

    # resume
    @property
    def position(self) -> dict:
        pos = super().position
        at = self.calls % self.cycle if self.cycle else 0
        if self.cfg.updates_per_batch > 1 and at:
            pos["cycle"] = {"calls": at, "batches": [self._to_json(b) for b in self.buffer]}
        return pos

    def seek(self, position: dict) -> None:
        super().seek(position)
        cycle = position.get("cycle")
        self.calls, self.buffer = (cycle["calls"], [self._from_json(b) for b in cycle["batches"]]) if cycle else (0, [])

    @staticmethod
    def _to_json(b: GRPOBatch) -> dict:
        def floats(a):
            return None if a is None else [float(x) for x in np.array(a)]

        return {"rollouts": [r.to_json() for r in b.rollouts], "ref": floats(b.ref_logps),
                "old": floats(b.old_logps), "stats": b.stats, "dummy": b.dummy}

    def _from_json(self, d: dict) -> GRPOBatch:
        rollouts = [Rollout.from_json(r) for r in d["rollouts"]]
        batch = assemble(rollouts, self.sampler.prompt_ids, self.cfg.group_size, self.cfg.algo)
        as_array = (lambda v: None if v is None else np.array(v, np.float32))
        batch = self.score(batch, old=as_array(d["old"]), ref=as_array(d["ref"]))
        batch.stats, batch.dummy = d["stats"], d["dummy"]
        return batch


# --- the loss the loop calls ------------------------------------------------------------------

class GRPOLoss:
    """loss_fn(model, batch) -> (loss, answers trained on, metrics) for GRPO / Dr. GRPO / RLOO.
    A micro-batch (GRPOBatch.split, `batch.whole` set) averages over its whole batch's answers and
    tokens and counts K times, with 1/K of the weight: its share of the whole batch's loss,
    scaled so that the loop's weighted mean of the parts is exactly the one-shot loss."""

    def __init__(self, cfg):
        self.cfg = cfg

    def __call__(self, model, batch: GRPOBatch):
        cfg = self.cfg
        logp = target_logprobs(model, batch, cfg.temperature)
        old = batch.old_logps if batch.old_logps is not None else mx.stop_gradient(logp)
        rows = batch.target_rows
        weight = batch.valid[rows]
        per_token, clipped, kl = token_objective(logp, old, batch.ref_logps, batch.advantages[rows],
                                                 cfg.kl_beta, cfg.clip_epsilon)
        if batch.whole is None:
            loss, n = aggregate(per_token, weight, rows, len(batch.rows), cfg.algo, cfg.max_completion)
            tokens = mx.maximum(weight.sum(), 1.0)
        else:
            answers, tokens, parts = batch.whole
            loss, n = aggregate(per_token, weight, rows, len(batch.rows), cfg.algo, cfg.max_completion,
                                n=mx.array(answers / parts, mx.float32))
            tokens = tokens / parts
        metrics = {"clip_fraction": (clipped.astype(mx.float32) * weight).sum() / tokens}
        if kl is not None:
            metrics["kl"] = (kl * weight).sum() / tokens
        metrics = {k: mx.stop_gradient(v) for k, v in metrics.items()}
        metrics.update({k: mx.array(float(v)) for k, v in batch.stats.items()})
        return loss, n, metrics


def build_grpo_data(ctx):
    from localtune.train.reference import starting_adapter
    from localtune.train.rollouts import open_rewards
    from localtune.train.task import TaskData

    cfg = ctx.cfg
    sources, record = open_rewards(ctx)
    rows, prompt_ids = load_prompts(ctx, cfg, sources)
    sampler = RolloutSampler(ctx.model, ctx.tokenizer, rows, prompt_ids, sources, cfg, ctx.emit, ctx.phase)
    stream = GRPOStream(sampler, cfg, start_weights=starting_adapter(ctx.start_adapter), shard=ctx.shard,
                        accum=cfg.grad_accum)
    return TaskData(stream, record={"train_prompts": len(rows), **record})


def grpo_metrics(cfg):
    from localtune.events import Metric
    from localtune.rewards import parse_specs

    names = [s.name for s in parse_specs(cfg.reward)]
    return rollout_metrics(names) + (
        Metric("kl", "kl", fmt=".4f", summary=cfg.kl_beta > 0, card=cfg.kl_beta > 0),
        Metric("clip_fraction", "clipped", fmt=".3f", summary=cfg.updates_per_batch > 1))


def grpo_task(cfg):
    """GRPO / Dr. GRPO / RLOO (cfg.algo): rollouts of the policy, rewarded, weighted by answers."""
    from localtune.train.task import TrainingTask

    return TrainingTask("grpo", GRPOLoss(cfg), build_grpo_data, weight_unit="answers", metrics=grpo_metrics(cfg))
