"""The CLI as a user runs it (a real subprocess): data check, train with Ctrl-C and resume, chat."""

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localtune.runs import RunDir, read_metrics

ROOT = Path(__file__).resolve().parents[2]


def localtune(*args, **kw):
    return subprocess.run([sys.executable, "-m", "localtune", *args], capture_output=True, text=True,
                          cwd=kw.pop("cwd", ROOT), timeout=kw.pop("timeout", 300), **kw)


def test_data_check_reports_planted_bad_rows_with_file_and_line():
    out = localtune("data", "check", "samples/bad_rows.jsonl")
    assert out.returncode == 1  # problems found: non-zero for scripts
    lines = re.findall(r"^samples/bad_rows\.jsonl:(\d+): ", out.stdout, re.M)
    assert lines == ["4", "7", "10"], out.stdout
    assert "12 rows, 9 usable, 3 problems" in out.stdout
    ok = localtune("data", "check", "samples/sft/train.jsonl")
    assert ok.returncode == 0 and "240 rows, 240 usable, 0 problems" in ok.stdout


def test_data_stats_and_preview_with_a_model(tiny_model_dir):
    out = localtune("data", "stats", "samples/sft/valid.jsonl", "--model", str(tiny_model_dir), "--json")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["rows"] == 40 and stats["tokens"]["max"] >= stats["tokens"]["p50"] > 0
    prev = localtune("data", "preview", "samples/sft/valid.jsonl", "--model", str(tiny_model_dir))
    assert prev.returncode == 0, prev.stderr
    trained = prev.stdout.split("trained parts:")[1]
    assert "Aye!" in trained and "<|im_start|>assistant" not in trained


def test_train_ctrl_c_checkpoints_then_resume_finishes(tiny_model_dir, tmp_path, numbered_rows):
    data = numbered_rows(tmp_path / "d.jsonl", 40, "say {i}", "Aye! {i}")
    run = tmp_path / "run"
    args = ["train", "sft", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(run),
            "--iters", "400", "--batch-size", "2", "--lora-rank", "4", "--save-every", "1000"]
    proc = subprocess.Popen([sys.executable, "-m", "localtune", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not [m for m in read_metrics(run / "metrics.jsonl") if "train_loss" in m]:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # stopped, not finished: scripts can tell (128 + SIGINT)
    info = RunDir(run).read()
    assert info["status"] == "stopped", info
    stopped_at = max(m["step"] for m in read_metrics(run / "metrics.jsonl") if "step" in m)
    assert 1 <= stopped_at < 400
    assert (run / "checkpoints" / f"step-{stopped_at:06d}").is_dir()
    assert "stopped at step" in out

    resumed = localtune("train", "sft", "--resume", str(run), "--iters", str(stopped_at + 3))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at step {stopped_at}" in resumed.stdout
    assert RunDir(run).read()["status"] == "finished"
    steps = [m["step"] for m in read_metrics(run / "metrics.jsonl") if "train_loss" in m]
    assert steps[-1] == stopped_at + 3 and len(steps) == len(set(steps))


def test_train_bad_flag_combination_is_a_clear_error(tiny_model_dir, tmp_path):
    out = localtune("train", "sft", "--model", str(tiny_model_dir), "--data", str(tmp_path / "none.jsonl"),
                    "--out", str(tmp_path / "r"))
    assert out.returncode == 2
    assert "none.jsonl" in out.stderr and "Traceback" not in out.stderr


def test_chat_prompt_and_compare_with_an_adapter(tiny_model_dir, tmp_path, numbered_rows):
    # lr 5e-3 was unstable on the tiny model (loss stuck near 2.6, "A!e!e!" on some machines): 2e-3
    # reaches ~0.4 on seeds 0 and 1.
    data = numbered_rows(tmp_path / "d.jsonl", 24, "say {i}", "Aye! {i}")
    run = tmp_path / "run"
    t = localtune("train", "sft", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(run),
                  "--iters", "150", "--batch-size", "4", "--lr", "2e-3", "--lora-layers", "-1")
    assert t.returncode == 0, t.stderr
    once = localtune("chat", "--adapter", str(run), "--prompt", "say 3", "--max-tokens", "8")
    assert once.returncode == 0, once.stderr
    assert once.stdout.startswith("Aye"), once.stdout  # model taken from the run, adapter applied
    both = localtune("chat", "--adapter", str(run), "--prompt", "say 3", "--compare", "--max-tokens", "8")
    base = both.stdout.split("--- base ---")[1].split("--- tuned ---")[0].strip()
    tuned = both.stdout.split("--- tuned ---")[1].strip()
    assert tuned.startswith("Aye") and not base.startswith("Aye")


def test_chat_repl_commands(tiny_model_dir, tmp_path):
    script = "hello\n/system be brief\n/adapter on\n/reset\n/quit\n"
    out = localtune("chat", "--model", str(tiny_model_dir), "--max-tokens", "4", input=script)
    assert out.returncode == 0, out.stderr
    assert "(system prompt: 'be brief')" in out.stdout
    assert "(no adapter loaded" in out.stdout and "(conversation cleared)" in out.stdout
    assert out.stdout.count("bot> ") == 1


def test_doctor_reports_backend_and_blas():
    out = localtune("doctor")
    assert out.returncode == 0
    for key in ("backend", "blas", "memory_gb", "mlx"):
        assert key in out.stdout
    if sys.platform.startswith("linux") and os.path.exists(
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"
    ):
        assert "OpenBLAS" in out.stdout


@pytest.mark.parametrize("argv", [["train", "sft", "--help"], ["data", "--help"], ["models", "--help"]])
def test_help_lists_the_documented_flags(argv):
    out = localtune(*argv)
    assert out.returncode == 0
    if argv[0] == "train":
        for flag in ("--grad-accum", "--lora-alpha", "--lora-targets", "--dora", "--grad-checkpoint", "--resume"):
            assert flag in out.stdout


def test_every_command_is_registered():
    out = localtune("--help")
    for command in ("train", "data", "models", "chat", "export", "runs", "plan", "doctor", "demo", "tui"):
        assert re.search(rf"^\s+{command}\s", out.stdout, re.M), command
