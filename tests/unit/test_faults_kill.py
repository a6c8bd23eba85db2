"""kill -9 at random moments, mid-checkpoint included: every file in the run directory stays
complete and parseable, and `--resume` ends bit-identical to an unbroken run of the same seed.

Contract checked here (see localtune/train/checkpoint.py, localtune/runs/):
- visible files are always whole: run.json, adapter_config.json, adapters.safetensors and every
  checkpoints/step-N/ (all four files); metrics.jsonl may end in a torn line, which readers skip;
- hidden names (`.step-N.tmp`, `.name.XXXX.tmp`) are partial writes, never read, and removed when
  the run resumes;
- a killed run (status "running", .lock of a dead pid) resumes from its last complete checkpoint.
A pause injected into the trainer (run_training's checkpoint_pause) sleeps between a checkpoint's
files so kills land mid-save.

Each killed trainer is a real process running the CLI (`localtune.cli.main(argv)`), forked from a
helper that imported mlx/transformers once: with torch installed, a fresh `python -m localtune`
costs ~3 s of imports, 20 of them would blow the test budget. The unbroken reference run is a
plain `python -m localtune` subprocess, so the comparison also covers that path.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest

from pathlib import Path

from localtune.runs import read_metrics

ROOT = Path(__file__).resolve().parents[2]

KILLS = 20
ITERS = 10
CKPT_FILES = {"adapters.safetensors", "adapter_config.json", "optimizer.safetensors", "trainer_state.json"}


def _args(tmp_path, model, data, run):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("report_every: 1\n")  # a loss per step, so every step is compared
    return ["train", "sft", "--config", str(cfg), "--model", str(model), "--data", str(data),
            "--out", str(run), "--iters", str(ITERS), "--batch-size", "2", "--lora-rank", "4",
            "--lora-dropout", "0.1", "--lr", "2e-3", "--save-every", "1", "--keep-checkpoints", "2"]


HELPER = r"""
import json, os, sys, traceback
import localtune, localtune.cli, mlx_lm.utils  # the slow imports, once
import localtune.train.session, localtune.train.sft, mlx_lm.models.llama
from pathlib import Path
from localtune.cli import main
mlx_lm.utils.load_tokenizer(Path(sys.argv[1]))  # transformers' lazy imports (no mlx work before fork)
for line in sys.stdin:
    req = json.loads(line)
    if "wait" in req:  # reap (so a dead trainer's pid is really gone) and report its exit code
        pid, status = os.waitpid(req["wait"], 0 if req["block"] else os.WNOHANG)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status) if pid else None}), flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        rc = 1
        try:
            if req["slow_save"]:  # sleep between a checkpoint's files, so kills land mid-save
                import functools, time
                import localtune.train.session as session
                session.run_training = functools.partial(
                    session.run_training, checkpoint_pause=lambda: time.sleep(req["slow_save"]))
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0), os.dup2(null, 1)
            os.dup2(os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            rc = main(req["argv"])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(rc)
    print(json.dumps({"pid": pid}), flush=True)
"""


class ForkServer:
    def __init__(self, model_dir):
        self.proc = subprocess.Popen([sys.executable, "-c", HELPER, str(model_dir)], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, req: dict) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Trainer:
    """A forked CLI process with the bits of Popen this test uses."""

    def __init__(self, server, argv, stderr, slow_save: float = 0.0):
        self.server, self.stderr, self.returncode = server, stderr, None
        self.pid = server.ask({"argv": argv, "slow_save": slow_save, "stderr": str(stderr)})["pid"]

    def poll(self):
        if self.returncode is None:
            self.returncode = self.server.ask({"wait": self.pid, "block": False})["code"]
        return self.returncode

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> str:
        if self.returncode is None:
            self.returncode = self.server.ask({"wait": self.pid, "block": True})["code"]
        return self.stderr.read_text()


@pytest.fixture()
def forkserver(tiny_model_dir):
    server = ForkServer(tiny_model_dir)
    yield server
    server.close()


def _phase(run, pid):
    """"loading" once this process has written run.json, "running" once its loop has started."""
    try:
        info = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if info.get("pid") != pid:
        return None
    return "running" if info.get("status") == "running" else "loading"


def check_complete(run) -> list[str]:
    """Assert every visible file parses; return the hidden partial writes found."""
    partial = []
    for p in sorted(run.rglob("*")):
        rel = p.relative_to(run)
        if any(part.startswith(".") for part in rel.parts) and rel.name != ".lock":
            partial.append(str(rel))
            continue
        if p.is_dir():
            if p.parent.name == "checkpoints":
                assert {f.name for f in p.iterdir()} == CKPT_FILES, rel
            continue
        if p.suffix == ".json":
            assert isinstance(json.loads(p.read_text()), dict), rel
        elif p.suffix == ".png":  # loss.png (train/reporting.py): whole = ends with the IEND chunk
            data = p.read_bytes()
            assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), rel
        elif p.suffix == ".safetensors":
            assert mx.load(str(p)), rel
        elif p.name == "metrics.jsonl":
            lines = p.read_text().split("\n")
            for line in lines[:-1]:  # every newline-terminated line is whole
                json.loads(line)
        elif p.name == ".lock":
            text = p.read_text()
            assert text == "" or json.loads(text)["pid"], rel  # empty = killed between create and write
        else:
            p.read_text(encoding="utf-8")
    return partial


def test_kill9_at_random_moments_then_resume_is_bit_identical(tiny_model_dir, tmp_path, forkserver, numbered_rows):
    data = numbered_rows(tmp_path / "d.jsonl", 30, "say {i}", "Aye! {i}")
    ref = tmp_path / "ref"
    done = subprocess.run([sys.executable, "-m", "localtune", *_args(tmp_path, tiny_model_dir, data, ref)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ref_losses = {m["step"]: m["train_loss"] for m in read_metrics(ref / "metrics.jsonl") if "train_loss" in m}
    assert sorted(ref_losses) == list(range(1, ITERS + 1))

    rng = random.Random(20240611)
    kills, mid_save, runs_done, resumed_from = 0, 0, [], []
    run_no = 0
    while kills < KILLS:
        run = tmp_path / f"run{run_no}"
        argv = (["train", "sft", "--resume", str(run)] if (run / "run.json").exists()
                else _args(tmp_path, tiny_model_dir, data, run))
        before = set(check_complete(run)) if run.exists() else set()
        proc = Trainer(forkserver, argv, tmp_path / "stderr.txt", slow_save=0.01)
        # One kill in four during loading; the rest while stepping, saving or pruning.
        wait_for = "loading" if rng.random() < 0.25 else "running"
        deadline = time.time() + 60
        while _phase(run, proc.pid) not in (wait_for, "running") and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.4 if wait_for == "loading" else 0.7))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        err = proc.wait()  # reaped: its pid is dead, the lock is stale
        assert "Traceback" not in err, err
        partial = set(check_complete(run)) if run.exists() else set()
        mid_save += bool(partial - before)  # this kill (not an earlier one) cut a write short
        status = json.loads((run / "run.json").read_text())["status"] if (run / "run.json").exists() else None
        if status == "finished":
            runs_done.append(run)
            run_no += 1
        elif proc.returncode != -signal.SIGKILL:
            raise AssertionError(f"exit {proc.returncode}, status {status}: {err}")
        else:
            steps = sorted(p.name for p in (run / "checkpoints").glob("step-*")) if (run / "checkpoints").exists() else []
            resumed_from.append(steps[-1] if steps else "start")

    # Finish whatever is left, without kills: resume must accept a "running" run with a dead lock.
    for run in {tmp_path / f"run{i}" for i in range(run_no + 1)} - set(runs_done):
        if not (run / "run.json").exists():
            continue  # killed before it wrote anything: nothing to resume
        proc = Trainer(forkserver, ["train", "sft", "--resume", str(run)], tmp_path / "stderr.txt")
        err = proc.wait()
        assert proc.returncode == 0, err
        runs_done.append(run)

    assert kills == KILLS and mid_save >= 1, (kills, mid_save, resumed_from, [r.name for r in runs_done])
    assert runs_done
    ref_adapter = (ref / "adapters.safetensors").read_bytes()
    for run in runs_done:
        assert not check_complete(run), "partial writes left after a resume"
        assert json.loads((run / "run.json").read_text())["status"] == "finished"
        got = [(m["step"], m["train_loss"]) for m in read_metrics(run / "metrics.jsonl") if "train_loss" in m]
        assert [s for s, _ in got] == list(range(1, ITERS + 1)), got  # nothing doubled or missing
        for step, loss in got:
            assert loss == ref_losses[step], (run.name, step, loss, ref_losses[step])  # bit-identical
        assert (run / "adapters.safetensors").read_bytes() == ref_adapter
        a, b = mx.load(str(ref / "adapters.safetensors")), mx.load(str(run / "adapters.safetensors"))
        assert all(np.array_equal(np.array(a[k]), np.array(b[k])) for k in a)
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
            f"step-{ITERS - 1:06d}", f"step-{ITERS:06d}"]  # keep-last-2
    print(f"\nkills={kills} mid_save={mid_save} runs={len(runs_done)} resumed_from={resumed_from}")
