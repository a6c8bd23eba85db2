"""PEFT export: the layout PEFT expects, and transformers + PEFT (a second framework) reproduce
localtune's logits on the same tokens, for LoRA on the last N layers and for DoRA."""

import json

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.utils import load

from localtune.cli import main
from localtune.lora import LoraSpec, adapter_layers, attach_lora, save_adapter

TOKENS = [[1, 87, 85, 71, 84, 201, 74, 75, 2, 201, 60, 61]]


def make_run(run_dir, model_dir, spec: LoraSpec, seed=1):
    """A run directory with a non-trivial adapter (random B, DoRA magnitudes moved) on model_dir;
    returns localtune's logits for TOKENS with it."""
    model, _ = load(str(model_dir))
    mx.random.seed(seed)
    attach_lora(model, spec)
    for layer in adapter_layers(model):
        layer.lora_b = mx.random.normal(layer.lora_b.shape) * 0.2
        if "m" in layer:
            layer.m = layer.m * (1 + 0.1 * mx.random.normal(layer.m.shape))
    mx.eval(model.parameters())
    run_dir.mkdir(parents=True)
    save_adapter(model, run_dir, spec)
    (run_dir / "run.json").write_text(json.dumps({"status": "finished", "model_path": str(model_dir),
                                                 "config": {"model": str(model_dir)}}))
    return np.array(model(mx.array(TOKENS)))


SPEC = LoraSpec(rank=4, alpha=6, layers=1, targets=("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"))


def test_peft_layout(tiny_model_dir, tmp_path):
    make_run(tmp_path / "run", tiny_model_dir, SPEC)
    assert main(["export", str(tmp_path / "run"), "--format", "peft", "--out", str(tmp_path / "peft")]) == 0
    cfg = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert (cfg["peft_type"], cfg["r"], cfg["lora_alpha"], cfg["use_dora"]) == ("LORA", 4, 6.0, False)
    assert cfg["target_modules"] == ["down_proj", "q_proj", "v_proj"]
    assert cfg["layers_to_transform"] == [1]  # the tiny model has 2 blocks; last 1 adapted
    assert cfg["base_model_name_or_path"] == str(tiny_model_dir)
    w = mx.load(str(tmp_path / "peft" / "adapter_model.safetensors"))
    ours = mx.load(str(tmp_path / "run" / "adapters.safetensors"))
    a = w["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"]
    b = w["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"]
    assert a.shape == (4, 64) and b.shape == (64, 4)  # PEFT: A (r, in), B (out, r)
    assert mx.array_equal(a, ours["model.layers.1.self_attn.q_proj.lora_a"].T)
    assert len(w) == 6


@pytest.mark.parametrize("dora", [False, True])
def test_transformers_peft_reproduces_our_logits(tiny_model_dir, tmp_path, dora):
    # Installed by the test command (the interop extra): a missing one is a broken setup, not a skip.
    import peft
    import torch
    import transformers
    spec = LoraSpec(rank=4, alpha=6, layers=1, dora=dora) if dora else SPEC
    ours = make_run(tmp_path / "run", tiny_model_dir, spec)
    from localtune.export import export_run

    out = export_run(tmp_path / "run", "peft", tmp_path / "peft")
    # Our mlx_lm llama directory is HF-layout already: transformers reads it as it is.
    base = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    with torch.no_grad():
        plain = base(torch.tensor(TOKENS)).logits.numpy()
    tuned = peft.PeftModel.from_pretrained(base, str(out)).eval()
    with torch.no_grad():
        theirs = tuned(torch.tensor(TOKENS)).logits.numpy()
    assert np.abs(plain - ours).max() > 1e-2  # the adapter matters
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
