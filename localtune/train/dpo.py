"""Preference tuning: the DPO-family losses as pure functions of per-sequence log-probs, the pair
batches (chosen and rejected of a batch in ONE forward pass), and the TrainingTask (train/task.py).

Notation: pc/pr = policy log-prob sums of chosen/rejected responses, rc/rr = the reference's,
lc/lr = response lengths in tokens. Every loss returns one value per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import localtune  # noqa: F401
import mlx.core as mx

from localtune.data.batching import BatchStream, EvalBatches, Shard, eval_groups
from localtune.events import Metric
from localtune.lora import eval_mode
from localtune.train.reference import (
    cached_reference,
    live_reference,
    sequence_logps,
    starting_adapter,
)

__all__ = ["sigmoid_loss", "ipo_loss", "hinge_loss", "orpo_loss", "simpo_loss", "chosen_nll", "sequence_logps",
           "PairBatch", "PairStream", "PreferenceLoss", "dpo_task", "preference_report",
           "preference_accuracy"]


def log_sigmoid(x):
    return -mx.logaddexp(mx.zeros_like(x), -x)  # stable for large |x|


# --- losses -------------------------------------------------------------------------------------

def sigmoid_loss(pc, pr, rc, rr, beta: float, label_smoothing: float = 0.0):
    """DPO, Rafailov et al. 2023 eq. 7: -log σ(β[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) -
    log π_ref(y_l))]); with label smoothing ε (cDPO, Mitchell 2023): (1-ε)·that + ε·(-log σ(-h))."""
    h = beta * ((pc - rc) - (pr - rr))
    return -(1 - label_smoothing) * log_sigmoid(h) - label_smoothing * log_sigmoid(-h)


def ipo_loss(pc, pr, rc, rr, lc, lr, beta: float):
    """IPO, Azar et al. 2023 eq. 17: (h - 1/(2β))², h the difference of log-ratios computed with
    length-averaged log-probs (as the IPO paper's token-level form and TRL do)."""
    h = (pc - rc) / lc - (pr - rr) / lr
    return (h - 1 / (2 * beta)) ** 2


def hinge_loss(pc, pr, rc, rr, beta: float):
    """Hinge (SLiC-HF, Zhao et al. 2023) on DPO's log-ratio difference h: relu(1 - β·h)."""
    h = (pc - rc) - (pr - rr)
    return mx.maximum(1 - beta * h, 0.0)


def _log_odds(avg_logp):
    # log(p / (1 - p)) with p = exp(avg log-prob); the clamp keeps p -> 1 finite.
    return avg_logp - mx.log(mx.maximum(-mx.expm1(avg_logp), 1e-30))


def orpo_loss(pc, pr, lc, lr, lam: float):
    """ORPO, Hong et al. 2024 eqs. 6-7: NLL(y_w) + λ·(-log σ(log odds(y_w) - log odds(y_l))), with
    the NLL and the odds from length-averaged log-probs. Reference-free."""
    ac, ar = pc / lc, pr / lr
    return -ac - lam * log_sigmoid(_log_odds(ac) - _log_odds(ar))


def simpo_loss(pc, pr, lc, lr, beta: float, gamma: float):
    """SimPO, Meng et al. 2024 eq. 6: -log σ(β/|y_w| log π(y_w) - β/|y_l| log π(y_l) - γ).
    Reference-free."""
    return -log_sigmoid(beta * pc / lc - beta * pr / lr - gamma)


def chosen_nll(pc, lc):
    """The chosen answers' negative log-likelihood per token, over every chosen token of the batch
    (TRL's nll_loss for rpo_alpha: one cross-entropy over the batch's chosen tokens). RPO (Pang et
    al. 2024) adds alpha times it to each pair's loss: DPO alone can lower the chosen answer's
    likelihood as long as the rejected one falls faster, and an answer that is no longer likely
    is one the model no longer ends."""
    return -pc.sum() / mx.maximum(lc.sum(), 1)


def rewards(loss: str, pc, pr, rc, rr, lc, lr, *, beta: float, orpo_lambda: float):
    """Implicit rewards per pair, from the same log-probs the loss uses: β·log-ratio for DPO/hinge
    (length-averaged for IPO); coefficient·average log-prob for the reference-free losses."""
    if loss in ("sigmoid", "hinge"):
        return beta * (pc - rc), beta * (pr - rr)
    if loss == "ipo":
        return beta * (pc - rc) / lc, beta * (pr - rr) / lr
    coef = orpo_lambda if loss == "orpo" else beta
    return coef * pc / lc, coef * pr / lr


def pair_losses(cfg, pc, pr, rc, rr, lc, lr):
    if cfg.loss == "sigmoid":
        return sigmoid_loss(pc, pr, rc, rr, cfg.beta, cfg.label_smoothing)
    if cfg.loss == "ipo":
        return ipo_loss(pc, pr, rc, rr, lc, lr, cfg.beta)
    if cfg.loss == "hinge":
        return hinge_loss(pc, pr, rc, rr, cfg.beta)
    if cfg.loss == "orpo":
        return orpo_loss(pc, pr, lc, lr, cfg.orpo_lambda)
    return simpo_loss(pc, pr, lc, lr, cfg.beta, cfg.simpo_gamma)


# --- batches ------------------------------------------------------------------------------------

@dataclass
class PairBatch:
    """B pairs as one (2B, L) batch: rows 0..B-1 chosen, rows B..2B-1 the matching rejected."""

    ids: mx.array
    mask: mx.array
    lengths: list[int]
    rows: list[int]  # pair indices
    ref: mx.array | None  # (2B,) cached reference log-prob sums, same row order
    positions: mx.array | None = None  # target positions, as in data.batching.Batch
    targets: mx.array | None = None
    target_rows: mx.array | None = None
    dummy: bool = False  # a zero-weight stand-in (data.batching.Shard.take)
    margins: mx.array | None = None  # (B,) the pairs' "margin" column (0 where a row has none); reward models

    @property
    def ntokens(self) -> int:
        return int(sum(self.lengths))

    @property
    def ntargets(self) -> int:
        return int(self.targets.size) if self.targets is not None else 0


def collate_pairs(pairs, indices: list[int], ref=None) -> PairBatch:
    from localtune.data.batching import collate

    seqs = [(pairs[i].chosen_ids, pairs[i].chosen_mask) for i in indices]
    seqs += [(pairs[i].rejected_ids, pairs[i].rejected_mask) for i in indices]
    b = collate(seqs, list(range(len(seqs))))
    r = None if ref is None else mx.array(np.concatenate([ref[0][indices], ref[1][indices]]))
    margins = [pairs[i].margin for i in indices]
    m = None if all(v is None for v in margins) else mx.array([v or 0.0 for v in margins], mx.float32)
    return PairBatch(b.ids, b.mask, b.lengths, list(indices), r, b.positions, b.targets, b.target_rows,
                     margins=m)


class PairStream(BatchStream):
    """Endless pair batches in the SFT stream's epoch order (a pure function of seed and epoch, so
    resume replays it; bucketed once per epoch by pair length, never re-sorted per step)."""

    def __init__(self, pairs, batch_size: int, seed: int, ref=None, shard: Shard = Shard()):
        self.ref = ref
        super().__init__(pairs, batch_size, seed, lengths=[p.length for p in pairs], shard=shard)

    def collate(self, indices: list[int]) -> PairBatch:
        return collate_pairs(self.rows, indices, self.ref)


def eval_pair_batches(pairs, batch_size: int, limit: int = -1, ref=None) -> EvalBatches:
    return EvalBatches(eval_groups([p.length for p in pairs], batch_size, limit),
                       lambda g: collate_pairs(pairs, g, ref))


# --- the loss the loop calls --------------------------------------------------------------------

class PreferenceLoss:
    """loss_fn(model, batch) -> (mean loss over pairs, number of pairs, metrics).

    Returning the pair count as the loop's weight makes gradient accumulation and the averaged
    metrics exact per pair (the loop weights by it)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.start_weights = None  # the starting SFT adapter, for the live reference

    def __call__(self, model, batch: PairBatch):
        cfg = self.cfg
        b = len(batch.rows)
        logps, ntok = sequence_logps(model, batch)
        pc, pr, lc, lr = logps[:b], logps[b:], ntok[:b], ntok[b:]
        if not cfg.uses_reference:
            ref = mx.zeros_like(logps)
        elif batch.ref is not None:
            ref = batch.ref
        else:
            ref = live_reference(model, batch, self.start_weights)
        rc, rr = ref[:b], ref[b:]
        losses = pair_losses(cfg, pc, pr, rc, rr, lc, lr)
        wc, wr = rewards(cfg.loss, pc, pr, rc, rr, lc, lr, beta=cfg.beta, orpo_lambda=cfg.orpo_lambda)
        nll = self.chosen_nll(batch, pc, lc)
        if cfg.rpo_alpha:
            losses = losses + cfg.rpo_alpha * nll
        metrics = {"reward_accuracy": (wc > wr).astype(mx.float32).mean(), "reward_chosen": wc.mean(),
                   "reward_rejected": wr.mean(), "reward_margin": (wc - wr).mean(), "chosen_nll": nll}
        if cfg.uses_reference:
            # KL-ish drift: how far the policy moved from the reference on chosen, per token.
            metrics["logp_drift"] = ((pc - rc) / lc).mean()
        metrics = {k: mx.stop_gradient(v) for k, v in metrics.items()}
        return losses.mean(), mx.array(float(b)), metrics

    def chosen_nll(self, batch, pc, lc):
        """The batch's chosen NLL (a mode whose batches are parts of a larger one overrides it)."""
        return chosen_nll(pc, lc)


def load_pair_files(ctx):
    """(train pairs, validation pairs or None) from the session's data files, with the run's
    --max-seq-len, --overlong and --columns (DPO and reward models read the same files)."""
    from localtune.data.preferences import load_pairs

    cfg = ctx.cfg
    opts = dict(max_seq_len=cfg.max_seq_len, overlong=cfg.overlong, on_event=ctx.emit, columns=cfg.columns)
    pairs = load_pairs(ctx.files["train"], ctx.tokenizer, role="train", **opts)
    vpairs = load_pairs(ctx.files["valid"], ctx.tokenizer, role="valid", **opts) if "valid" in ctx.files else None
    return pairs, vpairs


def build_dpo_data(ctx, loss_fn: PreferenceLoss):
    """Preference pairs from the data files and, for the losses that need one, the reference: the
    adapter the run started from (`ctx.start_adapter`), cached before training or live."""
    from localtune.train.task import TaskData

    cfg = ctx.cfg
    pairs, vpairs = load_pair_files(ctx)
    loss_fn.start_weights = starting_adapter(ctx.start_adapter)
    record = {"train_pairs": len(pairs), "reference": cfg.ref if cfg.uses_reference else "none"}
    ref = vref = None
    if cfg.uses_reference and cfg.ref == "cached":
        def cache(ps, role):
            return cached_reference(ctx.model, ps, ctx.run_dir, role=role, batch_size=cfg.batch_size,
                                    start_weights=loss_fn.start_weights, adapter_dir=ctx.start_adapter,
                                    on_event=ctx.emit, phase=ctx.phase,
                                    keep_own=ctx.resuming and ctx.start_adapter_unverified)
        ref = cache(pairs, "train")
        vref = cache(vpairs, "valid") if vpairs else None
    data = TaskData(PairStream(pairs, cfg.batch_size, cfg.seed, ref, shard=ctx.shard), record=record)
    if vpairs:
        data.valid = lambda: eval_pair_batches(vpairs, cfg.batch_size, cfg.val_batches, vref)
        data.record["valid_pairs"] = len(vpairs)
    return data


def dpo_task(cfg):
    """DPO and its family: preference pairs, a reference (cached or live), weighted by pairs."""
    from localtune.train.task import TrainingTask

    loss_fn = PreferenceLoss(cfg)
    return TrainingTask("dpo", loss_fn, lambda ctx: build_dpo_data(ctx, loss_fn), weight_unit="pairs",
                        metrics=DPO_METRICS)


# Reported by every DPO run: how likely the chosen answers still are (it falls when DPO breaks them).
DPO_METRICS = (Metric("chosen_nll", "chosen NLL", plot="loss", fmt=".3f", summary=True),
               Metric("val_chosen_nll", "val chosen NLL", plot="loss", fmt=".3f", card=True, better="lower"))


# --- evaluation for demos -----------------------------------------------------------------------

def preference_report(model, tokenizer, path, *, batch_size: int = 8, max_seq_len: int = 2048) -> dict:
    """One pass over a pairs file, scoring three things per pair from the same forward passes:
    `base` / `tuned`: how often the model with adapters off / on gives chosen a higher log-prob
    sum than rejected; `reward`: how often the tuned model's gain over the base (DPO's implicit
    reward, reference = base) is larger on chosen than on rejected."""
    from localtune.data.preferences import load_pairs

    pairs = load_pairs(str(path), tokenizer, max_seq_len=max_seq_len)
    wins = {"base": [], "tuned": [], "reward": []}
    with eval_mode(model):
        for batch in eval_pair_batches(pairs, batch_size):
            tuned, _ = sequence_logps(model, batch)
            base = live_reference(model, batch)
            for name, lp in (("base", base), ("tuned", tuned), ("reward", tuned - base)):
                wins[name] += _chosen_wins(lp, batch)
    return {k: float(np.mean(v)) for k, v in wins.items()} | {"pairs": len(pairs)}


def preference_accuracy(model, tokenizer, path, *, batch_size: int = 8, max_seq_len: int = 2048) -> float:
    """How often the model as it is now gives chosen a higher log-prob sum than rejected: one
    forward pass per batch (preference_report's `tuned` alone, for a caller that scores the base
    and several adapters and needs each only once)."""
    from localtune.data.preferences import load_pairs

    pairs = load_pairs(str(path), tokenizer, max_seq_len=max_seq_len)
    wins = []
    with eval_mode(model):
        for batch in eval_pair_batches(pairs, batch_size):
            wins += _chosen_wins(sequence_logps(model, batch)[0], batch)
    return float(np.mean(wins))


def _chosen_wins(logps, batch) -> list[bool]:
    b = len(batch.rows)  # chosen sequences first, then the rejected ones
    return list(np.array(logps[:b] - logps[b:]) > 0)
