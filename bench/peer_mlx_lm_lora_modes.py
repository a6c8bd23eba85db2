"""Runs `mlx_lm_lora.train` unchanged (its own parsing and config) on this CPU, for its dpo and grpo
modes, recording its training reports to $BENCH_REPORT as JSON.

Hooks, none in its code: mx.device_info() gains the Metal-only key it reads at start (host memory
here, as a sitecustomize would add); the MLX peak is reset when training starts (as localtune's
loop does); its validation set is dropped, because it restarts its it/s clock after every
validation and always validates at the last step, which would leave one step in the window.

    BENCH_REPORT=out.json python bench/peer_mlx_lm_lora_modes.py --train --train-mode dpo ...
    BENCH_REPORT=out.json python bench/peer_mlx_lm_lora_modes.py --train --train-mode grpo ...
"""

import json
import os

import mlx.core as mx

_device_info = mx.device_info


def device_info():
    info = dict(_device_info())
    info.setdefault("max_recommended_working_set_size", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return info


mx.device_info = device_info

from mlx_lm.tuner.callbacks import TrainingCallback  # noqa: E402
from mlx_lm_lora import train as peer  # noqa: E402

REPORTS = {"train": []}


class Recorder(TrainingCallback):
    def on_train_loss_report(self, info):
        # Some of its metrics are still mx.arrays: keep plain numbers only.
        REPORTS["train"].append({k: v for k, v in info.items() if isinstance(v, (int, float))})

    def on_val_loss_report(self, info):
        pass


def recorded(train_fn):
    """The peer's train_<mode> with the hooks above."""

    def run(*a, **kw):
        mx.reset_peak_memory()
        kw["training_callback"] = Recorder()
        kw["val_dataset"] = None
        return train_fn(*a, **kw)

    return run


peer.train_dpo = recorded(peer.train_dpo)
peer.train_grpo = recorded(peer.train_grpo)
peer.main()
with open(os.environ["BENCH_REPORT"], "w") as f:
    json.dump(REPORTS, f)
