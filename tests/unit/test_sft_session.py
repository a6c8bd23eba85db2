"""SFT end to end on a tiny model: data file -> run directory that mlx_lm loads; stop + resume
through the session gives the same losses as an unbroken run; failures are recorded."""

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.utils import load

from localtune.errors import LocaltuneError, RunError
from localtune.runs import RunDir, list_runs, read_metrics
from localtune.train.session import run_training
from localtune.train.sft import sft_task


@pytest.fixture()
def data(tmp_path, echo_rows):
    return echo_rows(tmp_path / "train.jsonl", 48, 0), echo_rows(tmp_path / "valid.jsonl", 12, 1)


@pytest.fixture()
def config(tiny_config, data):
    """make(out, data=(train, valid), **options): 40 steps of 4 rows, validation every 20."""

    def make(out, files=None, **kw):
        train, valid = files or data
        return tiny_config(out, train, **{**dict(valid=str(valid), iters=40, batch_size=4, lr=3e-3, eval_every=20,
                                                 save_every=10, report_every=5, warmup=2), **kw})

    return make


def test_sft_lowers_validation_loss_and_writes_a_run_mlx_lm_loads(tiny_model_dir, config, tmp_path):
    events = []
    run = run_training(config(tmp_path / "run"), sft_task, on_event=events.append)
    vals = [e["val_loss"] for e in events if e["event"] == "val"]
    assert vals[0] - vals[-1] > 1.0, vals  # measured ~5.6 -> ~1.5 nats on this toy task
    info = RunDir(run).read()
    assert info["status"] == "finished" and info["kind"] == "sft" and info["step"] == 40
    metrics = read_metrics(run / "metrics.jsonl")
    assert [m["step"] for m in metrics if "train_loss" in m] == [1, 5, 10, 15, 20, 25, 30, 35, 40]
    assert [m["step"] for m in metrics if "val_loss" in m] == [0, 20, 40]
    assert not (run / ".lock").exists()
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["step-000020", "step-000030", "step-000040"]  # keep-last-3

    base, tok = load(str(tiny_model_dir))
    tuned, _ = load(str(tiny_model_dir), adapter_path=str(run))
    ids = mx.array([tok.encode("<|im_start|>user\necho apple river<|im_end|>\n<|im_start|>assistant\n")])
    assert not np.allclose(np.array(base(ids)), np.array(tuned(ids)), atol=1e-2)
    assert list_runs(tmp_path)[0]["final_val_loss"] == pytest.approx(vals[-1])


def test_stop_then_resume_matches_unbroken(config, tmp_path, stop_after):
    cfg = dict(iters=20, lora_dropout=0.1, eval_every=0, report_every=1)  # compare every step
    unbroken = []
    run_training(config(tmp_path / "a", **cfg), sft_task, on_event=unbroken.append)

    run_b = run_training(config(tmp_path / "b", **cfg), sft_task, should_stop=stop_after(8))
    assert RunDir(run_b).read()["status"] == "stopped"
    assert (run_b / "checkpoints" / "step-000008").is_dir()
    with pytest.raises(RunError, match="cannot resume with a different batch_size"):
        run_training(None, sft_task, resume=run_b, overrides={"batch_size": 2})
    resumed = []
    run_training(None, sft_task, resume=run_b, on_event=resumed.append)
    a = {e["step"]: e["train_loss"] for e in unbroken if e["event"] == "train"}
    b = {m["step"]: m["train_loss"] for m in read_metrics(run_b / "metrics.jsonl") if "train_loss" in m}
    assert sorted(b) == sorted(a)  # the curve is continuous: nothing doubled, nothing missing
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-6), step
    wa = mx.load(str(tmp_path / "a" / "adapters.safetensors"))
    wb = mx.load(str(run_b / "adapters.safetensors"))
    for k in wa:
        np.testing.assert_allclose(np.array(wa[k]), np.array(wb[k]), atol=1e-6)


def test_packed_training_learns_and_resumes_exactly(config, tmp_path, stop_after):
    cfg = dict(pack=True, max_seq_len=256, batch_size=2, iters=24, eval_every=0, save_every=4, report_every=1)
    unbroken = []
    run_a = run_training(config(tmp_path / "a", **cfg), sft_task, on_event=unbroken.append)
    start = next(e for e in unbroken if e["event"] == "start")
    assert start["batches_per_epoch"] < 48 / 2  # several rows per packed sequence
    vals = [e["val_loss"] for e in unbroken if e["event"] == "val"]
    assert vals[0] - vals[-1] > 1.0, vals  # measured 27.4 -> 3.5 nats

    run_b = run_training(config(tmp_path / "b", **cfg), sft_task, should_stop=stop_after(10))
    run_training(None, sft_task, resume=run_b)
    a = {m["step"]: m["train_loss"] for m in read_metrics(run_a / "metrics.jsonl") if "train_loss" in m}
    b = {m["step"]: m["train_loss"] for m in read_metrics(run_b / "metrics.jsonl") if "train_loss" in m}
    assert sorted(a) == sorted(b) and all(b[k] == pytest.approx(a[k], abs=1e-6) for k in a)


def test_bad_data_fails_cleanly_and_says_where(config, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{oops\n')
    with pytest.raises(LocaltuneError, match="bad.jsonl"):
        run_training(config(tmp_path / "run", (bad, bad)), sft_task)
    info = RunDir(tmp_path / "run").read()
    assert info["status"] == "failed" and "bad.jsonl" in info["error"]


def test_run_directory_in_use_is_refused(config, tmp_path):
    run = RunDir(tmp_path / "busy")
    run.acquire()  # this (live) process holds it
    run.write({"status": "stopped", "config": config(tmp_path / "busy").to_dict()})
    with pytest.raises(RunError, match="in use by process"):
        run_training(None, sft_task, resume=tmp_path / "busy")
    run.release()
