"""The real SmolLM2-135M-Instruct, imported from its GGUF: config, tokenizer ids, generation."""

from __future__ import annotations

import json

import localtune  # noqa: F401
import mlx.core as mx
import pytest

from localtune.models.load import load_model

pytestmark = pytest.mark.integration
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
TEXTS = [
    "Hello, world!",
    "12345 and 3.14159",
    "def f(x):\n    return x**2  # square",
    "héllo wörld 日本語 🎉",
    "<|im_start|>user\nhi<|im_end|>\n",
    "  leading spaces\ttab\n\nnewlines",
]


@pytest.fixture(scope="module")
def f32(smollm2_dir):
    return load_model(smollm2_dir)


@pytest.fixture(scope="module")
def gguf_meta():
    from localtune.models.resolve import embedded_gguf

    _, meta = mx.load(str(embedded_gguf()), return_metadata=True)
    return meta


def _greedy(model, tokenizer, max_tokens=16):
    from mlx_lm import generate

    prompt = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=False)
    return generate(model, tokenizer, prompt, max_tokens=max_tokens)


def test_config(smollm2_dir):
    c = json.loads((smollm2_dir / "config.json").read_text())
    shape = (c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"])
    assert shape == (30, 9, 3)
    assert c["tie_word_embeddings"] is True and c["rope_theta"] == 100000.0
    assert c["vocab_size"] == 49152 and "quantization" not in c


def test_f32_answers_paris(f32):
    model, tokenizer = f32
    assert model.model.embed_tokens.weight.dtype == mx.float32
    assert "Paris" in _greedy(model, tokenizer)


def test_tokenizer_ids_match_gguf_vocab(f32, gguf_meta):
    _, tokenizer = f32
    vocab = {t: i for i, t in enumerate(gguf_meta["tokenizer.ggml.tokens"])}
    assert tokenizer.encode("<|im_start|>", add_special_tokens=False) == [1]
    assert tokenizer.encode("<|im_end|>", add_special_tokens=False) == [2]
    assert tokenizer.eos_token_id == 2
    assert tokenizer.encode("12345", add_special_tokens=False) == [vocab[d] for d in "12345"]
    assert tokenizer.encode(" the", add_special_tokens=False) == [vocab["Ġthe"]]
    for text in TEXTS:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert all(0 <= i < len(vocab) for i in ids)
        assert tokenizer.decode(ids) == text


def test_tokenizer_matches_transformers_gguf_converter(f32, gguf_meta):
    """transformers' own GGUF tokenizer builder, fed the same metadata, as an independent check."""
    from transformers.integrations.gguf import gguf_tokenizer_mapping as conv
    from localtune.models.gguf_import import meta_value

    fields = conv.GGUF_TOKENIZER_MAPPING["tokenizer"]
    td = {name: meta_value(gguf_meta, f"tokenizer.{key}") for key, name in fields.items()
          if f"tokenizer.{key}" in gguf_meta}
    ref, _ = conv.convert_gguf_tokenizer("llama", td)
    _, tokenizer = f32
    for text in TEXTS + ["The year 2024 had 366 days."]:
        assert tokenizer.encode(text, add_special_tokens=False) == ref.encode(text).ids, text


def test_keep_quant_answers_paris_and_matches_f32(smollm2_q4_dir, f32):
    c = json.loads((smollm2_q4_dir / "config.json").read_text())
    assert c["quantization"]["bits"] == 4 and c["quantization"]["group_size"] == 32
    model_q, tokenizer = load_model(smollm2_q4_dir)
    assert model_q.model.layers[0].self_attn.q_proj.bits == 4
    model_f, _ = f32
    # Short input: quantized matmuls are slow on CPU (~0.1 s per token for this model).
    text = "The capital of France is the city of"
    ids = mx.array([tokenizer.encode(text, add_special_tokens=False)])
    lq, lf = model_q(ids).astype(mx.float32), model_f(ids)
    # Same (f16-rounded) weights; only kernel precision differs (logits are ~+-20).
    assert mx.abs(lq - lf).max().item() < 0.5
    assert (lq.argmax(-1) == lf.argmax(-1)).all().item()
    assert "Paris" in _greedy(model_q, tokenizer, max_tokens=8)
