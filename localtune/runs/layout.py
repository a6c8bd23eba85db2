"""The names inside a run directory: the only place they are spelled (a test greps for strays).

adapters/<run>/
  run.json                 the run's record: kind, status, pid, times, config (absolute paths), hashes
  adapter_config.json      mlx_lm-compatible adapter (the latest saved weights)
  adapters.safetensors
  reward_head.safetensors  reward runs: the value head (hidden -> 1) beside the adapter
  metrics.jsonl            one event per line (train, val, skipped, phase), appended
  train.log                human-readable log
  checkpoints/step-NNNNNN/ adapter (+ a mode's own parts, e.g. the reward head) + optimizer state
                           + trainer state (step, data order, the parts' file names)
  reference/               DPO reference log-probs, cached
  start_adapter/           a copy of the adapter the run started from (--adapter)
  eval/<name>/             evaluations of the run: summary.json + answers.jsonl (localtune eval's
                           <time>, or step-NNNNNN for those made during training)
  feedback/<name>/         feedback sessions sampled from the run (localtune.feedback.session)
  loss.png, tensorboard/, console.log, tui-config.yaml
No imports here: everything may import this module.
"""

from __future__ import annotations

import re
from pathlib import Path

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
LOCK_FILE = ".lock"
# mlx_lm's adapter directory format (a run directory is one; lora.py reads and writes it).
ADAPTER_FILE = "adapters.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
# A reward model's value head (train/reward.py), kept out of the adapter file so mlx_lm, PEFT export
# and every other reader of the adapter see a plain LoRA adapter.
REWARD_HEAD_FILE = "reward_head.safetensors"
# Files that travel with an adapter when present (the copy a run keeps of the adapter it started from).
ADAPTER_EXTRA_FILES = (REWARD_HEAD_FILE,)

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step-"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
CHECKPOINT_FILES = (ADAPTER_FILE, ADAPTER_CONFIG_FILE, OPTIMIZER_FILE, STATE_FILE)

REFERENCE_DIR = "reference"
START_ADAPTER_DIR = "start_adapter"
EVAL_DIR = "eval"
EVAL_SUMMARY_FILE = "summary.json"  # localtune/eval/results.py holds their keys
EVAL_ANSWERS_FILE = "answers.jsonl"
FEEDBACK_DIR = "feedback"
LOSS_PNG = "loss.png"
TENSORBOARD_DIR = "tensorboard"
CONSOLE_LOG = "console.log"  # the trainer's stdout/stderr when the TUI started it
UI_CONFIG = "tui-config.yaml"  # the TUI form's values, the trainer's --config

DEFAULT_ROOT = Path("adapters")
_STEP = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:06d}"


def step_of(checkpoint: str | Path) -> int | None:
    """The step a checkpoint directory holds (from its name), None for any other name."""
    m = _STEP.match(Path(checkpoint).name)
    return int(m.group(1)) if m else None
