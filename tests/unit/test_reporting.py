"""Run-end loss.png, and --report-to sending the metric events to a tensorboard writer (a stand-in
SummaryWriter module) or failing clearly when the package is missing."""

import struct
import sys
import types

import pytest

from localtune.errors import LocaltuneError
from localtune.runs import RunDir
from localtune.train.reporting import write_loss_png
from localtune.train.session import run_training
from localtune.train.sft import sft_task


@pytest.fixture()
def cfg(tiny_config, echo_rows, tmp_path):
    """make(**options): 4 steps of 4 rows, validated every 2."""
    data = echo_rows(tmp_path / "t.jsonl", 8, 0)
    return lambda **kw: tiny_config(tmp_path / "run", data, valid=str(data), batch_size=4, eval_every=2,
                                    save_every=0, **kw)


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_run_writes_loss_png_and_tensorboard_scalars(cfg, tmp_path, monkeypatch):
    logged = []

    class SummaryWriter:
        def __init__(self, logdir):
            self.logdir = logdir

        def add_scalar(self, tag, value, step):
            logged.append((tag, step, value))

        def flush(self):
            pass

        def close(self):
            logged.append("closed")

    monkeypatch.setitem(sys.modules, "tensorboardX", types.SimpleNamespace(SummaryWriter=SummaryWriter))
    run = run_training(cfg(report_to="tensorboard"), sft_task)
    w, h = png_size(run / "loss.png")
    assert w > 100 and h > 100
    train = [(s, v) for t, s, v in (x for x in logged if x != "closed") if t == "train_loss"]
    assert [s for s, _ in train] == [1, 2, 3, 4]
    assert [s for t, s, _ in (x for x in logged if x != "closed") if t == "val_loss"] == [0, 2, 4]
    metrics = [m for m in RunDir(run).metrics() if "train_loss" in m]
    assert [v for _, v in train] == [m["train_loss"] for m in metrics]
    assert logged[-1] == "closed"


def test_report_to_without_the_package_is_a_clear_error(cfg, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(LocaltuneError, match="needs wandb"):
        run_training(cfg(report_to="wandb"), sft_task)
    assert RunDir(tmp_path / "run").read()["status"] == "failed"


def test_loss_png_draws_both_curves(tmp_path):
    events = [{"step": s, "train_loss": 3.0 / s} for s in range(1, 30)] + [{"step": 10, "val_loss": 1.0},
                                                                          {"step": 29, "val_loss": 0.5}]
    from localtune.train.reporting import _raster, _write_png, curves

    _write_png(tmp_path / "l.png", _raster(curves(events)))  # the fallback when matplotlib is absent
    assert png_size(tmp_path / "l.png") == (480, 280)
    import zlib

    import numpy as np

    data = (tmp_path / "l.png").read_bytes()
    idat = data[data.index(b"IDAT") + 4: data.index(b"IEND") - 8]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(280, 1 + 480 * 3)[:, 1:].reshape(280, 480, 3)
    colors = {tuple(c) for c in rows.reshape(-1, 3)}
    assert (31, 119, 180) in colors and (255, 127, 14) in colors  # train blue, validation orange
    assert write_loss_png([{"step": 1, "lr": 0.1}], tmp_path / "none.png") is None
