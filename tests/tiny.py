"""Tiny random llama models and a tiny byte-level tokenizer, built in tests (no downloads).

`make_tiny_model_dir(path)` writes an mlx_lm-loadable directory: config.json, model.safetensors,
tokenizer.json + tokenizer_config.json (ChatML chat template, eos <|im_end|>).
"""

from __future__ import annotations

import json
from pathlib import Path

import localtune  # noqa: F401  (OpenBLAS before mlx)
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

CHATML = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def write_tiny_tokenizer(path: Path, chat_template: str | None = CHATML) -> int:
    """A byte-level BPE with no merges: every byte is a token. Returns the vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    alphabet = ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    tok.save(str(path / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "model_max_length": 2048,
    }
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    (path / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    return len(vocab)


def tiny_config(vocab_size: int, hidden: int = 64, layers: int = 2, tied: bool = True) -> dict:
    return {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": hidden * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "rope_theta": 10000.0,
        "tie_word_embeddings": tied,
        "max_position_embeddings": 2048,
        "eos_token_id": 2,
    }


def make_tiny_model_dir(
    path: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    quantize_bits: int | None = None,
    chat_template: str | None = CHATML,
    tied: bool = True,
    embed_scale: float = 0.5,
) -> Path:
    """Write a random tiny llama (f32, or quantized with `quantize_bits`) as an mlx_lm directory.
    tied=False gives it its own output head: tied embeddings make a random model repeat its last
    token, an untied head answers in varied bytes (for tests that need different answers).
    `embed_scale`: the embeddings' spread; small values give a flat next-token distribution (varied
    samples, as online RL tests need), the default a peaked one."""
    from mlx_lm.models import llama

    path = Path(path)
    vocab = write_tiny_tokenizer(path, chat_template)
    config = tiny_config(vocab, hidden, layers, tied)
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    # Larger-than-default init so the random model's outputs are not all alike.
    model.update(
        {"model": {"embed_tokens": {"weight": mx.random.normal((vocab, hidden)) * embed_scale}}}
    )
    if quantize_bits:
        nn.quantize(model, group_size=32, bits=quantize_bits)
        config["quantization"] = {"group_size": 32, "bits": quantize_bits}
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(path / "model.safetensors"), weights, metadata={"format": "mlx"})
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return path
