"""THE training loop: one function, shared by every training mode.

It knows none of them: it gets a loss function `loss_fn(model, batch) -> (loss, weight, metrics)`
(see train/task.py), a batch source, and callbacks. It never prints: everything it has to say goes
to `on_event(dict)` (events.py). `should_stop()` lets the caller end the run cleanly (Ctrl-C, the
TUI's stop); `save_checkpoint(state)` is called at save points and before a stop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sized
from dataclasses import dataclass, field
from typing import Callable, Iterable

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_map

from localtune import backend, events
from localtune.events import PhaseReporter


class NonFiniteLoss(RuntimeError):
    def __init__(self, step: int, what: str):
        super().__init__(f"non-finite {what} at step {step}")
        self.step = step


@dataclass
class LoopSettings:
    iters: int
    grad_accum: int = 1
    report_every: int = 10
    eval_every: int = 0  # 0: only at the end
    save_every: int = 0  # 0: only at the end
    grad_clip: float | None = None
    seed: int = 0
    skip_nonfinite: bool = False
    # Mean target tokens per optimizer step over an epoch; when set, each step's gradient is
    # scaled by its tokens / this, so every token weighs the same whatever its batch's size.
    targets_per_step: float | None = None
    weight_unit: str = "tokens"  # what the loss's weight counts (train/task.py), for the reports
    # Rows per forward/backward for batches that can be split (`batch.split(n)`, online RL: answers);
    # 0: whole batches. The parts' weighted gradients sum to the whole batch's (train/task.py).
    micro_batch: int = 0


@dataclass
class LoopState:
    step: int = 0  # optimizer steps done
    tokens: int = 0  # real tokens seen (inputs)
    trained_tokens: int = 0  # target tokens seen (those the loss reads)
    weight_total: float = 0.0  # sum of the loss weights, in LoopSettings.weight_unit
    elapsed: float = 0.0  # training seconds over all sessions
    skipped: int = 0  # non-finite batches skipped
    extra: dict = field(default_factory=dict)


def _step_seed(seed: int, step: int) -> int:
    # Randomness (dropout) is a pure function of (seed, step): resume replays it exactly.
    return (seed * 1_000_003 + step) % (2**31)


def evaluate(model: nn.Module, loss_fn, batches: Iterable, progress=None) -> dict:
    """Weighted mean loss (and metrics) over `batches`, with no gradient and no dropout (the model
    in eval mode, each module's own flag back after). `progress(done)` after each batch."""
    from localtune.lora import eval_mode

    total = ntok = 0.0
    sums: dict[str, float] = {}
    with eval_mode(model):
        for i, batch in enumerate(batches, start=1):
            loss, n, metrics = loss_fn(model, batch)
            mx.eval(loss, n, metrics)
            n = float(n)
            total += float(loss) * n
            ntok += n
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            if progress:
                progress(i)
    if ntok == 0:
        return {"val_loss": float("nan")}
    out = {"val_loss": total / ntok}
    out.update({f"val_{k}": v / ntok for k, v in sums.items()})
    return out


def accumulate(loss_and_grad, model, batches: Iterable, micro_batch: int = 0, summed: bool = False):
    """One optimizer step's (grads, loss, weight, counts, metrics) over `batches` (its --grad-accum
    batches): the weighted mean of their losses and gradients, so k batches of b rows equal one
    batch of k*b exactly. A batch that can be split (`batch.split`, train/task.py) is
    differentiated `micro_batch` rows at a time (0: whole), each part evaluated before the next.
    `summed`: weight even a single batch (the caller knows more than one will come)."""
    grads_sum, loss_sum, weight_sum, metrics_sum = None, 0.0, 0.0, {}
    counts = {"tokens": 0, "targets": 0}
    for batch in batches:
        split = getattr(batch, "split", None)
        parts = split(micro_batch) if micro_batch and split else [batch]
        summed = summed or len(parts) > 1
        for part in parts:
            (loss, weight, metrics), grads = loss_and_grad(model, part)
            if summed:
                grads = tree_map(lambda g: g * weight, grads)
                grads_sum = grads if grads_sum is None else tree_map(mx.add, grads_sum, grads)
            else:
                grads_sum = grads
            loss_sum = loss_sum + loss * weight
            weight_sum = weight_sum + weight
            metrics_sum = {k: metrics_sum.get(k, 0.0) + v * weight for k, v in metrics.items()}
            if len(parts) > 1:
                # Evaluated now, so this part's activations are freed before the next part's forward:
                # what keeps a split batch's peak memory at one part's.
                mx.eval(grads_sum, loss_sum, weight_sum, metrics_sum)
        if not batch.dummy:  # a data-parallel stand-in trains nothing
            counts["tokens"] += batch.ntokens
            counts["targets"] += batch.ntargets
    if summed:
        grads_sum = tree_map(lambda g: g / weight_sum, grads_sum)
    metrics = {k: v / weight_sum for k, v in metrics_sum.items()}
    return grads_sum, loss_sum / weight_sum, weight_sum, counts, metrics


def train(
    model: nn.Module,
    optimizer,
    loss_fn: Callable,
    next_batch: Callable[[], object],
    settings: LoopSettings,
    state: LoopState,
    *,
    valid_batches: Callable[[], Iterable] | None = None,
    on_event: Callable[[dict], None] = lambda e: None,
    should_stop: Callable[[], bool] = lambda: False,
    save_checkpoint: Callable[[LoopState], None] | None = None,
    all_reduce: Callable | None = None,
    phase: PhaseReporter | None = None,
    answer_eval: Callable[[int], dict] | None = None,
    keep_best=None,
) -> str:
    """Run optimizer steps until settings.iters; returns "finished" or "stopped".

    Raises NonFiniteLoss (after nothing was applied for that step) unless skip_nonfinite.
    `phase` reports the stage (training, evaluating n/N, saving, stopping) as `phase` events
    (the session gives one; without it the loop reports none).
    At each eval point (every eval_every steps, the last step, and step 0 as the curve's start):
    the validation loss over `valid_batches` and the numbers of `answer_eval(step)` (generation-based
    eval) go out as one `val` event. `keep_best` (train/keep_best.KeepBest) sees those numbers: its
    state is kept in `state.extra` (so checkpoints carry it), every eval point is then also a save
    point, and when its patience runs out the loop saves, emits `early_stop` and returns "finished".
    """
    loss_and_grad = nn.value_and_grad(model, loss_fn)
    accum = settings.grad_accum
    phase = phase or PhaseReporter(events.ignore)
    window = _new_window()
    backend.reset_peak_memory()

    def step_once():
        batches = (next_batch() for _ in range(accum))  # drawn one at a time, as the loss needs them
        return accumulate(loss_and_grad, model, batches, settings.micro_batch, summed=accum > 1)

    def finite(*arrays) -> bool:
        return all(bool(mx.all(mx.isfinite(a)).item()) for a in arrays)

    def validate(step: int) -> dict:
        t = time.perf_counter()
        result = {}
        if valid_batches:
            batches = valid_batches()
            progress = phase.counter("evaluating", len(batches)) if isinstance(batches, Sized) else None
            result = evaluate(model, loss_fn, batches, progress)
        if answer_eval:
            result.update(answer_eval(step))
        on_event(events.Val(step, result.get("val_loss"), time.perf_counter() - t,
                            {k: v for k, v in result.items() if k != "val_loss"}).to_dict())
        return result

    def judge(step: int) -> bool:
        """Evaluate; True when keep_best's patience ran out."""
        values = validate(step)
        if keep_best is None:
            return False
        stop = keep_best.update(step, values)
        state.extra[keep_best.key] = keep_best.state()
        return stop

    evaluates = bool(valid_batches or answer_eval)
    if evaluates and state.step == 0:
        judge(0)  # the curve's starting point: the model before any update
    phase("training")
    while state.step < settings.iters:
        if should_stop():
            phase("stopping")
            if window["steps"]:  # the partial window's loss, so the curve ends where the run did
                on_event(_report(state, window, optimizer, settings))
            if save_checkpoint:
                save_checkpoint(state)
            on_event(events.Stopped(state.step).to_dict())
            return "stopped"
        mx.random.seed(_step_seed(settings.seed, state.step))
        t0 = time.perf_counter()
        grads, loss, ntok, counts, metrics = step_once()
        if all_reduce:  # data parallel: every rank gets the weighted average (train/distributed.py)
            grads, loss, ntok, counts, metrics = all_reduce(grads, loss, ntok, counts, metrics)
        if settings.targets_per_step:
            # Length-bucketed batches differ in size: a per-batch mean would give a batch of short
            # rows the weight of one of long rows, and tilt training toward short rows.
            grads = tree_map(lambda g: g * (ntok / settings.targets_per_step).astype(g.dtype), grads)
        if settings.grad_clip:
            grads, _ = optimizer_clip(grads, settings.grad_clip)
        mx.eval(loss, ntok, grads)
        if not finite(loss) or not _grads_finite(grads):
            what = "loss" if not finite(loss) else "gradient"
            if not settings.skip_nonfinite:
                raise NonFiniteLoss(state.step + 1, what)
            state.skipped += 1
            state.step += 1
            on_event(events.Skipped(state.step, f"non-finite {what}").to_dict())
            # A skipped step is still a save point: skipping the last one must not lose the adapter.
            if save_checkpoint and (state.step == settings.iters
                                    or (settings.save_every and state.step % settings.save_every == 0)):
                phase("saving")
                save_checkpoint(state)
                phase("training")
            continue
        optimizer.update(model, grads)
        mx.eval(model.trainable_parameters(), optimizer.state)
        dt = time.perf_counter() - t0

        state.step += 1
        state.tokens += counts["tokens"]
        state.trained_tokens += counts["targets"]
        state.weight_total += float(ntok)
        state.elapsed += dt
        window["loss"] += float(loss) * float(ntok)
        window["ntok"] += float(ntok)
        window["tokens"] += counts["tokens"]
        window["time"] += dt
        window["steps"] += 1
        for k, v in metrics.items():
            window["metrics"][k] = window["metrics"].get(k, 0.0) + float(v)

        last = state.step == settings.iters
        if state.step % settings.report_every == 0 or last or state.step == 1:
            on_event(_report(state, window, optimizer, settings))
            window = _new_window()
        evaluate_now = evaluates and (last or (settings.eval_every and state.step % settings.eval_every == 0))
        stop_early = judge(state.step) if evaluate_now else False
        # With keep_best every eval point is a save point: the best step must have a checkpoint.
        save_now = save_checkpoint and (last or stop_early or (keep_best is not None and evaluate_now)
                                        or (settings.save_every and state.step % settings.save_every == 0))
        if save_now:
            phase("saving")
            save_checkpoint(state)
        if stop_early:
            on_event(events.EarlyStop(state.step, keep_best.metric, keep_best.bad_evals,
                                      keep_best.best_step, keep_best.best, keep_best.condition_text).to_dict())
            return "finished"  # early: keep_best.stopped_at says so
        if (evaluate_now or save_now) and not last:
            phase("training")
    return "finished"


def _new_window() -> dict:
    return {"loss": 0.0, "ntok": 0.0, "tokens": 0, "time": 0.0, "steps": 0, "metrics": {}}


def _grads_finite(grads) -> bool:
    from mlx.utils import tree_flatten

    leaves = [g for _, g in tree_flatten(grads)]
    if not leaves:
        return True
    total = sum(mx.sum(g.astype(mx.float32)) for g in leaves)
    return bool(mx.isfinite(total).item())


def optimizer_clip(grads, max_norm: float):
    import mlx.optimizers as optim

    return optim.clip_grad_norm(grads, max_norm)


def _report(state: LoopState, window: dict, optimizer, settings: LoopSettings) -> dict:
    ntok = window["ntok"] or 1.0
    steps = window["steps"] or 1
    loss = window["loss"] / ntok
    return events.Train(
        step=state.step,
        train_loss=loss if math.isfinite(loss) else None,
        lr=float(optimizer.learning_rate),
        tokens_per_sec=window["tokens"] / window["time"] if window["time"] else 0.0,
        trained_tokens=state.trained_tokens,
        tokens=state.tokens,
        weight_total=state.weight_total,
        weight_unit=settings.weight_unit,
        peak_memory_gb=backend.peak_memory_gb(),
        elapsed=state.elapsed,
        time=time.time(),
        metrics={k: v / steps for k, v in window["metrics"].items()},
    ).to_dict()
