"""The training-task protocol: what a training mode (SFT, DPO; next a reward model, GRPO) gives the
session, and what the session gives it. A mode is one module with a loss and a batch builder, plus
its config (docs/ADDING_A_MODE.md):

    TrainingTask(kind, loss_fn, build_data, weight_unit, metrics)

- `loss_fn(model, batch) -> (loss, weight, metrics)`: a scalar loss (the mean over the batch), its
  weight in `weight_unit` ("tokens" for SFT, "pairs" for DPO: gradient accumulation, data
  parallelism and the reported means are weighted by it), and named scalar metrics (means over the
  batch, weighted like the loss; any names: they become fields of the train/val events).
- `build_data(ctx) -> TaskData`: reads the data files the session resolved (`ctx.files`), reports
  through `ctx.emit`, and returns the training stream, the validation batches and the fields it
  adds to the run's record. The stream walks the global batch order and keeps this process's part
  (`ctx.shard`, see data.batching.Shard). A mode whose batches come from the model itself (GRPO:
  rollouts of the current policy) builds a stream that holds `ctx.model` and generates in `next()`;
  the loop calls `next()` outside the gradient and after seeding the step's RNG, so rollouts replay
  on resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

from localtune.data.batching import Shard
from localtune.events import Metric, OnEvent, PhaseReporter

@runtime_checkable
class TrainBatch(Protocol):
    """What the loop reads from a batch besides handing it to the loss.

    Optional: `split(n) -> list[batch]`, micro-batches of at most n rows that the loop (with
    LoopSettings.micro_batch) differentiates one at a time and sums weighted by their loss
    weights; a mode that offers it makes the parts' weights and losses such that this weighted
    mean is exactly the whole batch's loss (online RL: train/grpo.py, train/online_dpo.py)."""

    dummy: bool  # a zero-weight stand-in for a rank with no items (Shard.take)

    @property
    def ntokens(self) -> int:
        """Real tokens in the batch (throughput: tokens/s)."""

    @property
    def ntargets(self) -> int:
        """Tokens the loss reads (the run's trained_tokens)."""


class TrainStream(Protocol):
    """Endless training batches; `position` (JSON) and `seek` are all that resume needs."""

    batches_per_epoch: int
    # Mean target tokens per global batch over an epoch, or None when the loss weight is not
    # tokens: with --weight-by-tokens the loop scales each step by its tokens over this mean.
    targets_per_batch: float | None

    @property
    def position(self) -> dict: ...

    def seek(self, position: dict) -> None: ...

    def next(self) -> TrainBatch: ...


class EvalBatches(Protocol):
    """Validation batches: iterated once per evaluation; len() is their count (for progress)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[TrainBatch]: ...


LossFn = Callable[[Any, Any], tuple[Any, Any, dict]]


@dataclass(frozen=True)
class TaskContext:
    """What the session hands a mode's build_data."""

    model: Any  # the model with its adapter attached (a generating stream may keep it)
    tokenizer: Any
    cfg: Any  # the mode's config; batch_size is the global batch size (all ranks together)
    run_dir: Path
    files: dict[str, Path]  # the data files the session resolved and hashed: "train", maybe "valid"
    emit: OnEvent  # events (data, data_problem, reference, ...) go to the run and the caller
    phase: PhaseReporter  # e.g. ctx.phase.counter("scoring_reference", n) for a long preparation
    shard: Shard = Shard()  # this process's part of each batch
    start_adapter: Path | None = None  # the run's own copy of the adapter it started from
    # True for a run recorded before those copies: start_adapter is then the --adapter path
    # itself, which may have changed since the run started.
    start_adapter_unverified: bool = False
    resuming: bool = False


@dataclass
class TaskData:
    train: TrainStream
    valid: Callable[[], EvalBatches] | None = None  # a fresh pass over the validation batches
    record: dict = field(default_factory=dict)  # fields for the run's record (train_rows, ...)


@dataclass(frozen=True)
class ModelPart:
    """Trainable weights a mode adds to the model besides the LoRA adapter (the reward model's value
    head). The mode puts the module in the model tree in build_data (after the adapter is attached,
    so the loop's optimizer sees it as trainable); the session writes it beside the adapter (the
    run directory and every checkpoint, atomically) and restores it with the checkpoint on resume.
    It gets its own file, so the adapter stays a plain mlx_lm adapter for every other reader."""

    file: str  # its file name (a runs.layout name, e.g. layout.REWARD_HEAD_FILE)
    weights: Callable[[Any], dict]  # model -> {name: array}: what to save
    load: Callable[[Any, dict], None]  # (model, {name: array}) -> None; RunError when they do not fit
    metadata: Callable[[Any], dict] = lambda model: {}  # model -> str: str, stored in the file's header


@dataclass(frozen=True)
class TrainingTask:
    kind: str  # "sft", "dpo", ...: the run's kind and the default run name's prefix
    loss_fn: LossFn  # may be an object build_data prepares (DPO gives it the starting weights)
    build_data: Callable[[TaskContext], TaskData]
    weight_unit: str = "tokens"  # what loss_fn's weight counts: "tokens", "pairs", "completions", ...
    metrics: tuple[Metric, ...] = ()  # how to show metrics not in events.METRICS (stored in the record)
    parts: tuple[ModelPart, ...] = ()  # the mode's own trainable weights besides the adapter


TaskFactory = Callable[[Any], TrainingTask]  # config -> task (called once per run)
