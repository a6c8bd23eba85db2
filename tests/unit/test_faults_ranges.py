"""Every numeric option is range-checked where it is parsed (a flag, a YAML value, a resume's
override), with a message naming the option: nothing nonsensical reaches a run. Before, `--warmup -5`
stretched the schedule, `--lora-alpha 0` trained nothing, `--lr nan` failed at step 2,
`--grad-clip -1` and `--seed -1` ended in tracebacks, `--lora-layers 0` blamed the LoRA targets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from localtune.config import build_config
from localtune.config_dpo import DPOConfig
from localtune.errors import LocaltuneError

ROOT = Path(__file__).resolve().parents[2]

BAD = [
    ("warmup", -5), ("lora_alpha", 0.0), ("lora_alpha", -1.0), ("lora_layers", 0), ("lora_layers", -3),
    ("lr", float("nan")), ("lr", float("inf")), ("lr", -1.0), ("epochs", float("nan")), ("epochs", float("inf")),
    ("weight_decay", -1.0), ("weight_decay", float("nan")), ("grad_clip", 0.0), ("grad_clip", -1.0),
    ("grad_clip", float("nan")), ("lora_dropout", float("nan")), ("lora_dropout", 1.0), ("eval_every", -1),
    ("save_every", -1), ("keep_checkpoints", 0), ("val_batches", 0), ("val_batches", -5), ("seed", -1),
    ("seed", 2**40), ("iters", 0), ("batch_size", 0), ("grad_accum", 0), ("lora_rank", 0), ("max_seq_len", 4),
    ("report_every", 0),
]


@pytest.mark.parametrize("name, value", BAD)
def test_out_of_range_options_are_refused_naming_the_option(name, value):
    with pytest.raises(LocaltuneError, match=rf"bad configuration: {name} must be"):
        build_config(None, {"data": "x.jsonl", name: value})


@pytest.mark.parametrize("name, value", [("warmup", 0), ("lora_layers", -1), ("lora_layers", 1), ("seed", 0),
                                         ("val_batches", -1), ("eval_every", 0), ("save_every", 0),
                                         ("grad_clip", None), ("lr", 3e-4), ("epochs", 0.5)])
def test_the_edges_that_mean_something_are_accepted(name, value):
    assert getattr(build_config(None, {name: value}), name) == value


@pytest.mark.parametrize("name, value", [("beta", float("nan")), ("beta", 0.0), ("orpo_lambda", float("inf")),
                                         ("simpo_gamma", float("nan")), ("label_smoothing", 0.5),
                                         ("lr", float("nan")), ("warmup", -1)])
def test_dpo_options_too(name, value):
    with pytest.raises(LocaltuneError, match=rf"{name} must be"):
        build_config(None, {name: value}, cls=DPOConfig)


def test_yaml_values_are_checked_with_the_same_rules(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: .nan\nwarmup: -5\n")
    with pytest.raises(LocaltuneError, match=r"lr must be a finite number > 0 \(got nan\); warmup must be >= 0"):
        build_config(cfg)


def test_a_resume_override_is_checked_too(tiny_run):
    from localtune.runs import RunDir
    from localtune.train.session import resume_config

    with pytest.raises(LocaltuneError, match="lr must be"):
        resume_config(RunDir(tiny_run), {"lr": float("nan")})


def localtune(*args):
    return subprocess.run([sys.executable, "-m", "localtune", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("args, flag", [
    (["train", "sft", "--data", "x.jsonl", "--warmup", "-5"], "warmup must be >= 0"),
    (["train", "sft", "--data", "x.jsonl", "--lora-layers", "0"], "lora_layers must be -1 (all blocks) or"),
    (["train", "sft", "--data", "x.jsonl", "--seed", "-1"], "seed must be in [0, 2^32)"),
    (["data", "stats", "x.jsonl", "--max-seq-len", "0"], "--max-seq-len: must be an integer >= 1"),
    (["data", "split", "x.jsonl", "--out", "o", "--valid-fraction", "nan"], "--valid-fraction: must be a number"),
    (["data", "preview", "x.jsonl", "--row", "0"], "--row: must be an integer >= 1"),
    (["plan", "--data", "x.jsonl", "--memory-gb", "-1"], "--memory-gb: must be a finite number > 0"),
    (["plan", "--data", "x.jsonl", "--gflops", "nan"], "--gflops: must be a finite number > 0"),
    (["demo", "--iters", "0"], "--iters: must be an integer >= 1"),
])
def test_cli_flags_are_refused_before_anything_runs(args, flag):
    out = localtune(*args)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert flag in out.stderr, out.stderr
