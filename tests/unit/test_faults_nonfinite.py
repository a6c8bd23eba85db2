"""A NaN/Inf loss or gradient stops the run with a clear message, keeps the last good checkpoint and
offers `--resume RUN --lr X` (which works); `--skip-nonfinite` skips the batch instead."""

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest

from localtune.errors import LocaltuneError
from localtune.lora import adapter_layers
from localtune.runs import RunDir, read_metrics
from localtune.train.checkpoint import list_checkpoints
from localtune.train.sft import sft_task

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def _cfg(tiny_config, numbered_rows):
    """make(model, tmp_path, out, **options): 12 steps on 16 numbered rows, a checkpoint every 4."""

    def make(model, tmp_path, out, **kw):
        data = numbered_rows(tmp_path / "d.jsonl", 16)
        return tiny_config(tmp_path / out, data, model=str(model), **{**dict(iters=12, save_every=4), **kw})

    return make


def poisoned(bad_steps: set[int], where: str = "loss"):
    """sft_task whose loss (or only its gradient) is NaN on the given optimizer steps."""

    def factory(cfg):
        task = sft_task(cfg)
        calls = {"n": 0}  # one loss call per step: no validation set, grad_accum 1

        def loss_fn(model, batch):
            calls["n"] += 1
            loss, ntok, metrics = task.loss_fn(model, batch)
            if calls["n"] in bad_steps:
                if where == "loss":
                    loss = loss * float("nan")
                else:  # value 0, gradient 0 * inf = NaN: a finite loss with a NaN gradient
                    loss = loss + mx.sum(mx.sqrt(adapter_layers(model)[0].lora_b * 0.0))
            return loss, ntok, metrics

        return dataclasses.replace(task, loss_fn=loss_fn)

    return factory


def _finite_file(path) -> bool:
    return all(np.isfinite(np.array(v)).all() for v in mx.load(str(path)).values())


def test_nan_loss_stops_keeps_last_checkpoint_and_resumes_with_lower_lr(tiny_model_dir, tmp_path, _cfg):
    from localtune.train.session import run_training

    cfg = _cfg(tiny_model_dir, tmp_path, "run")
    with pytest.raises(LocaltuneError) as e:
        run_training(cfg, poisoned({7}))
    msg = str(e.value)
    assert "non-finite loss at step 7" in msg and "step-000004" in msg, msg
    info = RunDir(cfg.out).read()
    assert info["status"] == "failed" and info["error"].startswith("failed: non-finite loss at step 7")
    assert [p.name for p in list_checkpoints(cfg.out)] == ["step-000004"]
    # The adapter on disk is the last good one, not a NaN-poisoned one.
    ckpt = Path(cfg.out) / "checkpoints" / "step-000004" / "adapters.safetensors"
    assert (Path(cfg.out) / "adapters.safetensors").read_bytes() == ckpt.read_bytes()
    assert _finite_file(ckpt)

    hint = re.search(r"--resume (\S+) --lr (\S+)", msg)
    assert hint and Path(hint.group(1)) == Path(cfg.out), msg
    lr = float(hint.group(2))
    assert lr < cfg.lr
    out = subprocess.run([sys.executable, "-m", "localtune", "train", "sft", "--resume", hint.group(1),
                          "--lr", hint.group(2)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    info = RunDir(cfg.out).read()
    assert info["status"] == "finished" and info["config"]["lr"] == lr and info["step"] == 12
    steps = [m["step"] for m in read_metrics(Path(cfg.out) / "metrics.jsonl") if "train_loss" in m]
    assert steps == list(range(1, 13))
    assert _finite_file(Path(cfg.out) / "adapters.safetensors")


def test_nan_gradient_with_finite_loss_is_caught(tiny_model_dir, tmp_path, _cfg):
    from localtune.train.session import run_training

    cfg = _cfg(tiny_model_dir, tmp_path, "run", iters=6)
    with pytest.raises(LocaltuneError, match="non-finite gradient at step 2"):
        run_training(cfg, poisoned({2}, where="gradient"))
    assert RunDir(cfg.out).read()["status"] == "failed"
    assert not list_checkpoints(cfg.out)  # nothing was saved from the poisoned step


def test_skip_nonfinite_skips_the_batch_even_on_the_last_step(tiny_model_dir, tmp_path, _cfg):
    from localtune.train.session import run_training

    events = []
    cfg = _cfg(tiny_model_dir, tmp_path, "run", iters=6, save_every=0, skip_nonfinite=True)
    run = run_training(cfg, poisoned({3, 6}), on_event=events.append)
    assert RunDir(run).read()["status"] == "finished"
    skipped = [m for m in read_metrics(run / "metrics.jsonl") if m.get("event") == "skipped"]
    assert [m["step"] for m in skipped] == [3, 6] and "non-finite loss" in skipped[0]["reason"]
    losses = [m["train_loss"] for m in read_metrics(run / "metrics.jsonl") if "train_loss" in m]
    assert losses and all(math.isfinite(x) for x in losses)
    # A skipped final step still saves: the run's adapter and final checkpoint exist and are finite.
    assert [p.name for p in list_checkpoints(run)] == ["step-000006"]
    assert _finite_file(run / "adapters.safetensors")
