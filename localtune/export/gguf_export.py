"""Export a fused llama model as a GGUF file (fp16) for llama.cpp / Ollama / LM Studio.

The inverse of models/gguf_import.py: its name map read backwards, q/k rows permuted into
llama.cpp's interleaved-rope order, llama.* hyper-parameters and tokenizer.ggml.* metadata
generated from config.json / tokenizer.json / tokenizer_config.json. Written with mx.save_gguf.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
from mlx.utils import tree_flatten

from localtune.errors import ModelError
from localtune.fsutil import atomic_write_with
from localtune.models.gguf_import import _LAYER_MAP, _TOP_MAP, _llama3_rope_factors, permute_qk
from localtune.models.gguf_tokenizer import CONTROL, NORMAL, UNUSED, USER_DEFINED

_TO_LAYER = {hf: g for g, hf in _LAYER_MAP.items()}
_TO_TOP = {hf: g for g, hf in _TOP_MAP.items()}
FILE_TYPES = {"float16": (mx.float16, 1), "float32": (mx.float32, 0)}  # GGUF general.file_type


def gguf_name(hf: str) -> str:
    """'model.layers.3.self_attn.q_proj.weight' -> 'blk.3.attn_q.weight' (and top-level names)."""
    base, _, suffix = hf.rpartition(".")
    if base in _TO_TOP:
        return f"{_TO_TOP[base]}.{suffix}"
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", base)
    if m and m.group(2) in _TO_LAYER:
        return f"blk.{m.group(1)}.{_TO_LAYER[m.group(2)]}.{suffix}"
    raise ModelError(f"no GGUF name for tensor {hf!r} (only llama-architecture models export to GGUF)")


def gguf_tensors(weights: dict[str, mx.array], config: dict, dtype=mx.float16) -> dict[str, mx.array]:
    heads = {"attn_q": config["num_attention_heads"],
             "attn_k": config.get("num_key_value_heads", config["num_attention_heads"])}
    out = {}
    for hf, w in weights.items():
        if hf.endswith((".scales", ".biases")) or w.dtype == mx.uint32:
            raise ModelError("GGUF export needs a dense model: fuse with --dequantize first")
        name = gguf_name(hf)
        n_head = heads.get(name.split(".")[2]) if name.startswith("blk.") else None
        if n_head is not None:
            w = permute_qk(w, n_head)
        # llama.cpp keeps 1-D tensors (norms) in f32 whatever the file type.
        out[name] = w.astype(mx.float32 if w.ndim == 1 else dtype)
    rope = config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type")) == "llama3":
        head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
        out["rope_freqs.weight"] = mx.array(_llama3_rope_factors(
            float(config.get("rope_theta", 10000.0)), head_dim, rope["factor"], rope["low_freq_factor"],
            rope["high_freq_factor"], rope["original_max_position_embeddings"]), dtype=mx.float32)
    return out


def _u32(v) -> mx.array:
    return mx.array(int(v), dtype=mx.uint32)


def _f32(v) -> mx.array:
    return mx.array(float(v), dtype=mx.float32)


def llama_metadata(config: dict, name: str, file_type: int) -> dict:
    if config.get("model_type") != "llama":
        raise ModelError(f"GGUF export supports llama-architecture models only (this is "
                         f"{config.get('model_type')!r}); use --format fused or peft")
    hidden, n_head = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // n_head
    meta = {
        "general.architecture": "llama",
        "general.name": name,
        "general.file_type": _u32(file_type),
        "llama.context_length": _u32(config.get("max_position_embeddings", 2048)),
        "llama.embedding_length": _u32(hidden),
        "llama.block_count": _u32(config["num_hidden_layers"]),
        "llama.feed_forward_length": _u32(config["intermediate_size"]),
        "llama.attention.head_count": _u32(n_head),
        "llama.attention.head_count_kv": _u32(config.get("num_key_value_heads", n_head)),
        "llama.attention.layer_norm_rms_epsilon": _f32(config.get("rms_norm_eps", 1e-5)),
        "llama.rope.freq_base": _f32(config.get("rope_theta", 10000.0)),
        "llama.rope.dimension_count": _u32(head_dim),
        "llama.vocab_size": _u32(config["vocab_size"]),
    }
    if head_dim != hidden // n_head:
        meta["llama.attention.key_length"] = _u32(head_dim)
        meta["llama.attention.value_length"] = _u32(head_dim)
    rope = config.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type"))
    if kind == "linear":
        meta["llama.rope.scaling.type"] = "linear"
        meta["llama.rope.scaling.factor"] = _f32(rope["factor"])
    elif kind not in (None, "default", "llama3"):
        raise ModelError(f"rope scaling {kind!r} has no GGUF equivalent here")
    return meta


def _pre_tokenizer_name(pre: dict | None) -> str:
    """llama.cpp's tokenizer.ggml.pre for the HF pre-tokenizer (the splits import knows)."""
    from localtune.models.gguf_tokenizer import LLAMA3_SPLIT, QWEN2_SPLIT

    steps = (pre or {}).get("pretokenizers", [pre] if pre else [])
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"]:
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    if kinds and kinds[0] == "Split":
        regex = (steps[0].get("pattern") or {}).get("Regex")
        if regex == LLAMA3_SPLIT:
            return "llama-bpe"
        if regex == QWEN2_SPLIT:
            return "qwen2"
    return "default"


def _token_name(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def tokenizer_metadata(model_dir: Path, config: dict, n_vocab: int) -> dict:
    """tokenizer.ggml.* from a byte-level BPE tokenizer.json (GPT-2 family; SmolLM2, Llama 3, Qwen)."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise ModelError(f"{model_dir}: no tokenizer.json; GGUF export needs a fast (BPE) tokenizer")
    tok = json.loads(path.read_text(encoding="utf-8"))
    model = tok.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ModelError(f"{path}: only byte-level BPE tokenizers export to GGUF for now "
                         f"(this is {model.get('type')}{' with byte fallback' if model.get('byte_fallback') else ''})")
    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    types: dict[int, int] = {}
    for added in tok.get("added_tokens") or []:
        by_id[added["id"]] = added["content"]
        types[added["id"]] = CONTROL if added.get("special") else USER_DEFINED
    size = max(n_vocab, max(by_id) + 1)
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    token_type = [types.get(i, NORMAL if i in by_id else UNUSED) for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]

    tcfg_path = Path(model_dir) / "tokenizer_config.json"
    tcfg = json.loads(tcfg_path.read_text()) if tcfg_path.is_file() else {}
    ids = {t: i for i, t in enumerate(tokens)}
    meta = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": _pre_tokenizer_name(tok.get("pre_tokenizer")),
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": mx.array(token_type, dtype=mx.int32),
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.add_bos_token": mx.array(bool(tcfg.get("add_bos_token", False))),
        "tokenizer.ggml.add_eos_token": mx.array(bool(tcfg.get("add_eos_token", False))),
    }
    eos = config.get("eos_token_id")
    named = {"bos": _token_name(tcfg.get("bos_token")), "eos": _token_name(tcfg.get("eos_token")),
             "unknown": _token_name(tcfg.get("unk_token")), "padding": _token_name(tcfg.get("pad_token"))}
    for key, token in named.items():
        i = ids.get(token) if token else None
        if i is None and key == "eos" and eos is not None:
            i = eos[0] if isinstance(eos, list) else eos
        if i is None and key == "bos" and config.get("bos_token_id") is not None:
            i = config["bos_token_id"]
        if i is not None:
            meta[f"tokenizer.ggml.{key}_token_id"] = _u32(i)
    template = tcfg.get("chat_template")
    jinja = Path(model_dir) / "chat_template.jinja"
    if not template and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    if isinstance(template, str) and template:
        meta["tokenizer.chat_template"] = template
    return meta


def write_gguf(model, base: Path, config: dict, out: str | Path, *, name: str,
               dtype: str = "float16") -> Path:
    """Write `model` (dense, fused) with the tokenizer of `base` as the GGUF file `out`."""
    if dtype not in FILE_TYPES:
        raise ModelError(f"GGUF export dtype must be one of {', '.join(FILE_TYPES)}")
    target, file_type = FILE_TYPES[dtype]
    meta = llama_metadata(config, name, file_type)
    tensors = gguf_tensors(dict(tree_flatten(model.parameters())), config, target)
    meta.update(tokenizer_metadata(base, config, tensors["token_embd.weight"].shape[0]))
    out = Path(out)
    atomic_write_with(out, lambda tmp: mx.save_gguf(tmp, tensors, meta), suffix=".gguf")
    return out


def export_gguf(run: str | Path, out: str | Path, *, model: str | None = None,
                dtype: str = "float16", force: bool = False) -> Path:
    """The GGUF file `out` (an existing file is refused unless `force`; a directory always)."""
    from localtune.export.fused import fused_model
    from localtune.export.source import base_model_path
    from localtune.outputs import check_output

    check_output(out, kind="file", force=force, sources=(run, base_model_path(run, model)))
    m, _, base, config = fused_model(run, model=model, dequantize=True)
    return write_gguf(m, base, config, out, name=Path(run).name, dtype=dtype)
