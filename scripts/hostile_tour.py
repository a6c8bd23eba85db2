"""The hostile tour of issue 14: every command tried the way a careless or unlucky user would (wrong
paths, damaged files, a full or read-only disk, signals, closed pipes, nonsense numbers, escape
sequences in data), each in its own scratch copy, judged for tracebacks, silently wrong results,
lost files and half-written leftovers.

    python scripts/hostile_tour.py [--code DIR] [--only SUBSTRING] [--json OUT]

--code is the localtune source tree under test (PYTHONPATH), so the same tour can be run on an
older checkout to compare (`--code /work/main`). The disk-full and read-only cases mount a small
tmpfs, so they need root; elsewhere they are reported as skipped. A few minutes on two cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


@dataclass
class Case:
    name: str
    kind: str  # the kinds: destroyed, traceback, wrong
    argv: list[str]
    expect: int | tuple = 2  # exit status (or the statuses that are all right)
    setup: Callable[[Path], None] | None = None
    protect: tuple[str, ...] = ()  # paths whose files must not change
    absent: tuple[str, ...] = ()  # paths that must not exist afterwards (half-written output)
    says: str | None = None  # must appear in stdout or stderr (a warning, a hint)
    stdout_lacks: str | None = None  # must not appear in stdout (a raw escape sequence)
    mount: str | None = None  # "full:SIZE:DIR" / "ro:DIR": a tmpfs (root only)
    signal: int | None = None  # sent once `wait_for` exists (or after 3 s)
    wait_for: str | None = None
    pipe_head: bool = False  # stdout into `head -1`
    env: dict = field(default_factory=dict)


def _rows(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"yo {i}"}]}


def build_template(work: Path, code: Path) -> Path:
    """tiny (and tiny2: other weights, same shapes), data files, a trained run, a GGUF."""
    from tiny import make_tiny_model_dir

    t = work / "template"
    t.mkdir(parents=True)
    make_tiny_model_dir(t / "tiny")
    make_tiny_model_dir(t / "tiny2", seed=1)
    _rows(t / "d.jsonl", [_chat(i) for i in range(20)])
    _rows(t / "p.jsonl", [{"prompt": f"q {i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(10)])
    same = "The answer to this question is certainly "
    _rows(t / "pid.jsonl", [{"prompt": f"q{i}", "chosen": same + "yes", "rejected": same + "no"} for i in range(6)])
    _rows(t / "pmix.jsonl", [{"prompt": f"q{i}", "chosen": same + "yes", "rejected": same + "no"} for i in range(6)]
          + [{"prompt": f"q{i}", "chosen": "Yes", "rejected": "No"} for i in range(6)])
    _rows(t / "esc.jsonl", [{"messages": [{"role": "user", "content": "hi \x1b]0;PWNED\x07 \x1b[2J there"},
                                          {"role": "assistant", "content": "ok \x1b[31mred\u202e"}]},
                            {"messages": [{"role": "user", "content": "\x1b[2J"}]}])
    (t / "bad.jsonl").write_text('{"nope": 1}\n' * 3000)
    (t / "big.jsonl").write_text("".join(json.dumps(_chat(i)) + "\n" for i in range(3000)))
    (t / "userdir").mkdir()
    (t / "userdir" / "keep.txt").write_text("precious\n")
    (t / "afile.txt").write_text("precious\n")
    env = {**os.environ, "PYTHONPATH": str(code)}
    for argv in (["train", "sft", "--model", "tiny", "--data", "d.jsonl", "--out", "runs/r1", "--iters", "4",
                  "--batch-size", "2", "--save-every", "2"],
                 ["export", "runs/r1", "--format", "gguf", "--out", "model.gguf", "--model", "tiny"]):
        subprocess.run([sys.executable, "-m", "localtune", *argv], cwd=t, env=env, check=True,
                       capture_output=True, timeout=600)
    (t / "runs" / "r1" / "export-gguf.gguf").unlink(missing_ok=True)
    return t


def snapshot(path: Path) -> dict:
    if not path.exists():
        return {}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.name != ".lock"}


LEFTOVER = re.compile(r"^\..*(\.tmp|\.tmp-\d+-\d+|\.old-\d+-\d+|\.staged-\d+\.tmp|\.gguf|\.safetensors)$")


def leftovers(box: Path) -> list[str]:
    return sorted(str(p.relative_to(box)) for p in box.rglob(".*")
                  if LEFTOVER.match(p.name) and "checkpoints" not in p.parts)


def _mount(box: Path, spec: str) -> Path | None:
    if os.geteuid() != 0:
        return None
    kind, *rest = spec.split(":")
    where = box / rest[-1]
    keep = where.with_name(where.name + ".content")
    if where.exists():
        shutil.move(where, keep)
    where.mkdir(parents=True, exist_ok=True)
    size = rest[0] if kind == "full" else "4m"
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    if keep.exists():
        for p in keep.iterdir():
            shutil.move(str(p), where / p.name)
        keep.rmdir()
    if kind == "ro":
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
    return where


def run_case(case: Case, template: Path, code: Path, work: Path) -> dict:
    box = work / "boxes" / re.sub(r"\W+", "_", case.name)
    shutil.copytree(template, box, symlinks=True)
    if case.setup:
        case.setup(box)
    mounted = _mount(box, case.mount) if case.mount else None
    if case.mount and mounted is None:
        return {"name": case.name, "kind": case.kind, "outcome": "skipped", "detail": "needs root for tmpfs"}
    before = {p: snapshot(box / p) for p in case.protect}
    env = {**os.environ, "PYTHONPATH": str(code), "COLUMNS": "200", **case.env}
    cmd = [sys.executable, "-m", "localtune", *case.argv]
    try:
        return _judge(case, box, before, *_execute(case, box, cmd, env))
    except subprocess.TimeoutExpired:
        return {"name": case.name, "kind": case.kind, "outcome": "hang", "detail": "no answer in 180 s"}
    finally:
        if mounted is not None:
            subprocess.run(["mount", "-o", "remount,rw", str(mounted)], capture_output=True)
            subprocess.run(["umount", str(mounted)], capture_output=True)


def _execute(case: Case, box: Path, cmd: list[str], env: dict) -> tuple[int, str, str]:
    try:
        if case.pipe_head:
            sh = " ".join(map(_quote, cmd)) + " | head -1; exit ${PIPESTATUS[0]}"
            p = subprocess.run(["bash", "-c", sh], cwd=box, env=env, capture_output=True, text=True, timeout=180,
                               errors="replace")
            rc, out, err = p.returncode, p.stdout, p.stderr
        elif case.signal:
            proc = subprocess.Popen(cmd, cwd=box, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, errors="replace")
            deadline = time.time() + (120 if case.wait_for else 3)
            while time.time() < deadline and not (case.wait_for and (box / case.wait_for).exists()):
                time.sleep(0.1)
            proc.send_signal(case.signal)
            out, err = proc.communicate(timeout=180)
            rc = proc.returncode
        else:
            p = subprocess.run(cmd, cwd=box, env=env, capture_output=True, text=True, timeout=180,
                               errors="replace")
            rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        if case.signal:
            proc.kill()
            proc.communicate()
        raise
    return rc, out, err


def _judge(case: Case, box: Path, before: dict, rc: int, out: str, err: str) -> dict:
    problems = []
    if "Traceback" in err:
        last = [ln for ln in err.strip().splitlines() if ln and not ln.startswith(" ")][-1:]
        problems.append(("traceback", last[0] if last else "Traceback"))
    lost = [p for p in case.protect if snapshot(box / p) != before[p]]
    if lost:
        problems.append(("lost", f"changed: {', '.join(lost)}"))
    ok_rc = case.expect if isinstance(case.expect, tuple) else (case.expect,)
    if rc not in ok_rc and not any(k == "traceback" for k, _ in problems):
        problems.append(("wrong", f"exit {rc}, expected {case.expect}"))
    if case.says and case.says not in out + err:
        problems.append(("wrong", f"does not say {case.says!r}"))
    if case.stdout_lacks and case.stdout_lacks in out:
        problems.append(("wrong", f"raw {case.stdout_lacks!r} printed"))
    half = [p for p in case.absent if (box / p).exists()] + (leftovers(box) if rc != 0 else [])
    if half:
        problems.append(("half-written", ", ".join(half)))
    first = next((ln for ln in err.strip().splitlines() if ln.startswith(("error", "warning"))), "")
    return {"name": case.name, "kind": case.kind, "rc": rc,
            "outcome": problems[0][0] if problems else "ok",
            "detail": "; ".join(d for _, d in problems) or first[:200]}


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


# --- the cases -------------------------------------------------------------------------------------

def _copy(src: str, dst: str):
    return lambda box: shutil.copytree(box / src, box / dst) if (box / src).is_dir() else shutil.copy(box / src, box / dst)


def _truncate(path: str, keep: int | None = None, cut: int | None = None):
    def do(box: Path):
        p = box / path
        size = p.stat().st_size
        os.truncate(p, keep if keep is not None else size - cut)
    return do


def _write(path: str, text: str):
    def do(box: Path):
        (box / path).parent.mkdir(parents=True, exist_ok=True)
        (box / path).write_text(text)
    return do


def _all(*steps):
    def do(box: Path):
        for s in steps:
            s(box)
    return do


def _longer_run(box: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.environ["TOUR_CODE"]}
    subprocess.run([sys.executable, "-m", "localtune", "train", "sft", "--resume", "runs/r1", "--iters", "6"],
                   cwd=box, env=env, capture_output=True, timeout=600)


def _failed_at_start(box: Path) -> None:
    """A run into runs/x with a damaged model (it fails before its first step)."""
    _write("broken/config.json", "{")(box)
    (box / "broken" / "model.safetensors").write_bytes(b"")
    shutil.copy(box / "tiny" / "tokenizer.json", box / "broken")
    argv = [a if a != "tiny" else "broken" for a in TRAIN]
    subprocess.run([sys.executable, "-m", "localtune", *argv, "--out", "runs/x", "--iters", "1"], cwd=box,
                   capture_output=True, env={**os.environ, "PYTHONPATH": os.environ["TOUR_CODE"]}, timeout=600)


def _many_runs(box: Path) -> None:
    """More runs than a pipe buffers (64 KiB of listing), so writing the listing does hit the close."""
    for i in range(1200):
        _write(f"runs/m{i:04d}/run.json", '{"kind": "sft", "status": "finished"}')(box)


def _filename_with_escape(box: Path) -> None:
    shutil.copy(box / "esc.jsonl", box / "esc\x1b[31m.jsonl")
    shutil.copytree(box / "runs" / "r1", box / "runs" / "ev\x1b]0;x\x07il")


EXP = ["export", "runs/r1", "--model", "tiny"]
TRAIN = ["train", "sft", "--model", "tiny", "--data", "d.jsonl", "--batch-size", "2"]
RUN_FILES = ("runs/r1",)


def cases() -> list[Case]:
    c = [
        # -- work destroyed: outputs over what localtune did not create ------------------------
        Case("export fused --out non-empty user dir", "destroyed", EXP + ["--format", "fused", "--out", "userdir"],
             protect=("userdir",)),
        Case("export fused --out the run itself", "destroyed", EXP + ["--format", "fused", "--out", "runs/r1"],
             protect=RUN_FILES),
        Case("export fused --out the run itself --force", "destroyed",
             EXP + ["--format", "fused", "--out", "runs/r1", "--force"], protect=RUN_FILES),
        Case("export fused --out runs/ (parent of runs) --force", "destroyed",
             EXP + ["--format", "fused", "--out", "runs", "--force"], protect=("runs",)),
        Case("export fused --out . --force", "destroyed", EXP + ["--format", "fused", "--out", ".", "--force"],
             protect=("runs", "tiny", "d.jsonl")),
        Case("export fused --out its base model --force", "destroyed",
             EXP + ["--format", "fused", "--out", "tiny", "--force"], protect=("tiny",)),
        Case("export fused --out another finished run --force", "destroyed",
             EXP + ["--format", "fused", "--out", "runs/r2", "--force"], setup=_copy("runs/r1", "runs/r2"),
             protect=("runs/r2",)),
        Case("export peft --out non-empty user dir", "destroyed", EXP + ["--format", "peft", "--out", "userdir"],
             protect=("userdir",)),
        Case("export peft --out the run itself", "destroyed", EXP + ["--format", "peft", "--out", "runs/r1"],
             protect=RUN_FILES),
        Case("export gguf --out run.json --force", "destroyed",
             EXP + ["--format", "gguf", "--out", "runs/r1/run.json", "--force"], protect=RUN_FILES),
        Case("export gguf --out an existing file", "destroyed", EXP + ["--format", "gguf", "--out", "afile.txt"],
             protect=("afile.txt",)),
        Case("export twice to the default --out", "destroyed", EXP,
             setup=_write("runs/r1/export-peft/mine.txt", "mine"), protect=("runs/r1/export-peft",)),
        Case("export --force into a user dir (allowed)", "destroyed",
             EXP + ["--format", "peft", "--out", "userdir", "--force"], expect=0),
        Case("models import GGUF into non-empty user dir", "destroyed", ["models", "import", "model.gguf", "userdir"],
             protect=("userdir",)),
        Case("models import GGUF into its own folder --force", "destroyed",
             ["models", "import", "g/model.gguf", "g", "--force"],
             setup=_all(_write("g/notes.txt", "mine"), lambda b: shutil.copy(b / "model.gguf", b / "g")),
             protect=("g",)),
        Case("models import GGUF into a run --force", "destroyed", ["models", "import", "model.gguf", "runs/r1",
                                                                    "--force"], protect=RUN_FILES),
        Case("models quantize a model onto itself", "destroyed", ["models", "quantize", "tiny", "tiny"],
             protect=("tiny",)),
        Case("models quantize into the source --force", "destroyed", ["models", "quantize", "tiny", "tiny/q",
                                                                      "--force"], protect=("tiny",)),
        Case("models quantize into non-empty user dir", "destroyed", ["models", "quantize", "tiny", "userdir"],
             protect=("userdir",)),
        Case("data split --out a run", "destroyed", ["data", "split", "d.jsonl", "--out", "runs/r1"],
             protect=RUN_FILES, absent=("runs/r1/train.jsonl",)),
        Case("data split over an existing split", "destroyed", ["data", "split", "d.jsonl", "--out", "sp"],
             setup=_all(_write("sp/train.jsonl", "mine\n"), _write("sp/valid.jsonl", "mine\n")), protect=("sp",)),
        Case("train --out a non-empty user dir", "destroyed", TRAIN + ["--out", "userdir", "--iters", "2"],
             protect=("userdir",), absent=("userdir/run.json",)),
        Case("train --out an existing file", "destroyed", TRAIN + ["--out", "afile.txt", "--iters", "2"],
             protect=("afile.txt",)),
        # -- tracebacks: wrong kinds of path ----------------------------------------------------
        Case("export peft --out an existing file", "traceback", EXP + ["--format", "peft", "--out", "afile.txt"],
             protect=("afile.txt",)),
        Case("export gguf --out an existing dir", "traceback", EXP + ["--format", "gguf", "--out", "userdir"],
             protect=("userdir",)),
        Case("export --out below a file", "traceback", EXP + ["--out", "afile.txt/x"], protect=("afile.txt",)),
        Case("data split --out an existing file", "traceback", ["data", "split", "d.jsonl", "--out", "afile.txt"],
             protect=("afile.txt",)),
        Case("chat --adapter a missing dir", "traceback", ["chat", "--adapter", "nope", "--prompt", "hi"]),
        Case("export a missing run", "traceback", ["export", "nope"]),
        Case("resume a dir that is not a run", "traceback", ["train", "sft", "--resume", "userdir"],
             protect=("userdir",)),
        # -- damaged files in a run ---------------------------------------------------------------
        Case("chat: truncated adapters.safetensors", "traceback",
             ["chat", "--adapter", "runs/r1", "--prompt", "hi", "--max-tokens", "2"],
             setup=_truncate("runs/r1/adapters.safetensors", keep=100)),
        Case("export: truncated adapters.safetensors", "traceback", EXP + ["--out", "o"],
             setup=_truncate("runs/r1/adapters.safetensors", keep=100), absent=("o",)),
        Case("train --adapter: truncated adapter", "traceback",
             TRAIN + ["--out", "runs/x", "--iters", "1", "--adapter", "runs/r1"],
             setup=_truncate("runs/r1/adapters.safetensors", keep=100)),
        Case("chat: adapter with its tail cut", "traceback",
             ["chat", "--adapter", "runs/r1", "--prompt", "hi", "--max-tokens", "2"],
             setup=_truncate("runs/r1/adapters.safetensors", cut=1000)),
        Case("chat: garbage adapter_config.json", "traceback",
             ["chat", "--adapter", "runs/r1", "--prompt", "hi", "--max-tokens", "2"],
             setup=_write("runs/r1/adapter_config.json", "garbage")),
        Case("chat: adapter_config.json of wrong types", "traceback",
             ["chat", "--adapter", "runs/r1", "--prompt", "hi", "--max-tokens", "2"],
             setup=_write("runs/r1/adapter_config.json", '{"lora_parameters": [], "num_layers": "x"}')),
        Case("chat: run.json not JSON", "traceback",
             ["chat", "--adapter", "runs/r1", "--prompt", "hi", "--max-tokens", "2"],
             setup=_write("runs/r1/run.json", '{"a":')),
        Case("chat: run.json a list", "traceback", ["chat", "--adapter", "runs/r1", "--prompt", "hi"],
             setup=_write("runs/r1/run.json", "[1, 2]")),
        Case("resume: run.json a list", "traceback", ["train", "sft", "--resume", "runs/r1"],
             setup=_write("runs/r1/run.json", "[1, 2]")),
        Case("runs: one run.json a list", "traceback", ["runs", "--root", "runs"], expect=0,
             setup=_write("runs/r1/run.json", "[1, 2]")),
        Case("export: run.json not JSON", "traceback", ["export", "runs/r1", "--out", "o"],
             setup=_write("runs/r1/run.json", "{"), absent=("o",)),
        Case("resume: metrics.jsonl with nonsense lines", "traceback",
             ["train", "sft", "--resume", "runs/r1", "--iters", "6"], expect=0,
             setup=lambda b: open(b / "runs/r1/metrics.jsonl", "a").write(
                 '{"event": "train", "step": "x", "train_loss": "y"}\n{"train_loss": 1.5}\nnull\n[1]\n')),
        # A damaged newest checkpoint: resume falls back to the newest good one (step 4) and says so.
        Case("resume: truncated optimizer state", "traceback", ["train", "sft", "--resume", "runs/r1", "--iters", "8"],
             expect=0, says="resumed at step 4",
             setup=_all(_longer_run, _truncate("runs/r1/checkpoints/step-000006/optimizer.safetensors", keep=50),
                        _copy("runs/r1/checkpoints/step-000004", "keep-step4")),
             protect=("keep-step4",)),
        Case("resume: empty trainer_state.json", "traceback", ["train", "sft", "--resume", "runs/r1", "--iters", "8"],
             expect=0, says="resumed at step 4",
             setup=_all(_longer_run, _write("runs/r1/checkpoints/step-000006/trainer_state.json", "{}"))),
        Case("resume: truncated checkpoint adapter", "traceback",
             ["train", "sft", "--resume", "runs/r1", "--iters", "8"], expect=0, says="resumed at step 4",
             setup=_all(_longer_run, _truncate("runs/r1/checkpoints/step-000006/adapters.safetensors", keep=50))),
        # -- damaged models -----------------------------------------------------------------------
        Case("train: truncated model weights", "traceback", TRAIN + ["--out", "runs/x", "--iters", "1"],
             setup=_truncate("tiny/model.safetensors", keep=1000)),
        Case("chat: truncated model weights", "traceback", ["chat", "--model", "tiny", "--prompt", "hi"],
             setup=_truncate("tiny/model.safetensors", keep=1000)),
        Case("chat: model weights with the tail cut", "traceback", ["chat", "--model", "tiny", "--prompt", "hi"],
             setup=_truncate("tiny/model.safetensors", cut=5000)),
        Case("export: truncated base weights", "traceback", EXP + ["--format", "fused", "--out", "o"],
             setup=_truncate("tiny/model.safetensors", keep=1000), absent=("o",)),
        Case("quantize: truncated weights", "traceback", ["models", "quantize", "tiny", "q"],
             setup=_truncate("tiny/model.safetensors", keep=1000), absent=("q",)),
        Case("quantize: config.json not JSON", "traceback", ["models", "quantize", "tiny", "q"],
             setup=_write("tiny/config.json", "garbage")),
        Case("plan: config.json not JSON", "traceback", ["plan", "--model", "tiny", "--data", "d.jsonl"],
             setup=_write("tiny/config.json", "garbage")),
        Case("train: config.json a list", "traceback", TRAIN + ["--out", "runs/x", "--iters", "1"],
             setup=_write("tiny/config.json", "[]")),
        Case("plan: config.json a list", "traceback", ["plan", "--model", "tiny", "--data", "d.jsonl"],
             setup=_write("tiny/config.json", "[]")),
        Case("chat: tokenizer.json not JSON", "traceback", ["chat", "--model", "tiny", "--prompt", "hi"],
             setup=_write("tiny/tokenizer.json", "garbage")),
        Case("models import: truncated GGUF", "traceback", ["models", "import", "model.gguf", "m"],
             setup=_truncate("model.gguf", keep=5000), absent=("m",)),
        Case("models import: not a GGUF", "traceback", ["models", "import", "d.jsonl", "m"], absent=("m",)),
        Case("retry a run that failed at start (damaged model, then fixed)", "wrong",
             TRAIN + ["--out", "runs/x", "--iters", "1"], expect=0, setup=_failed_at_start),
        # -- numbers out of range -------------------------------------------------------------------
        *[Case(f"train sft {' '.join(flag)}", "wrong", TRAIN + ["--out", "runs/n", "--iters", "2", *flag],
               absent=("runs/n",))
          for flag in (["--warmup", "-5"], ["--lora-alpha", "0"], ["--lora-alpha", "-1"], ["--lr", "nan"],
                       ["--lr", "inf"], ["--epochs", "nan"], ["--weight-decay", "-1"], ["--grad-clip", "-1"],
                       ["--grad-clip", "0"], ["--eval-every", "-1"], ["--save-every", "-1"],
                       ["--keep-checkpoints", "0"], ["--val-batches", "0"], ["--seed", "-1"],
                       ["--lora-layers", "-3"], ["--lora-dropout", "nan"])],
        Case("train sft --lora-layers 0 (message)", "wrong", TRAIN + ["--out", "runs/n", "--lora-layers", "0"],
             says="lora_layers", absent=("runs/n",)),
        Case("train dpo --beta nan", "wrong", ["train", "dpo", "--model", "tiny", "--data", "p.jsonl", "--out",
                                               "runs/n", "--beta", "nan"], absent=("runs/n",)),
        Case("train dpo --orpo-lambda inf", "wrong", ["train", "dpo", "--model", "tiny", "--data", "p.jsonl",
                                                      "--out", "runs/n", "--loss", "orpo", "--orpo-lambda", "inf"],
             absent=("runs/n",)),
        Case("config YAML lr: .nan", "wrong", ["train", "sft", "--config", "c.yaml", "--out", "runs/n"],
             setup=_write("c.yaml", "model: tiny\ndata: d.jsonl\nlr: .nan\n"), absent=("runs/n",)),
        Case("resume with --lr nan", "wrong", ["train", "sft", "--resume", "runs/r1", "--lr", "nan", "--iters", "6"],
             protect=RUN_FILES),
        Case("data stats --max-seq-len 0", "wrong", ["data", "stats", "d.jsonl", "--model", "tiny",
                                                     "--max-seq-len", "0"]),
        Case("data split --valid-fraction nan", "wrong", ["data", "split", "d.jsonl", "--out", "s",
                                                          "--valid-fraction", "nan"], absent=("s",)),
        Case("data preview --row 0", "wrong", ["data", "preview", "d.jsonl", "--model", "tiny", "--row", "0"]),
        Case("plan --memory-gb -1", "wrong", ["plan", "--model", "tiny", "--data", "d.jsonl", "--memory-gb", "-1"]),
        Case("plan --gflops nan", "wrong", ["plan", "--model", "tiny", "--data", "d.jsonl", "--gflops", "nan"]),
        Case("demo --iters 0", "wrong", ["demo", "--iters", "0"]),
        # -- DPO pairs that truncation makes identical ------------------------------------------------
        Case("dpo: every pair identical after --max-seq-len", "wrong",
             ["train", "dpo", "--model", "tiny", "--data", "pid.jsonl", "--out", "runs/n", "--iters", "2",
              "--max-seq-len", "40"]),
        Case("dpo: half the pairs identical after --max-seq-len", "wrong",
             ["train", "dpo", "--model", "tiny", "--data", "pmix.jsonl", "--out", "runs/n", "--iters", "1",
              "--max-seq-len", "40"], expect=0, says="identical"),
        # -- an adapter on a base it was not trained on ---------------------------------------------
        Case("chat: adapter on another base of the same shapes", "wrong",
             ["chat", "--adapter", "runs/r1", "--model", "tiny2", "--prompt", "hi", "--max-tokens", "2"],
             expect=0, says="warning"),
        Case("export: adapter on another base of the same shapes", "wrong",
             ["export", "runs/r1", "--model", "tiny2", "--out", "o"], expect=0, says="warning"),
        Case("train --adapter on another base of the same shapes", "wrong",
             ["train", "dpo", "--model", "tiny2", "--adapter", "runs/r1", "--data", "p.jsonl", "--out", "runs/n",
              "--iters", "1"], expect=0, says="warning"),
        # -- escape sequences in data printed raw ---------------------------------------------------
        Case("data preview of a row with escape sequences", "wrong", ["data", "preview", "esc.jsonl", "--model",
                                                                      "tiny"], expect=0, stdout_lacks="\x1b"),
        Case("data check of a file named with an escape", "wrong", ["data", "check", "esc\x1b[31m.jsonl"],
             expect=1, stdout_lacks="\x1b", setup=_filename_with_escape),
        Case("runs with a run named with an escape", "wrong", ["runs", "--root", "runs"], expect=0,
             stdout_lacks="\x1b", setup=_filename_with_escape),
        # -- closed pipes ---------------------------------------------------------------------------
        Case("runs | head -1", "traceback", ["runs", "--root", "runs"], expect=141, pipe_head=True,
             setup=_many_runs),
        # short outputs may be written whole before `head` closes: 0 is as right as 141 then
        Case("doctor | head -1", "traceback", ["doctor"], expect=(0, 141), pipe_head=True),
        Case("data stats --json | head -1", "traceback", ["data", "stats", "big.jsonl", "--no-tokens", "--json"],
             expect=(0, 141), pipe_head=True),
        Case("data check | head -1", "traceback", ["data", "check", "bad.jsonl", "bad.jsonl", "bad.jsonl"],
             expect=141, pipe_head=True),
        Case("train sft | head -1 (stops, resumable)", "traceback",
             TRAIN + ["--out", "runs/n", "--iters", "300", "--batch-size", "1"], expect=141, pipe_head=True),
        # -- signals ------------------------------------------------------------------------------
        Case("train: SIGTERM exits 143", "wrong", TRAIN + ["--out", "runs/n", "--iters", "5000"], expect=143,
             signal=signal.SIGTERM, wait_for="runs/n/metrics.jsonl"),
        Case("train: Ctrl-C exits 130", "wrong", TRAIN + ["--out", "runs/n", "--iters", "5000"], expect=130,
             signal=signal.SIGINT, wait_for="runs/n/metrics.jsonl"),
        Case("export: SIGTERM leaves no temp", "wrong", EXP + ["--format", "fused", "--out", "o"], expect=143,
             signal=signal.SIGTERM, absent=("o",)),
        # -- a full disk --------------------------------------------------------------------------
        Case("train: disk full at start", "traceback", TRAIN + ["--out", "full/r", "--iters", "2"],
             mount="full:8k:full"),
        Case("train: disk full at a checkpoint", "traceback",
             TRAIN + ["--out", "full/r", "--iters", "20", "--save-every", "5", "--lora-rank", "64"],
             mount="full:200k:full"),
        Case("export fused: disk full", "traceback", EXP + ["--format", "fused", "--out", "full/f"],
             mount="full:100k:full", absent=("full/f",)),
        Case("export gguf: disk full", "traceback", EXP + ["--format", "gguf", "--out", "full/f.gguf"],
             mount="full:100k:full", absent=("full/f.gguf",)),
        Case("export peft: disk full", "traceback", EXP + ["--format", "peft", "--out", "full/p"],
             mount="full:40k:full", absent=("full/p",)),
        Case("data split: disk full", "traceback", ["data", "split", "big.jsonl", "--out", "full/s"],
             mount="full:100k:full", absent=("full/s",)),
        Case("models import: disk full", "traceback", ["models", "import", "model.gguf", "full/m"],
             mount="full:100k:full", absent=("full/m",)),
        Case("models quantize: disk full", "traceback", ["models", "quantize", "tiny", "full/q"],
             mount="full:40k:full", absent=("full/q",)),
        # -- a read-only disk ---------------------------------------------------------------------
        Case("train --out on a read-only disk", "traceback", TRAIN + ["--out", "ro/r", "--iters", "2"],
             mount="ro:ro"),
        Case("export fused to a read-only disk", "traceback", EXP + ["--format", "fused", "--out", "ro/f"],
             mount="ro:ro"),
        Case("export peft to a read-only disk", "traceback", EXP + ["--format", "peft", "--out", "ro/f"],
             mount="ro:ro"),
        Case("export gguf to a read-only disk", "traceback", EXP + ["--format", "gguf", "--out", "ro/f.gguf"],
             mount="ro:ro"),
        Case("data split to a read-only disk", "traceback", ["data", "split", "d.jsonl", "--out", "ro/s"],
             mount="ro:ro"),
        Case("models quantize to a read-only disk", "traceback", ["models", "quantize", "tiny", "ro/q"],
             mount="ro:ro"),
        Case("models import to a read-only disk", "traceback", ["models", "import", "model.gguf", "ro/m"],
             mount="ro:ro"),
        Case("resume a run on a read-only disk", "traceback", ["train", "sft", "--resume", "ro/r1"],
             setup=_copy("runs/r1", "ro/r1"), mount="ro:ro"),
        Case("chat with a run on a read-only disk", "traceback",
             ["chat", "--adapter", "ro/r1", "--prompt", "hi", "--max-tokens", "2"], expect=0,
             setup=_copy("runs/r1", "ro/r1"), mount="ro:ro"),
        # -- assorted -------------------------------------------------------------------------------
        Case("data check a directory", "traceback", ["data", "check", "runs"], expect=1),
        Case("data check binary junk", "traceback", ["data", "check", "tiny/model.safetensors"], expect=1),
        Case("data stats an empty file", "traceback", ["data", "stats", "e.jsonl", "--no-tokens"],
             setup=_write("e.jsonl", "")),
        Case("models download a bad id (offline)", "traceback", ["models", "download", "not/a-repo-xyz"],
             env={"HF_HUB_OFFLINE": "1"}),
        Case("runs --root a file", "traceback", ["runs", "--root", "d.jsonl"], expect=0),
        Case("train --config a binary file", "traceback", ["train", "sft", "--config", "bin.yaml"],
             setup=lambda b: (b / "bin.yaml").write_bytes(b"\xff\xfe\x00")),
        Case("train --config a directory", "traceback", ["train", "sft", "--config", "userdir"]),
        Case("train --valid a missing file", "traceback", TRAIN + ["--valid", "nope.jsonl", "--out", "runs/n"]),
        Case("export --out a 300-character name", "traceback", EXP + ["--out", "x" * 300]),
        Case("tui without a terminal", "traceback", ["tui"]),
    ]
    return c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--code", default=str(ROOT), help="localtune source tree to test (PYTHONPATH)")
    ap.add_argument("--only", help="run the cases whose name contains this")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = ap.parse_args()
    code = Path(a.code).resolve()
    os.environ["TOUR_CODE"] = str(code)
    work = Path(tempfile.mkdtemp(prefix="localtune-tour-"))
    results = []
    try:
        template = build_template(work, code)
        for case in cases():
            if a.only and a.only not in case.name:
                continue
            r = run_case(case, template, code, work)
            results.append(r)
            print(f"{r['outcome']:<12} {r.get('rc', '-')!s:>4}  {case.name}: {r['detail']}", flush=True)
    finally:
        if not a.keep:
            for m in sorted((work / "boxes").glob("*/*"), reverse=True):
                if os.path.ismount(m):
                    subprocess.run(["umount", str(m)], capture_output=True)
            shutil.rmtree(work, ignore_errors=True)
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    print("\n" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" (of {len(results)} cases)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0 if all(r["outcome"] in ("ok", "skipped") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
