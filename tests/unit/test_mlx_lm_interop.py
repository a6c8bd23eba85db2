"""mlx_lm both ways: our run directories drive `mlx_lm generate --adapter-path`, and adapters
trained by `mlx_lm lora` load in localtune (same logits, chat, DPO on top)."""

import json
import subprocess
import sys

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.utils import load

from localtune.chat import ChatSession, Sampling
from localtune.config import build_config
from localtune.lora import adapter_layers, load_adapter, read_adapter_spec
from localtune.models import load_model
from localtune.train.session import run_training
from localtune.train.sft import sft_task

TOKENS = mx.array([[1, 87, 85, 71, 84, 201, 74, 75, 2, 201, 60, 61]])


def mlx_lm_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "mlx_lm", *map(str, args)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def our_run(tiny_model_dir, tmp_path_factory, echo_rows):
    d = tmp_path_factory.mktemp("ours")
    cfg = build_config(None, dict(model=str(tiny_model_dir), data=str(echo_rows(d / "t.jsonl", 16, 0)),
                                  out=str(d / "run"), iters=8, batch_size=4, lr=1e-2, lora_rank=4,
                                  lora_layers=-1, eval_every=0, save_every=0))
    return run_training(cfg, sft_task)


@pytest.fixture(scope="module")
def their_adapter(tiny_model_dir, tmp_path_factory, echo_rows):
    """An adapter trained by mlx_lm's own trainer (its adapter_config has no lora_alpha)."""
    d = tmp_path_factory.mktemp("theirs")
    (d / "data").mkdir()
    echo_rows(d / "data" / "train.jsonl", 16, 0)
    echo_rows(d / "data" / "valid.jsonl", 4, 1)
    mlx_lm_cli("lora", "--train", "--model", tiny_model_dir, "--data", d / "data", "--iters", 4,
               "--batch-size", 2, "--num-layers", 1, "--learning-rate", 1e-2, "--steps-per-eval", 100,
               "--val-batches", 1, "--adapter-path", d / "adapter", "--seed", 0)
    return d / "adapter"


def test_our_run_generates_the_same_text_in_mlx_lm_generate(tiny_model_dir, our_run):
    chat = ChatSession.open(str(tiny_model_dir), our_run)
    sampling = Sampling(max_tokens=12)
    ours = chat.compare("echo apple river", sampling)
    assert ours["tuned"] != ours["base"]  # the adapter matters, so agreeing below means something
    theirs = mlx_lm_cli("generate", "--model", tiny_model_dir, "--adapter-path", our_run,
                        "--prompt", "echo apple river", "--max-tokens", 12, "--temp", 0, "--verbose", "False")
    assert theirs.strip() == ours["tuned"].strip()


def test_mlx_lm_adapter_loads_with_the_same_logits(tiny_model_dir, their_adapter):
    cfg = json.loads((their_adapter / "adapter_config.json").read_text())
    assert "lora_alpha" not in cfg
    spec = read_adapter_spec(their_adapter)
    assert spec.scale == pytest.approx(cfg["lora_parameters"]["scale"])  # alpha = scale * rank
    assert spec.layers == 1

    theirs, _ = load(str(tiny_model_dir), adapter_path=str(their_adapter))
    model, _ = load_model(tiny_model_dir)
    base = model(TOKENS)
    load_adapter(model, their_adapter)
    assert len(adapter_layers(model)) == 7
    ours = model(TOKENS)
    assert float(mx.abs(ours - base).max()) > 1e-2  # trained: it moved the logits
    np.testing.assert_allclose(np.array(ours), np.array(theirs(TOKENS)), atol=1e-5)


def test_mlx_lm_adapter_chats_and_is_a_dpo_starting_point(tiny_model_dir, their_adapter, tmp_path, echo_pairs):
    from localtune.config_dpo import DPOConfig
    from localtune.train.dpo import dpo_task

    chat = ChatSession.open(str(tiny_model_dir), their_adapter)
    assert chat.has_adapter and chat.ask("echo stone", Sampling(max_tokens=4), remember=False)

    pairs = echo_pairs(tmp_path / "pairs.jsonl", [("apple", "river"), ("stone", "cloud")] * 4)
    cfg = build_config(None, dict(model=str(tiny_model_dir), data=str(pairs), out=str(tmp_path / "dpo"),
                                  adapter=str(their_adapter), iters=2, batch_size=4, lr=1e-3,
                                  eval_every=0, save_every=0), cls=DPOConfig)
    events = []
    run = run_training(cfg, dpo_task, on_event=events.append)
    first = next(e for e in events if e["event"] == "train")
    assert first["step"] == 1 and abs(first.get("logp_drift", 0.0)) < 1e-4  # policy == reference at start
    # DPO continued the mlx_lm adapter's shape: rank 8, last layer only.
    assert read_adapter_spec(run).rank == 8 and read_adapter_spec(run).layers == 1
