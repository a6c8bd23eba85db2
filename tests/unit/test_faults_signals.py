"""SIGTERM (what a service manager or `kill` sends) checkpoints and exits with status "stopped"
and exit status 143 (128 + SIGTERM), like Ctrl-C with 130 (tests/unit/test_cli.py covers SIGINT);
the checkpoint resumes."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from localtune.runs import RunDir, read_metrics
from localtune.train.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[2]


def test_sigterm_checkpoints_and_stops(tiny_model_dir, tmp_path, numbered_rows):
    data = numbered_rows(tmp_path / "d.jsonl", 20)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "localtune", "train", "sft", "--model", str(tiny_model_dir),
                             "--data", str(data), "--out", str(run), "--iters", "5000", "--batch-size", "2",
                             "--lora-rank", "4", "--save-every", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not [m for m in read_metrics(run / "metrics.jsonl") if "train_loss" in m]:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # a stop is not a finish: scripts can tell them apart
    assert "Traceback" not in err
    info = RunDir(run).read()
    assert info["status"] == "stopped", info
    assert 1 <= info["step"] < 5000
    # --save-every 0 means "only at the end": the stop itself must have written the checkpoint.
    assert [p.name for p in list_checkpoints(run)] == [f"step-{info['step']:06d}"]
    assert (run / "adapters.safetensors").is_file() and not (run / ".lock").exists()
    assert f"stopped at step {info['step']}" in out
