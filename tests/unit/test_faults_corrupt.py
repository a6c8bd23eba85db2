"""Damaged files are a clear error naming the file and what to do, never a traceback and never a
silent guess: truncated model weights (header or tail), a garbage config.json, a truncated adapter,
adapter_config.json of the wrong shape, a run.json that is not an object, a checkpoint whose
optimizer state or trainer state is damaged."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localtune.errors import CorruptFileError, LocaltuneError, RunError

ROOT = Path(__file__).resolve().parents[2]


def localtune(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "localtune", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def one_error_line(out) -> str:
    assert out.returncode == 2 and "Traceback" not in out.stderr, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


@pytest.fixture
def model(tmp_path, tiny_model_dir):
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


@pytest.fixture
def run(tmp_path, tiny_run):
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def cut(path: Path, keep: int | None = None, drop: int | None = None) -> None:
    os.truncate(path, keep if keep is not None else path.stat().st_size - drop)


@pytest.mark.parametrize("damage, says", [(dict(keep=1000), "truncated or not a safetensors file"),
                                          (dict(drop=5000), "truncated ("),
                                          (dict(keep=3), "truncated (3 bytes, no safetensors header)")])
def test_truncated_model_weights_name_the_file_in_every_loader(model, damage, says):
    from localtune.chat import ChatSession
    from localtune.models import load_model, quantize_model_dir

    weights = model / "model.safetensors"
    cut(weights, **damage)
    for load in (lambda: load_model(model), lambda: ChatSession.open(str(model)),
                 lambda: quantize_model_dir(model, model.parent / "q")):
        with pytest.raises(CorruptFileError) as e:  # was RuntimeError [load_safetensors], no file named
            load()
        assert str(e.value).startswith(f"{weights}: {says}") and "re-download or re-import" in str(e.value)
    assert not (model.parent / "q").exists()


def test_truncated_weights_in_train_and_chat_cli(model, tiny_run):
    cut(model / "model.safetensors", keep=1000)
    line = one_error_line(localtune("chat", "--model", model, "--prompt", "hi"))
    assert line.startswith(f"error: {model / 'model.safetensors'}: truncated")
    line = one_error_line(localtune("train", "sft", "--model", model, "--data", tiny_run.parent / "d.jsonl",
                                    "--out", model.parent / "r", "--iters", "1"))
    assert line.startswith(f"error: {model / 'model.safetensors'}: truncated")


@pytest.mark.parametrize("text, says", [("garbage", "not valid JSON"), ("[]", "expected a JSON object"),
                                        ("{}", "no model_type")])
def test_a_damaged_config_json_names_it(model, tiny_run, text, says):
    from localtune.models import load_model, quantize_model_dir
    from localtune.plan import model_shape

    (model / "config.json").write_text(text)
    for call in (lambda: load_model(model), lambda: quantize_model_dir(model, model.parent / "q"),
                 lambda: model_shape(model)):  # quantize and plan used to end in a JSONDecodeError traceback
        with pytest.raises(CorruptFileError, match=f"config.json: {says}"):
            call()


def test_truncated_adapter_is_named_in_chat_export_and_train(run, model, tiny_run):
    from localtune.chat import ChatSession
    from localtune.config import build_config
    from localtune.export import export_run
    from localtune.train.session import run_training
    from localtune.train.sft import sft_task

    adapter = run / "adapters.safetensors"
    cut(adapter, keep=100)
    with pytest.raises(CorruptFileError, match=f"{adapter}: truncated.*--resume"):
        ChatSession.open(str(model), run)
    with pytest.raises(CorruptFileError, match=str(adapter)):
        export_run(run, "peft", run.parent / "out", model=str(model))
    assert not (run.parent / "out").exists()
    cfg = build_config(None, dict(model=str(model), data=str(tiny_run.parent / "d.jsonl"), adapter=str(run),
                                  out=str(run.parent / "dpo"), iters=1))
    with pytest.raises(CorruptFileError, match=str(adapter)):
        run_training(cfg, sft_task)


def test_a_resume_rewrites_a_damaged_run_adapter(run):
    """What the message tells the user to do works: the finished run's resume rewrites the file."""
    cut(run / "adapters.safetensors", keep=100)
    out = localtune("train", "sft", "--resume", run)
    assert out.returncode == 0, out.stderr
    from localtune.lora import read_adapter_file

    assert read_adapter_file(run / "adapters.safetensors")


@pytest.mark.parametrize("text, says", [('{"lora_parameters": [], "num_layers": 4}', "unreadable adapter config"),
                                        ('{"num_layers": "x"}', "unreadable adapter config"),
                                        ('{"lora_parameters": {"rank": 0}}', "unusable adapter config"),
                                        ("garbage", "not valid JSON")])
def test_adapter_config_of_the_wrong_shape(run, model, text, says):
    from localtune.chat import ChatSession

    (run / "adapter_config.json").write_text(text)
    with pytest.raises(LocaltuneError, match=f"adapter_config.json: {says}"):
        ChatSession.open(str(model), run)


@pytest.mark.parametrize("content", [b"[1, 2]", b'"x"', b"{", b"\xff\xfe"])
def test_run_json_that_is_not_an_object(run, content):
    from localtune.runs import RunDir, list_runs

    (run / "run.json").write_bytes(content)
    with pytest.raises(RunError, match="run.json: unreadable"):
        RunDir(run).read()
    rows = list_runs(run.parent)  # `runs` shows it with what is wrong instead of an AttributeError
    assert [r["name"] for r in rows] == ["run"] and "unreadable" in rows[0]["error"]
    line = one_error_line(localtune("chat", "--adapter", run, "--prompt", "hi"))
    assert "run.json: unreadable" in line and "give the base model with --model" in line  # no guessed base
    line = one_error_line(localtune("train", "sft", "--resume", run))
    assert "run.json: unreadable" in line


@pytest.mark.parametrize("damage", ["optimizer", "state-empty", "state-garbage", "adapter"])
def test_a_damaged_checkpoint_is_a_run_error_naming_it(run, model, damage):
    import mlx.optimizers as optim

    from localtune.lora import attach_lora, read_adapter_spec
    from localtune.models import load_model
    from localtune.train.checkpoint import latest_checkpoint, load_checkpoint

    last = latest_checkpoint(run)
    target = {"optimizer": last / "optimizer.safetensors", "adapter": last / "adapters.safetensors",
              "state-empty": last / "trainer_state.json", "state-garbage": last / "trainer_state.json"}[damage]
    if damage == "state-empty":
        target.write_text("{}")
    elif damage == "state-garbage":
        target.write_text('{"loop": {"nope": 1}, "data": {}}')
    else:
        cut(target, keep=50)
    m, _ = load_model(model)
    attach_lora(m, read_adapter_spec(run))
    with pytest.raises(RunError, match=re.escape(str(last))) as e:  # was RuntimeError / KeyError tracebacks
        load_checkpoint(last, m, optim.AdamW(learning_rate=1e-3))
    assert target.name in str(e.value)
    assert any(w in str(e.value) for w in ("damaged", "unreadable", "truncated", "missing")), e.value
