"""Fused export loads in mlx_lm with base+adapter logits (f32, and re-quantized 4-bit); GGUF
export reads back with llama.cpp names, permuted q/k, llama.* and tokenizer metadata, and
re-imports through `localtune models import` with the fused model's logits (fp16 tolerance)."""

import json

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.utils import load

from localtune.cli import main
from localtune.export import export_run
from localtune.lora import LoraSpec
from localtune.models.gguf_import import unpermute_qk
from test_export_peft import TOKENS, make_run

SPEC = LoraSpec(rank=4, alpha=8, layers=-1)


def logits(model_dir):
    model, _ = load(str(model_dir))
    return np.array(model(mx.array(TOKENS)))


@pytest.fixture(scope="module")
def tuned(tiny_model_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("fused") / "run"
    return run, make_run(run, tiny_model_dir, SPEC)


def test_fused_model_loads_in_mlx_lm_with_base_plus_adapter_logits(tiny_model_dir, tuned, tmp_path):
    run, ours = tuned
    out = export_run(run, "fused", tmp_path / "fused")
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json",
                                               "tokenizer_config.json"}
    assert not any("lora" in k for k in mx.load(str(out / "model.safetensors")))
    np.testing.assert_allclose(logits(out), ours, atol=1e-4)
    assert np.abs(logits(tiny_model_dir) - ours).max() > 1e-2


def test_fused_quantized_base_stays_quantized_unless_dequantized(tiny_q4_model_dir, tmp_path):
    ours = make_run(tmp_path / "run", tiny_q4_model_dir, SPEC)
    q = export_run(tmp_path / "run", "fused", tmp_path / "q")
    assert json.loads((q / "config.json").read_text())["quantization"]["bits"] == 4
    assert any(k.endswith(".scales") for k in mx.load(str(q / "model.safetensors")))
    err = np.abs(logits(q) - ours).max()
    assert 0 < err < 0.25 * np.abs(ours).max()  # 4-bit re-quantization: close, not exact
    d = export_run(tmp_path / "run", "fused", tmp_path / "d", dequantize=True)
    assert "quantization" not in json.loads((d / "config.json").read_text())
    np.testing.assert_allclose(logits(d), ours, atol=1e-4)


def test_gguf_reads_back_and_reimports_with_the_fused_logits(tiny_model_dir, tuned, tmp_path):
    run, ours = tuned
    fused = export_run(run, "fused", tmp_path / "fused")
    gguf = tmp_path / "tuned.gguf"
    assert main(["export", str(run), "--format", "gguf", "--out", str(gguf)]) == 0
    tensors, meta = mx.load(str(gguf), return_metadata=True)

    w = mx.load(str(fused / "model.safetensors"))
    assert len(tensors) == len(w) and "output.weight" not in tensors  # tied embeddings stay tied
    q = tensors["blk.1.attn_q.weight"]
    assert q.dtype == mx.float16 and tensors["blk.0.attn_norm.weight"].dtype == mx.float32
    np.testing.assert_allclose(np.array(unpermute_qk(q, 4)).astype(np.float32),
                               np.array(w["model.layers.1.self_attn.q_proj.weight"]), atol=1e-3)
    k = tensors["blk.0.attn_k.weight"]
    assert not mx.allclose(k.astype(mx.float32), w["model.layers.0.self_attn.k_proj.weight"], atol=1e-2)
    np.testing.assert_allclose(np.array(unpermute_qk(k, 2)).astype(np.float32),
                               np.array(w["model.layers.0.self_attn.k_proj.weight"]), atol=1e-3)
    assert tensors["token_embd.weight"].shape == (259, 64)

    assert meta["general.architecture"] == "llama"
    scalars = {k: meta[k].item() for k in ("llama.block_count", "llama.attention.head_count",
                                          "llama.attention.head_count_kv", "llama.embedding_length",
                                          "llama.feed_forward_length", "tokenizer.ggml.eos_token_id",
                                          "tokenizer.ggml.padding_token_id")}
    assert scalars == {"llama.block_count": 2, "llama.attention.head_count": 4,
                       "llama.attention.head_count_kv": 2, "llama.embedding_length": 64,
                       "llama.feed_forward_length": 128, "tokenizer.ggml.eos_token_id": 2,
                       "tokenizer.ggml.padding_token_id": 0}
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "gpt2"
    assert meta["tokenizer.ggml.tokens"][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert meta["tokenizer.ggml.token_type"].tolist()[:4] == [3, 3, 3, 1]
    assert "<|im_start|>" in meta["tokenizer.chat_template"]

    back = tmp_path / "reimported"
    assert main(["models", "import", str(gguf), str(back)]) == 0
    theirs = logits(back)
    np.testing.assert_allclose(theirs, logits(fused), atol=2e-2)
    assert np.abs(theirs - ours).max() < 2e-2
    text = "<|im_start|>user\nhi there 123<|im_end|>\n"
    _, tok_a = load(str(fused))
    _, tok_b = load(str(back))
    assert tok_b.encode(text) == tok_a.encode(text)


def test_gguf_refuses_a_non_llama_model(tiny_model_dir, tuned, tmp_path):
    from localtune.errors import ModelError
    from localtune.export.gguf_export import llama_metadata

    with pytest.raises(ModelError, match="llama-architecture models only"):
        llama_metadata({"model_type": "qwen2"}, "x", 1)
