"""resolve_model / download_model (offline) / load_model / quantize_model_dir / list_models."""

from __future__ import annotations

import json
import shutil
import time

import localtune  # noqa: F401
import mlx.core as mx
import pytest

from localtune.errors import ModelError
from localtune.models.catalog import list_models
from localtune.models.hub import download_model
from localtune.models.load import load_model
from localtune.models.quantize import quantize_model_dir
from localtune.models.resolve import models_dir, resolve_model

IDS = mx.array([[1, 40, 70, 5, 100, 2]])
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Private models dir and HF cache; hub offline so nothing ever reaches the network."""
    monkeypatch.setenv("LOCALTUNE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def fake_hub_repo(cache, repo_id, src):
    """The HF cache layout snapshot_download(local_files_only=True) resolves."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(src, repo / "snapshots" / COMMIT)
    return repo / "snapshots" / COMMIT


def test_models_dir_env(env):
    assert models_dir() == env / "models"


def test_local_dir_resolves_to_itself(env, tiny_model_dir):
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir


def test_missing_paths_are_clear_errors(env):
    for spec in ["./nope", "/abs/nope.gguf", "nope.gguf", "a/b/c"]:
        with pytest.raises(ModelError, match="nope|a/b/c"):
            resolve_model(spec)


def test_dir_without_config_is_an_error(env):
    (env / "empty").mkdir()
    with pytest.raises(ModelError, match="empty"):
        resolve_model(str(env / "empty"))


def test_gguf_imported_once_then_reused(env):
    from test_gguf_import import write_gguf

    gguf, _ = write_gguf(env / "tiny-q.gguf")
    events = []
    out = resolve_model(str(gguf), dtype="float32", on_event=events.append)
    assert out == env / "models" / "tiny-q-float32"
    assert any(e.get("stage") == "done" for e in events)
    events.clear()
    assert resolve_model(str(gguf), dtype="float32", on_event=events.append) == out
    assert events == []  # reused, not imported again
    assert resolve_model("tiny-q-float32") == out  # by name in the models dir
    names = {m["name"]: m for m in list_models()}
    assert names["tiny-q-float32"]["model_type"] == "llama"
    assert names["tiny-q-float32"]["quantization"] == "float32"
    assert names["tiny-q-float32"]["size_bytes"] > 0


def test_hub_offline_unknown_repo_fails_fast(env):
    t = time.perf_counter()
    with pytest.raises(ModelError, match="offline"):
        resolve_model("nobody-here/does-not-exist-xyz")
    assert time.perf_counter() - t < 5


def test_hub_repo_in_local_cache_resolves_offline(env, tiny_model_dir):
    snap = fake_hub_repo(env / "hf", "owner/tiny", tiny_model_dir)
    events = []
    assert download_model("owner/tiny", on_event=events.append) == snap
    assert events[0]["cached"] is True
    assert resolve_model("owner/tiny") == snap
    hub = [m for m in list_models() if m["source"] == "hub"]
    assert [m["name"] for m in hub] == ["owner/tiny"]


def test_load_model_casts_half_to_f32_on_cpu(env, tiny_model_dir):
    half = env / "half"
    shutil.copytree(tiny_model_dir, half)
    w = mx.load(str(half / "model.safetensors"))
    half_w = {k: v.astype(mx.float16) for k, v in w.items()}
    mx.save_safetensors(str(half / "model.safetensors"), half_w)
    model, tok = load_model(half, dtype="float32")
    assert model.model.embed_tokens.weight.dtype == mx.float32
    ref, _ = load_model(tiny_model_dir)
    assert mx.allclose(model(IDS), ref(IDS), atol=0.1).item()
    assert tok.eos_token == "<|im_end|>"
    model16, _ = load_model(half, dtype="float16")
    assert model16.model.embed_tokens.weight.dtype == mx.float16


def test_load_model_errors_name_the_dir(env, tiny_model_dir):
    with pytest.raises(ModelError, match="nothere"):
        load_model(env / "nothere")
    broken = env / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "config.json").unlink()
    with pytest.raises(ModelError, match="broken.*config.json"):
        load_model(broken)
    notok = env / "notok"
    shutil.copytree(tiny_model_dir, notok)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (notok / f).unlink()
    with pytest.raises(ModelError, match="notok.*tokenizer"):
        load_model(notok)


def test_quantize_model_dir(env, tiny_model_dir, capsys):
    dst = quantize_model_dir(tiny_model_dir, env / "models" / "tiny-4bit", bits=4, group_size=32)
    assert capsys.readouterr().out == ""  # engine code never prints
    config = json.loads((dst / "config.json").read_text())
    assert config["quantization"]["bits"] == 4 and config["quantization"]["group_size"] == 32
    assert (dst / "tokenizer_config.json").is_file()
    model_q, _ = load_model(dst)
    model_f, _ = load_model(tiny_model_dir)
    assert model_q.model.layers[0].self_attn.q_proj.bits == 4
    # 4-bit weights: same argmax on most positions
    agree = (model_q(IDS).argmax(-1) == model_f(IDS).argmax(-1)).mean().item()
    assert agree >= 0.5
    assert [m["quantization"] for m in list_models() if m["name"] == "tiny-4bit"] == ["4bit"]
    with pytest.raises(ModelError, match="already quantized"):
        quantize_model_dir(dst, env / "again")


def test_download_progress_is_forwarded_silently(capsys):
    from localtune.models.hub import _progress_class

    events = []
    bar = _progress_class("o/r", events.append)(total=10, desc="Downloading bytes", unit="B")
    bar.update(4)
    bar.update(6)
    bar.close()
    assert [(e["done"], e["total"]) for e in events] == [(4, 10), (10, 10)]
    assert events[0]["event"] == "download" and events[0]["repo"] == "o/r"
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_load_tokenizer_only(env, tiny_model_dir):
    from localtune.models import load_tokenizer_only

    tok = load_tokenizer_only(str(tiny_model_dir))
    assert tok.eos_token == "<|im_end|>" and tok.encode("<|im_start|>") == [1]


def test_dense_gguf_as_4bit_is_quantized(env):
    from test_gguf_import import write_gguf

    gguf, _ = write_gguf(env / "dense.gguf")
    out = resolve_model(str(gguf), dtype="4bit")
    assert out == env / "models" / "dense-4bit"
    assert json.loads((out / "config.json").read_text())["quantization"]["bits"] == 4
    assert sorted(p.name for p in (env / "models").iterdir()) == ["dense-4bit"]  # no temp left
