"""A training session: config -> model + adapter + data -> the loop -> a complete run directory.

    run_training(cfg, task_factory)       the page to read first; each stage is a few lines below
      open_run      the run directory and its lock; on resume the saved config
      load_model    the base model, the adapter (new, or the one the run started from)
      build_data    the data files (resolved, hashed, checked on resume), the task's batches
      restore       on resume: the newest good checkpoint and the data position
      loop          train.loop.train with the task's loss and batches (and, with --eval-file, the
                    answers judged at each eval point; with --keep-best, the best step tracked)
      finish        the final adapter (--keep-best: the best checkpoint's), loss.png, the record's status

Every mode (SFT, DPO, ...) is a TrainingTask (train/task.py); this file knows none of them.
Failures leave the record saying why and keep the last good checkpoint; a stop checkpoints.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import localtune  # noqa: F401
import mlx.core as mx
import mlx.optimizers as optim

from localtune import backend, events
from localtune.config import TrainConfig
from localtune.errors import LocaltuneError, RunError
from localtune.events import PhaseReporter
from localtune.lora import LoraSpec, attach_lora, load_adapter, load_adapter_weights, save_adapter, spec_summary
from localtune.models.identity import warn_if_other_base
from localtune.outputs import check_new_run_dir
from localtune.runs import RECORD_VERSION, RunDir, default_run_dir, layout, read_run
from localtune.runs.checkpoints import latest_good_checkpoint
from localtune.train import checkpoint as ckpt
from localtune.train import provenance, reporting
from localtune.train.distributed import DataParallel
from localtune.train.loop import LoopSettings, LoopState, NonFiniteLoss, train
from localtune.train.memory import enable_grad_checkpoint
from localtune.train.schedule import build_schedule
from localtune.eval.during_training import AnswerEval
from localtune.train.keep_best import KeepBest
from localtune.train.task import TaskContext, TaskData, TaskFactory, TrainingTask

# Config keys naming local files (made absolute in the record; resolved when an old record has them relative).
RESOLVED_KEYS = ("model", "data", "valid", "adapter", "eval_file", "eval_checks")
# Settings that may change on resume; any other difference is refused (it would not be the same run).
RESUMABLE_CHANGES = {"iters", "epochs", "eval_every", "save_every", "report_every",
                     "keep_checkpoints", "skip_nonfinite", "lr", "val_batches", "report_to"}


def run_training(
    cfg: TrainConfig | None,
    task_factory: TaskFactory,
    *,
    resume: str | Path | None = None,
    on_event: events.OnEvent = events.ignore,
    should_stop: Callable[[], bool] = lambda: False,
    overrides: dict | None = None,
    cfg_cls=TrainConfig,
    allow_changed_data: bool = False,
    checkpoint_pause: Callable[[], None] | None = None,
) -> Path:
    """Train to completion (or a stop); returns the run directory.

    resume: a run directory to continue (cfg is then its saved config, with `overrides` that keep
    it the same run). allow_changed_data: resume even though a data file changed since the start.
    checkpoint_pause: runs between a checkpoint's files (fault tests)."""
    s = open_run(cfg, task_factory, resume, overrides or {}, cfg_cls, on_event)
    s.allow_changed_data, s.checkpoint_pause = allow_changed_data, checkpoint_pause
    s.run.acquire()
    try:
        with recorded_outcome(s):
            start_record(s)
            load_model(s)
            build_data(s)
            restore(s)
            outcome = loop(s, should_stop)
            finish(s, outcome)
        return s.run.path
    finally:
        s.out.close()
        s.run.release()


@dataclass
class Session:
    """What the stages share: set by open_run, filled in by the stages in order."""

    cfg: TrainConfig
    task: TrainingTask
    run: RunDir
    dp: DataParallel
    out: "RunEvents"
    resume: bool
    record_before: dict | None = None  # the record as it was before this session (resume)
    allow_changed_data: bool = False
    checkpoint_pause: Callable[[], None] | None = None
    model: object = None
    tokenizer: object = None
    spec: LoraSpec | None = None
    start_adapter: Path | None = None
    answer_eval: AnswerEval | None = None  # --eval-file: what each eval point asks the model
    keep_best: KeepBest | None = None  # --keep-best: the best step so far (restored on resume)
    data: TaskData | None = None
    optimizer: object = None
    iters: int = 0
    state: LoopState = field(default_factory=LoopState)

    @property
    def emit(self) -> events.OnEvent:
        return self.out


# --- stages -----------------------------------------------------------------------------------------

def open_run(cfg, task_factory: TaskFactory, resume, overrides: dict, cfg_cls, on_event) -> Session:
    """The config (on resume: the saved one), the task, and the run directory (not yet locked)."""
    dp = DataParallel()  # identity hooks unless started by mlx.launch
    record_before = None
    if resume:
        run = dp.run(RunDir(resume))
        record_before = run.read()
        cfg, notes = resume_config(run, overrides, cfg_cls)
    else:
        notes = []
    task = task_factory(cfg)  # once: a task may hold state (DPO's reference weights)
    if not resume:
        run = dp.run(RunDir(cfg.out or default_run_dir(task.kind)))
        if run.exists() and not ckpt.failed_before_start(run):  # a run that never started may be retried
            raise RunError(f"{run.path}: already a run directory; use --resume {run.path} or another --out")
        check_new_run_dir(run.path)  # never into a directory of someone else's files
        cfg = cfg.with_absolute_paths().replace(out=os.path.abspath(run.path))
    out = RunEvents(run, on_event)
    s = Session(cfg, task, run, dp, out, bool(resume), record_before)
    for note in notes:
        s.emit(events.Notice(note).to_dict())
    # Before the model loads: a bad prompt row or checks file costs seconds, not a model load.
    s.answer_eval = AnswerEval.for_config(cfg, on_event=on_event)
    return s


def start_record(s: Session) -> None:
    """The record says who is working on the run from now on."""
    before = s.record_before or {}
    if not s.resume and s.run.metrics_path.exists():
        s.run.truncate_metrics(-1)  # a retry of a run that failed before its first step: start clean
    s.run.write({**before, "kind": s.task.kind, "status": "starting", "pid": os.getpid(),
                 "started": before.get("started", time.time()), "config": s.cfg.to_dict(),
                 "record_version": RECORD_VERSION, "weight_unit": s.task.weight_unit,
                 "metrics": [m.to_dict() for m in run_metrics(s)]})
    s.out.open_reports(s.cfg.report_to if s.dp.is_main else None)
    backend.set_wired_limit()
    mx.random.seed(s.cfg.seed)


def load_model(s: Session) -> None:
    """The base model with its adapter: a new one, or the one the run started from."""
    from localtune.models import load_model as load, resolve_model

    s.out.phase("loading_model")
    model_path = resolve_model(s.cfg.model, on_event=s.emit)
    s.model, s.tokenizer = load(model_path)
    s.emit(events.Model(str(model_path)).to_dict())
    base = provenance.base_fingerprint(s.model)
    if s.cfg.adapter:
        s.spec = load_adapter(s.model, start_adapter(s))
        warn_if_other_base(s.cfg.adapter, model_path, s.emit)
        keep_start_adapter(s)
    else:
        s.spec = s.cfg.lora_spec()
        attach_lora(s.model, s.spec)
    if s.resume:
        check_base(s, base)
    s.run.update(model_path=os.path.abspath(model_path), base_hash=base)
    if s.cfg.grad_checkpoint:
        enable_grad_checkpoint(s.model.layers)
    mx.eval(s.model.parameters())


def build_data(s: Session) -> None:
    """The data files (checked against the record on resume), then the task's batches."""
    from localtune.data.hub import VALID_SPLITS, resolve_dataset

    s.out.phase("preparing_data")
    files = {"train": Path(resolve_dataset(s.cfg.data, split="train", on_event=s.emit))}
    if s.cfg.valid:
        files["valid"] = Path(resolve_dataset(s.cfg.valid, split=VALID_SPLITS, on_event=s.emit))
    # The eval prompts and checks are hashed with the data: other prompts would be another curve.
    judged = {role: Path(p) for role, p in (("eval_file", s.cfg.eval_file), ("eval_checks", s.cfg.eval_checks))
              if p and Path(p).is_file()}
    check_data(s, {**files, **judged})
    ctx = TaskContext(s.model, s.tokenizer, s.dp.config(s.cfg), s.run.path, files, s.emit, s.out.phase,
                      shard=s.dp.shard, start_adapter=s.start_adapter, resuming=s.resume,
                      start_adapter_unverified=s.resume and bool(s.cfg.adapter)
                      and s.start_adapter != s.run.start_adapter_dir)
    s.data = s.task.build_data(ctx)
    s.iters = iters_for(s.cfg, s.data.train.batches_per_epoch)
    schedule = build_schedule(s.cfg.lr, s.iters, s.cfg.warmup, s.cfg.schedule)
    s.optimizer = optim.AdamW(learning_rate=schedule, weight_decay=s.cfg.weight_decay)


def restore(s: Session) -> None:
    """On resume: the newest good checkpoint (newer damaged ones are reported and passed over)."""
    if not s.resume:
        return
    if s.dp.is_main:  # other ranks never write, and must not delete rank 0's temp files
        ckpt.remove_partial_writes(s.run.path)  # a killed writer's temp files; we hold the lock
        # a kill between a save and its prune; the best checkpoint (--keep-best) stays
        ckpt.prune(s.run.path, s.cfg.keep_checkpoints, protect=ckpt.best_steps(s.run.path, KeepBest.key))
    found = ckpt.restore_latest(s.run.path, s.model, s.optimizer, on_event=s.emit, parts=s.task.parts)
    if found is not None:
        path, s.state, position = found
        s.data.train.seek(position)
        s.keep_best = KeepBest.for_config(s.cfg, s.state.extra.get(KeepBest.key))
    # No checkpoint yet (killed early): start over; same seed, so the same run as unbroken.
    s.run.truncate_metrics(s.state.step if found is not None else -1)
    s.emit(events.Resumed(s.state.step, str(found[0]) if found else "none (starting over)").to_dict())


def loop(s: Session, should_stop: Callable[[], bool]) -> str:
    cfg = s.cfg
    s.run.update(status="running", iters=s.iters, **s.data.record, **spec_summary(s.model))
    s.emit(events.Start(str(s.run.path), s.iters, s.state.step, s.data.train.batches_per_epoch,
                        weight_unit=s.task.weight_unit, metrics=[m.to_dict() for m in run_metrics(s)] or None,
                        **spec_summary(s.model)).to_dict())
    if s.keep_best is None:  # a new run (a resume restored its own)
        s.keep_best = KeepBest.for_config(cfg)
    settings = LoopSettings(iters=s.iters, grad_accum=cfg.grad_accum, report_every=cfg.report_every,
                            eval_every=cfg.eval_every, save_every=cfg.save_every, grad_clip=cfg.grad_clip,
                            seed=cfg.seed, skip_nonfinite=cfg.skip_nonfinite,
                            targets_per_step=targets_per_step(cfg, s.data.train, s.task.weight_unit),
                            weight_unit=s.task.weight_unit, micro_batch=getattr(cfg, "micro_batch", 0))
    return train(s.model, s.optimizer, s.dp.loss(s.task.loss_fn), s.data.train.next, settings, s.state,
                 valid_batches=s.data.valid, on_event=s.emit, should_stop=s.dp.should_stop(should_stop),
                 save_checkpoint=(lambda state: save(s, state)) if s.dp.is_main else None,
                 all_reduce=s.dp.all_reduce, phase=s.out.phase,
                 answer_eval=(lambda step: judge_answers(s, step)) if s.answer_eval else None,
                 keep_best=s.keep_best)


def finish(s: Session, outcome: str) -> None:
    best = None
    if s.dp.is_main:
        # Every file of the run is complete before the record says so: a kill before this point
        # is resumed (a resume that starts at the last step only rewrites these files).
        s.out.phase("saving")
        if outcome == "finished":
            best = take_best(s)
        save_adapter(s.model, s.run.path, s.spec)
        ckpt.save_parts(s.model, s.run.path, s.task.parts)
        reporting.finish_run(s.run.path, s.run.metrics())  # loss.png
    kb = s.keep_best
    extra = {} if kb is None else {"best_step": kb.best_step, "best_metric": kb.metric, "best_value": kb.best,
                                   "early_stopped_at": kb.stopped_at}
    s.run.update(status=outcome, finished=time.time(), step=s.state.step, elapsed=s.state.elapsed, **extra)
    if best is not None:
        s.emit(best.to_dict())
    s.emit(events.Done(outcome, str(s.run.path), s.state.step).to_dict())


# --- helpers of the stages --------------------------------------------------------------------------

def save(s: Session, state: LoopState) -> None:
    """A checkpoint, then the run's adapter and the mode's parts (what chat, export and a reward
    model's readers read)."""
    protect = (s.keep_best.best_step,) if s.keep_best and s.keep_best.best_step is not None else ()
    try:
        path = ckpt.save_checkpoint(s.run.path, s.model, s.optimizer, state, s.spec,
                                    data_position=s.data.train.position, keep=s.cfg.keep_checkpoints,
                                    pause=s.checkpoint_pause, protect=protect, parts=s.task.parts)
        save_adapter(s.model, s.run.path, s.spec)
        ckpt.save_parts(s.model, s.run.path, s.task.parts)
    except OSError as e:  # disk full, permissions: a clear message, saved files untouched
        raise ckpt.save_error(s.run.path, state.step, e) from None
    s.emit(events.Checkpoint(state.step, str(path)).to_dict())


def run_metrics(s: Session) -> tuple[events.Metric, ...]:
    """The mode's Metric declarations and those of the eval during training (stored in the record)."""
    return tuple(s.task.metrics) + (s.answer_eval.metrics if s.answer_eval else ())


def judge_answers(s: Session, step: int) -> dict:
    """One eval point's eval_* numbers; rank 0 writes the answers to RUN/eval/step-N/."""
    out = s.run.eval_dir(layout.checkpoint_name(step)) if s.dp.is_main else None
    return s.answer_eval(s.model, s.tokenizer, step, phase=s.out.phase, out_dir=out)


def take_best(s: Session) -> events.BestCheckpoint | None:
    """With --keep-best: put the best checkpoint's adapter weights in the model (they become the
    run's adapter) and say which step it was. A best checkpoint that cannot be read (damaged since)
    leaves the last step's weights, with a notice."""
    kb = s.keep_best
    if kb is None:
        return None
    step = kb.best_step
    if step is not None and step != s.state.step:
        path = ckpt.checkpoint_dir(s.run.path, step)
        problem = ckpt.checkpoint_problem(path)
        if problem is None:
            try:
                load_adapter_weights(s.model, path / layout.ADAPTER_FILE)
                for part in s.task.parts:  # the mode's own weights (a reward head) from the same step
                    part.load(s.model, dict(mx.load(str(path / part.file))))
            except (OSError, ValueError, RuntimeError, LocaltuneError) as e:
                problem = str(e)
        if problem is not None:
            s.emit(events.Notice(f"{path}: the best checkpoint (--keep-best {kb.metric}) cannot be read "
                                 f"({problem}); the run's adapter is the last step's ({s.state.step})").to_dict())
            step = s.state.step
    s.run.update(adapter_step=step if step is not None else s.state.step)
    return events.BestCheckpoint(kb.best_step if step == kb.best_step else None, kb.metric,
                                 kb.best if step == kb.best_step else None, s.state.step,
                                 str(ckpt.checkpoint_dir(s.run.path, step)) if step is not None else None,
                                 kb.condition_text)


def start_adapter(s: Session) -> Path:
    """Where to load the adapter the run starts from: --adapter for a new run; on resume the run's
    own copy of it (kept by keep_start_adapter), so a resume starts from the same weights even if
    the original was trained on since, or deleted."""
    copy = s.run.start_adapter_dir
    if not s.resume or not copy.is_dir():  # new, or recorded before runs kept a copy
        s.start_adapter = Path(s.cfg.adapter)
        return s.start_adapter
    saved = (s.record_before or {}).get("adapter_hash")
    try:
        changed = saved is not None and provenance.adapter_hash(s.cfg.adapter) != saved
    except OSError:
        changed = True
    if changed:
        s.emit(events.Notice(f"the adapter this run started from ({s.cfg.adapter}) changed since the run "
                             f"started; the run goes on from its own copy ({copy})").to_dict())
    s.start_adapter = copy
    return copy


def keep_start_adapter(s: Session) -> None:
    """A new run copies the adapter it starts from into itself, with its hash."""
    if s.resume or not s.dp.is_main:
        return
    copy = provenance.copy_adapter(s.cfg.adapter, s.run.start_adapter_dir)
    s.run.update(adapter_hash=provenance.adapter_hash(copy))
    s.start_adapter = copy


def check_base(s: Session, base: str) -> None:
    """On resume: the base weights must be those the run started from."""
    saved = (s.record_before or {}).get("base_hash")
    if saved is None or saved == base:
        return
    last = latest_good_checkpoint(s.run.path)
    if last is not None:
        load_adapter_weights(s.model, last / layout.ADAPTER_FILE)  # another shape: its own clear error
    raise provenance.ResumeRefused(
        f"{s.run.path}: the base model {s.cfg.model or 'default'} changed since this run started "
        "(its weights differ); resuming would continue on another model: restore it, or start a new run")


def check_data(s: Session, files: dict[str, Path]) -> None:
    """Record the data files' hashes; on resume refuse (or, allowed, note) a changed file."""
    hashes = provenance.data_hashes(files) if s.dp.is_main else {}
    saved = (s.record_before or {}).get("data_hashes")
    if s.resume and s.dp.is_main:
        if saved is None:
            s.emit(events.Notice(f"{s.run.path}: no data hashes recorded (an older run): cannot check that "
                                 "the data is the one the run started with").to_dict())
        elif changed := provenance.changed_data(saved, hashes, files):
            what = ", ".join(changed)
            if not s.allow_changed_data:
                raise provenance.ResumeRefused(
                    f"{s.run.path}: the data changed since this run started: {what}; resuming would "
                    "train on other data than the run's start (restore it, start a new run, or resume "
                    "with --allow-changed-data)")
            s.emit(events.Notice(f"the data changed since this run started: {what}; "
                                 "going on with it (--allow-changed-data)").to_dict())
    s.run.update(data_hashes=hashes)


def iters_for(cfg: TrainConfig, batches_per_epoch: int) -> int:
    if cfg.iters:
        return cfg.iters
    epochs = cfg.epochs or 1.0
    return max(1, math.ceil(epochs * batches_per_epoch / cfg.grad_accum))


def targets_per_step(cfg: TrainConfig, stream, weight_unit: str = "tokens") -> float | None:
    """Mean target tokens per optimizer step, when the loss weighs by tokens and --weight-by-tokens."""
    per_batch = stream.targets_per_batch
    if not cfg.weight_by_tokens or weight_unit != "tokens" or not per_batch:
        return None
    return per_batch * cfg.grad_accum


def resume_config(run: RunDir, overrides: dict, cfg_cls=TrainConfig) -> tuple[TrainConfig, list[str]]:
    """The saved config of a run, with only the changes that keep it the same run, and notes on
    paths an older record stored relative to where the run was started."""
    info = read_run(run.path)
    saved = dict(info.config)
    if not saved:
        raise RunError(f"{run.record_path}: has no config; cannot resume")
    for k in RESOLVED_KEYS:
        saved[k] = info.resolve(saved.get(k))
    saved["lora_targets"] = tuple(saved.get("lora_targets", ()))
    saved.setdefault("weight_by_tokens", False)  # runs from before the option trained each batch's mean
    base = cfg_cls(**{k: v for k, v in saved.items() if k in cfg_cls.__dataclass_fields__})
    from localtune.config import local_path

    overrides = {k: (local_path(v) if k in RESOLVED_KEYS else v) for k, v in overrides.items()}
    changed = {k: v for k, v in overrides.items() if v is not None and getattr(base, k, v) != v}
    bad = sorted(set(changed) - RESUMABLE_CHANGES - {"out"})
    if bad:
        raise RunError(
            f"{run.path}: cannot resume with a different {', '.join(bad)} "
            f"(saved: {', '.join(f'{k}={getattr(base, k)!r}' for k in bad)}); start a new run instead"
        )
    changed.pop("out", None)
    return base.replace(**changed), info.notes


# --- where the events go, and what a failure leaves -------------------------------------------------

class RunEvents:
    """The session's on_event: each event goes to the run directory (the metrics log and the text
    log, as its class says: events.Event.recorded / logged), to the --report-to services, then to
    the caller. `phase` reports the run's stage through it."""

    def __init__(self, run: RunDir, on_event: events.OnEvent):
        self.run, self.on_event = run, on_event
        self.report, self.close_reports = events.ignore, lambda: None
        self.phase = PhaseReporter(self)

    def open_reports(self, report_to: str | None) -> None:
        self.report, self.close_reports = reporting.reporter(report_to, self.run.path)

    def __call__(self, event: dict) -> None:
        kind = events.parse(event)
        if kind is not None and kind.recorded:
            self.run.append_metric(event)
        if kind is not None and kind.logged:
            self.run.log(" ".join(f"{k}={v}" for k, v in event.items()))
        self.report(event)
        self.on_event(event)

    def close(self) -> None:
        self.close_reports()


@contextmanager
def recorded_outcome(s: Session):
    """Whatever ends the session early, the record says so (a refused resume leaves it as it was;
    on a full or read-only disk the error matters more than the record of it: ckpt.record_end)."""
    run, cfg = s.run, s.cfg
    try:
        yield
    except provenance.ResumeRefused as e:
        if s.record_before is not None:
            run.write(s.record_before)
        run.log(f"resume refused: {e}")
        raise
    except NonFiniteLoss as e:
        last = ckpt.latest_checkpoint(run.path)
        msg = (f"failed: non-finite loss at step {e.step}" if "loss" in str(e) else f"failed: {e}")
        hint = (f"resume from {last.name} with a lower --lr: localtune train {s.task.kind} --resume {run.path} "
                f"--lr {cfg.lr / 4:g}" if last else "start again with a lower --lr, or use --skip-nonfinite")
        ckpt.record_end(run, status="failed", error=f"{msg}; {hint}", finished=time.time())
        raise LocaltuneError(f"{run.path}: {msg}; {hint}") from None
    except LocaltuneError as e:
        ckpt.record_end(run, status="failed", error=str(e), finished=time.time())
        raise
    except OSError as e:  # disk full or read-only mid-run: say what is still good and how to go on
        err = ckpt.storage_error(run.path, e, s.task.kind)
        ckpt.record_end(run, status="failed", error=str(err), finished=time.time())
        raise err from None
    except KeyboardInterrupt:
        ckpt.record_end(run, status="stopped", finished=time.time())
        raise
    except BaseException as e:
        ckpt.record_end(run, status="failed", error=f"{type(e).__name__}: {e}", finished=time.time(),
                        log=traceback.format_exc())
        raise
