"""A training session: config -> model + adapter + data -> the loop -> a complete run directory.

Shared by SFT and DPO: each kind supplies a `Task` (its loss and how to build its rows/batches).
Failures leave run.json saying why and keep the last good checkpoint; Ctrl-C/stop checkpoints.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import localtune  # noqa: F401
import mlx.core as mx
import mlx.optimizers as optim

from localtune import backend
from localtune.config import TrainConfig
from localtune.errors import LocaltuneError, RunError
from localtune.lora import LoraSpec, attach_lora, load_adapter, save_adapter, spec_summary
from localtune.models.identity import warn_if_other_base
from localtune.outputs import check_new_run_dir
from localtune.runs import DEFAULT_ROOT, RunDir, default_run_name
from localtune.train import checkpoint as ckpt
from localtune.train import reporting
from localtune.train.distributed import DataParallel
from localtune.train.loop import LoopSettings, LoopState, NonFiniteLoss, train
from localtune.train.memory import enable_grad_checkpoint
from localtune.train.schedule import build_schedule

# Settings that may change on resume; any other difference is refused (it would not be the same run).
RESUMABLE_CHANGES = {"iters", "epochs", "eval_every", "save_every", "report_every",
                     "keep_checkpoints", "skip_nonfinite", "lr", "val_batches", "report_to"}


@dataclass
class Task:
    """What differs between SFT and DPO."""

    kind: str
    loss_fn: Callable  # (model, batch) -> (loss, ntokens, metrics)
    make_train: Callable  # (model, tokenizer, cfg, run_dir, on_event) -> (next_batch factory data)
    make_valid: Callable | None = None


def _iters(cfg: TrainConfig, batches_per_epoch: int) -> int:
    if cfg.iters:
        return cfg.iters
    epochs = cfg.epochs or 1.0
    return max(1, math.ceil(epochs * batches_per_epoch / cfg.grad_accum))


def _targets_per_step(cfg: TrainConfig, stream) -> float | None:
    """Mean target tokens per optimizer step (SFT streams know it; DPO weighs pairs, not tokens)."""
    per_batch = getattr(stream, "targets_per_batch", None)
    if not cfg.weight_by_tokens or not per_batch:
        return None
    return per_batch * cfg.grad_accum


def resume_config(run: RunDir, overrides: dict, cfg_cls=TrainConfig) -> TrainConfig:
    """The saved config of a run, with only the changes that keep it the same run."""
    saved = run.read().get("config")
    if not saved:
        raise RunError(f"{run.path}: run.json has no config; cannot resume")
    saved["lora_targets"] = tuple(saved.get("lora_targets", ()))
    saved.setdefault("weight_by_tokens", False)  # runs from before the option trained each batch's mean
    base = cfg_cls(**{k: v for k, v in saved.items() if k in cfg_cls.__dataclass_fields__})
    changed = {k: v for k, v in overrides.items() if v is not None and getattr(base, k, v) != v}
    bad = sorted(set(changed) - RESUMABLE_CHANGES - {"out"})
    if bad:
        raise RunError(
            f"{run.path}: cannot resume with a different {', '.join(bad)} "
            f"(saved: {', '.join(f'{k}={getattr(base, k)!r}' for k in bad)}); start a new run instead"
        )
    changed.pop("out", None)
    return base.replace(**changed)


def run_training(
    cfg: TrainConfig,
    task_factory: Callable[[TrainConfig], Task],
    *,
    resume: str | Path | None = None,
    on_event: Callable[[dict], None] = lambda e: None,
    should_stop: Callable[[], bool] = lambda: False,
    overrides: dict | None = None,
    cfg_cls=TrainConfig,
) -> Path:
    """Train to completion (or stop); returns the run directory."""
    from localtune.models import load_model, resolve_model

    dp = DataParallel()  # identity hooks unless started by mlx.launch
    if resume:
        run = dp.run(RunDir(resume))
        cfg = resume_config(run, overrides or {}, cfg_cls)
    else:
        run = dp.run(RunDir(cfg.out or DEFAULT_ROOT / default_run_name(task_factory(cfg).kind)))
        if run.exists() and not ckpt.failed_before_start(run):  # a run that never started may be retried
            raise RunError(f"{run.path}: already a run directory; use --resume {run.path} or another --out")
        check_new_run_dir(run.path)  # never into a directory of someone else's files
    task = task_factory(cfg)
    run.acquire()

    def emit(event: dict) -> None:
        if event.get("event") in ("train", "val", "skipped"):
            run.append_metric(event)
        if event.get("event") in ("data_problem", "data", "stopped", "checkpoint", "model", "reference"):
            run.log(" ".join(f"{k}={v}" for k, v in event.items()))
        on_event(event)

    try:
        info = run.read() if resume else {}
        run.write({**info, "kind": task.kind, "status": "starting", "pid": os.getpid(),
                   "started": info.get("started", time.time()), "config": cfg.to_dict()})
        backend.set_wired_limit()
        # --report-to: the same train/val events also go to tensorboard/wandb (rank 0 only).
        on_event, close_reports = reporting.reporter(cfg.report_to if dp.is_main else None, run.path, on_event)
        mx.random.seed(cfg.seed)
        model_path = resolve_model(cfg.model, on_event=emit)
        model, tokenizer = load_model(model_path)
        emit({"event": "model", "path": str(model_path)})
        if cfg.adapter:
            spec = load_adapter(model, cfg.adapter)
            warn_if_other_base(cfg.adapter, model_path, emit)
        else:
            spec = cfg.lora_spec()
            attach_lora(model, spec)
        if cfg.grad_checkpoint:
            enable_grad_checkpoint(model.layers)
        mx.eval(model.parameters())

        stream, valid_batches, extra = task.make_train(model, tokenizer, dp.config(cfg), run.path, emit)
        iters = _iters(cfg, stream.batches_per_epoch)
        schedule = build_schedule(cfg.lr, iters, cfg.warmup, cfg.schedule)
        optimizer = optim.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay)
        fingerprint = {k: v for k, v in cfg.to_dict().items() if k not in RESUMABLE_CHANGES}

        state = LoopState()
        if resume:
            if dp.is_main:  # other ranks never write, and must not delete rank 0's temp files
                ckpt.remove_partial_writes(run.path)  # a killed writer's temp files; we hold the lock
                ckpt.prune(run.path, cfg.keep_checkpoints)  # a kill between a save and its prune
            last = ckpt.latest_checkpoint(run.path)
            if last is not None:
                state, position, _ = ckpt.load_checkpoint(last, model, optimizer)
                stream.seek(position)
            # No checkpoint yet (killed early): start over; same seed, so the same run as unbroken.
            run.truncate_metrics(state.step if last is not None else -1)
            emit({"event": "resumed", "step": state.step,
                  "checkpoint": str(last) if last is not None else "none (starting over)"})

        def save(s: LoopState) -> None:
            try:
                path = ckpt.save_checkpoint(run.path, model, optimizer, s, spec, data_position=stream.position,
                                            config_fingerprint=fingerprint, keep=cfg.keep_checkpoints)
                save_adapter(model, run.path, spec)
            except OSError as e:  # disk full, permissions: a clear message, saved files untouched
                raise ckpt.save_error(run.path, s.step, e) from None
            emit({"event": "checkpoint", "step": s.step, "path": str(path)})

        run.update(status="running", model_path=str(model_path), iters=iters, **extra,
                   **spec_summary(model))
        emit({"event": "start", "run": str(run.path), "iters": iters, "step": state.step,
              "batches_per_epoch": stream.batches_per_epoch, **spec_summary(model)})
        settings = LoopSettings(iters=iters, grad_accum=cfg.grad_accum, report_every=cfg.report_every,
                                eval_every=cfg.eval_every, save_every=cfg.save_every,
                                grad_clip=cfg.grad_clip, seed=cfg.seed, skip_nonfinite=cfg.skip_nonfinite,
                                targets_per_step=_targets_per_step(cfg, stream))
        outcome = train(model, optimizer, dp.loss(task.loss_fn), dp.batches(stream.next), settings, state,
                        valid_batches=valid_batches, on_event=emit, should_stop=dp.should_stop(should_stop),
                        save_checkpoint=save if dp.is_main else None, all_reduce=dp.all_reduce)
        close_reports()
        if dp.is_main:
            # Every file of the run is complete before run.json says so: a kill before this point
            # is resumed (a resume that starts at the last step only rewrites these files).
            save_adapter(model, run.path, spec)
            reporting.finish_run(run.path, run.metrics())  # loss.png
        run.update(status=outcome, finished=time.time(), step=state.step, elapsed=state.elapsed)
        emit({"event": "done", "status": outcome, "run": str(run.path), "step": state.step})
        return run.path
    except NonFiniteLoss as e:
        last = ckpt.latest_checkpoint(run.path)
        msg = (f"failed: non-finite loss at step {e.step}" if "loss" in str(e) else f"failed: {e}")
        hint = (f"resume from {last.name} with a lower --lr: localtune train {task.kind} --resume {run.path} "
                f"--lr {cfg.lr / 4:g}" if last else "start again with a lower --lr, or use --skip-nonfinite")
        ckpt.record_end(run, status="failed", error=f"{msg}; {hint}", finished=time.time())
        raise LocaltuneError(f"{run.path}: {msg}; {hint}") from None
    except LocaltuneError as e:
        ckpt.record_end(run, status="failed", error=str(e), finished=time.time())
        raise
    except OSError as e:  # disk full or read-only mid-run: say what is still good and how to go on
        err = ckpt.storage_error(run.path, e, task.kind)
        ckpt.record_end(run, status="failed", error=str(err), finished=time.time())
        raise err from None
    except KeyboardInterrupt:
        ckpt.record_end(run, status="stopped", finished=time.time())
        raise
    except BaseException as e:
        ckpt.record_end(run, status="failed", error=f"{type(e).__name__}: {e}", finished=time.time(),
                        log=traceback.format_exc())
        raise
    finally:
        run.release()


def lora_spec_of(cfg: TrainConfig) -> LoraSpec:
    return cfg.lora_spec()
