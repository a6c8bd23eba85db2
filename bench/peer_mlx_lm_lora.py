"""Runs `mlx_lm lora` unchanged (its own argument parsing and config), recording its training
callback reports to $BENCH_REPORT as JSON. The only hook: the MLX peak is reset when training
starts, as localtune's loop does, so neither side counts model-loading transients.

    BENCH_REPORT=out.json python bench/peer_mlx_lm_lora.py --train --model M --data DIR ...
"""

import json
import os

import mlx.core as mx
from mlx_lm import lora
from mlx_lm.tuner.callbacks import TrainingCallback

REPORTS = {"train": [], "val": []}


class Recorder(TrainingCallback):
    def on_train_loss_report(self, info):
        REPORTS["train"].append({**info, "peak_memory": mx.get_peak_memory() / 1e9})

    def on_val_loss_report(self, info):
        REPORTS["val"].append(dict(info))


_train_model = lora.train_model


def train_model(args, model, train_set, valid_set, training_callback=None):
    # run() drops any callback it is given (it builds its own), so ours goes in here.
    mx.reset_peak_memory()
    return _train_model(args, model, train_set, valid_set, Recorder())


lora.train_model = train_model
lora.main()
with open(os.environ["BENCH_REPORT"], "w") as f:
    json.dump(REPORTS, f)
