"""Exit statuses scripts can rely on, with real subprocesses: output piped into a command that closes
early exits quietly with 141 (like other Unix tools), training included (it checkpoints first);
SIGTERM outside training unwinds, leaves no temp output and exits 143. (Training stopped by
SIGTERM / Ctrl-C: 143 / 130, in test_faults_signals.py and test_cli.py.)"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localtune.runs import RunDir

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def piped_to_head(*args, cwd=ROOT):
    """`localtune ARGS | head -1`: (exit status of localtune, its stderr)."""
    cmd = " ".join(f"'{a}'" for a in [sys.executable, "-m", "localtune", *map(str, args)])
    p = subprocess.run(["bash", "-c", f"{cmd} 2>stderr.txt | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}"],
                       cwd=cwd, env=ENV, timeout=300, capture_output=True, text=True)
    return p.returncode, (Path(cwd) / "stderr.txt").read_text()


@pytest.fixture
def many_rows(tmp_path):
    # a messages file whose rows lack an answer: one problem line each, far more than a pipe buffers
    (tmp_path / "bad.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n' * 5000)
    return tmp_path


@pytest.mark.parametrize("args", [["data", "check", "bad.jsonl", "bad.jsonl", "bad.jsonl"],
                                  ["runs", "--root", "runs"]])
def test_a_closed_pipe_exits_quietly_with_141(many_rows, args):
    for i in range(1500):  # a listing bigger than the pipe's buffer, so the write does fail
        (many_rows / "runs" / f"run-{i:04d}").mkdir(parents=True)
        (many_rows / "runs" / f"run-{i:04d}" / "run.json").write_text('{"kind": "sft", "status": "finished"}')
    status, err = piped_to_head(*args, cwd=many_rows)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert status == 141, (status, err)


def test_training_into_a_closed_pipe_stops_with_a_checkpoint(many_rows, tiny_model_dir):
    data = many_rows / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                                     {"role": "assistant", "content": f"yo {i}"}]}) + "\n"
                            for i in range(20)))
    status, err = piped_to_head("train", "sft", "--model", tiny_model_dir, "--data", data, "--out", "run",
                                "--iters", "500", "--batch-size", "1", "--lora-rank", "4", cwd=many_rows)
    assert status == 141 and "Traceback" not in err, (status, err)
    info = RunDir(many_rows / "run").read()
    assert info["status"] == "stopped" and info["step"] < 500  # was "failed: SystemExit: 1"
    assert (many_rows / "run" / "checkpoints" / f"step-{info['step']:06d}").is_dir()


SLOW_EXPORT = """
import sys, time
import localtune.export.fused as fused
real = fused.copy_side_files
def slow(*a):  # the export stalls after its temp directory exists, so the signal lands mid-write
    time.sleep(60)
    real(*a)
fused.copy_side_files = slow
from localtune.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_sigterm_during_an_export_leaves_no_temp_and_exits_143(tmp_path, tiny_run, tiny_model_dir):
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_EXPORT, "export", str(tiny_run), "--format", "fused",
                             "--out", str(work / "out"), "--model", str(tiny_model_dir)],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(work.glob(".out.tmp-*")):
        time.sleep(0.05)
    assert list(work.glob(".out.tmp-*")), "the export never started writing"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, (proc.returncode, err)
    assert err.strip() == "terminated"
    assert list(work.iterdir()) == [], "temp or partial output left behind"
