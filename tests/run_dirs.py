"""Synthetic run directories for tests, built through localtune.runs (the one owner of the file
names inside a run directory): whole checkpoints without a model, and a process that trains in
name only (it holds the run's lock as a trainer does, so the status rule believes it)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

from localtune.runs import RunDir, checkpoint_dir, layout

REPO = Path(__file__).resolve().parents[1]


def write_safetensors(path: Path, nbytes: int = 16) -> None:
    """A well-formed safetensors file (one f32 tensor of zeros): its header covers its bytes."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [0, nbytes]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * nbytes)


def make_checkpoint(run: RunDir, step: int) -> Path:
    """A whole checkpoint of `step` (checkpoint_problem finds nothing wrong with it)."""
    ckpt = checkpoint_dir(run.path, step)
    ckpt.mkdir(parents=True)
    write_safetensors(ckpt / layout.ADAPTER_FILE)
    write_safetensors(ckpt / layout.OPTIMIZER_FILE)
    (ckpt / layout.ADAPTER_CONFIG_FILE).write_text("{}")
    (ckpt / layout.STATE_FILE).write_text(json.dumps({"loop": {"step": step}, "data": {}}))
    return ckpt


# A stand-in trainer in its own process: takes the run's lock, names itself in the record as
# running (what the engine does), says "ready", then works on until killed. It ignores SIGTERM,
# like a trainer busy finishing its step: a Stop must not wait for it.
_TRAINER = """
import os, signal, sys, time
from localtune.runs import RunDir
run = RunDir(sys.argv[1])
run.acquire()
run.update(status="running", pid=os.getpid())
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(120)
"""


def start_stand_in_trainer(run_dir: str | Path) -> subprocess.Popen:
    """Start the stand-in trainer on an existing run directory; returns once it holds the lock."""
    proc = subprocess.Popen([sys.executable, "-c", _TRAINER, str(Path(run_dir).resolve())], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # blocks until it is ready (or has died)
    if line.strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the stand-in trainer did not start (exit code {proc.poll()})")
    return proc
