"""Convert a llama-architecture GGUF (Ollama / LM Studio / llama.cpp) into an mlx_lm directory.

mx.load reads GGUF natively: F32/F16 tensors come back dense, Q4_0/Q4_1/Q8_0 as MLX affine
quantized triples (weight uint32, scales, biases; group size 32), which is why "keep-quant" is
lossless. Other GGUF quant types (K-quants, IQ*) are not readable by MLX and give a ModelError.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import localtune  # noqa: F401  (OpenBLAS before mlx)
import mlx.core as mx

from localtune import events
from localtune.errors import ModelError
from localtune.fsutil import atomic_save_safetensors, atomic_write_json
from localtune.outputs import check_output, staged_dir

GGUF_GROUP_SIZE = 32  # every GGUF block type MLX reads (Q4_0, Q4_1, Q8_0) has 32-weight blocks
DTYPES = ("float32", "float16", "keep-quant")
SHARD_BYTES = 4 << 30  # split big outputs so no single safetensors file gets huge
IMPORT_INFO = "localtune_import.json"  # provenance; its presence marks a finished import

_LAYER_MAP = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_MAP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def read_gguf(path: str | os.PathLike) -> tuple[dict, dict]:
    """(tensors, metadata) of a GGUF file; ModelError naming the file when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"GGUF file not found: {path}")
    try:
        return mx.load(str(path), return_metadata=True)
    except Exception as e:  # MLX raises plain RuntimeError/ValueError for bad or K-quant files
        raise ModelError(
            f"cannot read GGUF file {path}: {e} (MLX reads F32/F16/Q4_0/Q4_1/Q8_0 tensors only)"
        ) from e


def meta_value(meta: dict, key: str, default=None):
    """A metadata scalar as a Python value (mx.load returns scalars as 0-d mx.arrays)."""
    v = meta.get(key, default)
    if isinstance(v, mx.array):
        return v.item() if v.ndim == 0 else v.tolist()
    return v


def permute_qk(w: mx.array, n_head: int) -> mx.array:
    """llama.cpp's HF->GGUF row permutation of q/k (for its interleaved rope); for tests."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: mx.array, n_head: int) -> mx.array:
    """Inverse of permute_qk: back to the HF (rotate-half) row order mlx_lm's llama expects.

    Works on weight, scales and biases alike: it only reorders rows, and quantization groups
    run along columns, so keep-quant stays bit-exact.
    """
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_base_name(gguf_base: str) -> str | None:
    """HF/mlx_lm module path of a GGUF tensor base name (without .weight), None if unknown."""
    if gguf_base in _TOP_MAP:
        return _TOP_MAP[gguf_base]
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)", gguf_base)
    if m and m.group(2) in _LAYER_MAP:
        return f"model.layers.{m.group(1)}.{_LAYER_MAP[m.group(2)]}"
    return None


def _split(name: str) -> tuple[str, str]:
    base, _, suffix = name.rpartition(".")
    return base, suffix


def quant_bits(weight: mx.array, scales: mx.array) -> int:
    """Bits per weight of an MLX-quantized triple, from its packed and group shapes."""
    in_dims = scales.shape[-1] * GGUF_GROUP_SIZE
    return weight.shape[-1] * 32 // in_dims


def _llama3_rope_factors(base: float, dim: int, factor, low, high, orig) -> list[float]:
    # Same formula as HF's _compute_llama3_parameters / llama.cpp's rope_freqs tensor.
    out = []
    for i in range(0, dim, 2):
        freq = 1.0 / base ** (i / dim)
        wavelen = 2 * math.pi / freq
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return out


def _rope_scaling(meta: dict, tensors: dict, head_dim: int, base: float, path: Path):
    """HF rope_scaling for the GGUF: linear from metadata, llama3 recovered from rope_freqs."""
    kind = meta_value(meta, "llama.rope.scaling.type")
    if kind == "linear":
        return {"type": "linear", "factor": float(meta_value(meta, "llama.rope.scaling.factor"))}
    if "rope_freqs.weight" not in tensors:
        if kind not in (None, "none"):
            raise ModelError(f"{path}: rope scaling {kind!r} is not supported")
        return None
    # llama.cpp stores llama3 scaling only as per-frequency factors; find the parameters
    # (the published Llama 3.1/3.2 ones) that reproduce them.
    have = tensors["rope_freqs.weight"].astype(mx.float32)
    for factor in (8.0, 32.0, 16.0, 4.0):
        for orig in (8192, 4096, 16384):
            want = mx.array(_llama3_rope_factors(base, head_dim, factor, 1.0, 4.0, orig))
            if want.shape == have.shape and mx.allclose(want, have, rtol=1e-3).item():
                return {
                    "rope_type": "llama3",
                    "factor": factor,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": orig,
                }
    raise ModelError(f"{path}: unrecognised rope_freqs (rope scaling) tensor")


def llama_config(meta: dict, tensors: dict, path: Path) -> dict:
    """The HF config.json of a llama GGUF."""
    arch = meta_value(meta, "general.architecture")
    if arch != "llama":
        raise ModelError(
            f"{path}: architecture {arch!r} is not supported (only 'llama' GGUFs can be imported)"
        )
    if meta_value(meta, "llama.expert_count"):
        raise ModelError(f"{path}: mixture-of-experts llama GGUFs are not supported")

    def need(key):
        v = meta_value(meta, f"llama.{key}")
        if v is None:
            raise ModelError(f"{path}: GGUF metadata lacks llama.{key}")
        return v

    hidden = int(need("embedding_length"))
    n_head = int(need("attention.head_count"))
    n_kv = int(meta_value(meta, "llama.attention.head_count_kv", n_head))
    head_dim = int(meta_value(meta, "llama.attention.key_length", hidden // n_head))
    rope_dim = int(meta_value(meta, "llama.rope.dimension_count", head_dim))
    if rope_dim != head_dim:
        raise ModelError(f"{path}: partial rotary embeddings ({rope_dim}/{head_dim}) unsupported")
    ffn = need("feed_forward_length")
    tokens = meta.get("tokenizer.ggml.tokens") or []
    vocab = meta_value(meta, "llama.vocab_size") or len(tokens)
    if not vocab and "token_embd.weight" in tensors:
        vocab = tensors["token_embd.weight"].shape[0]
    base = float(meta_value(meta, "llama.rope.freq_base", 10000.0))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": int(need("block_count")),
        "intermediate_size": int(ffn if not isinstance(ffn, list) else ffn[0]),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "head_dim": head_dim,
        "rms_norm_eps": float(meta_value(meta, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": base,
        "max_position_embeddings": int(meta_value(meta, "llama.context_length", 2048)),
        "vocab_size": int(vocab),
        "tie_word_embeddings": "output.weight" not in tensors,
        "attention_bias": False,
        "mlp_bias": False,
    }
    scaling = _rope_scaling(meta, tensors, head_dim, base, path)
    if scaling:
        config["rope_scaling"] = scaling
    for key, hf in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id")):
        v = meta_value(meta, f"tokenizer.ggml.{key}")
        if v is not None:
            config[hf] = int(v)
    return config


def convert_tensors(tensors: dict, config: dict, dtype: str, path: Path) -> tuple[dict, dict]:
    """(mlx_lm weights, per-module quantization {path: {group_size, bits}}) from GGUF tensors."""
    groups: dict[str, dict[str, mx.array]] = {}
    for name, arr in tensors.items():
        base, suffix = _split(name)
        groups.setdefault(base, {})[suffix] = arr
    groups.pop("rope_freqs", None)  # folded into config["rope_scaling"]
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    target = {"float32": mx.float32, "float16": mx.float16}.get(dtype)
    out, quant = {}, {}
    for base, parts in groups.items():
        hf = hf_base_name(base)
        if hf is None or not set(parts) <= {"weight", "scales", "biases", "bias"}:
            raise ModelError(f"{path}: unknown tensor {base}.{'/'.join(parts)} in a llama GGUF")
        n_head = heads.get(base.rpartition(".")[2])
        if n_head is not None:
            parts = {k: unpermute_qk(v, n_head) for k, v in parts.items()}
        if "scales" in parts:
            bits = quant_bits(parts["weight"], parts["scales"])
            if target is None:
                quant[hf] = {"group_size": GGUF_GROUP_SIZE, "bits": bits}
                out.update({f"{hf}.{k}": v for k, v in parts.items()})
                continue
            w = mx.dequantize(
                parts["weight"], parts["scales"], parts["biases"],
                group_size=GGUF_GROUP_SIZE, bits=bits,
            )
            out[f"{hf}.weight"] = w.astype(target)
        else:
            for k, v in parts.items():
                out[f"{hf}.{k}"] = v.astype(target) if target is not None else v
    return out, quant


def _quantization_config(quant: dict) -> dict | None:
    """mlx_lm's config["quantization"]: the most common bits as default, others per module."""
    if not quant:
        return None
    counts: dict[int, int] = {}
    for q in quant.values():
        counts[q["bits"]] = counts.get(q["bits"], 0) + 1
    bits = max(counts, key=counts.get)
    cfg = {"group_size": GGUF_GROUP_SIZE, "bits": bits}
    cfg.update({p: q for p, q in sorted(quant.items()) if q["bits"] != bits})
    return cfg


def _shards(weights: dict) -> list[dict]:
    shards, cur, size = [], {}, 0
    for k in sorted(weights):
        nbytes = weights[k].nbytes
        if cur and size + nbytes > SHARD_BYTES:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = weights[k]
        size += nbytes
    return shards + [cur] if cur else shards


def _write_weights(tmp: Path, weights: dict, emit) -> None:
    shards = _shards(weights)
    if len(shards) == 1:
        atomic_save_safetensors(tmp / "model.safetensors", shards[0], {"format": "mlx"})
        return
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        atomic_save_safetensors(tmp / name, shard, {"format": "mlx"})
        weight_map.update({k: name for k in shard})
        emit(events.Import("write", done=i + 1, total=len(shards)).to_dict())
    total = sum(v.nbytes for v in weights.values())
    atomic_write_json(
        tmp / "model.safetensors.index.json",
        {"metadata": {"total_size": total}, "weight_map": weight_map},
    )


def import_gguf(
    gguf_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    dtype: str = "float32",
    on_event=None,
    force: bool = False,
) -> Path:
    """Write an mlx_lm-loadable directory for a llama GGUF; returns out_dir.

    dtype: "float32"/"float16" dequantize everything; "keep-quant" keeps Q4_0/Q4_1/Q8_0 blocks
    as MLX 4/8-bit (group size 32) quantized weights, bit-exact.
    Built in a temp dir next to out_dir and renamed into place, so a crash never leaves a
    half-written model. An existing non-empty out_dir is refused unless `force` (and never
    replaced if it is a run, holds the GGUF, ...: localtune.outputs).
    """
    from localtune.models.gguf_tokenizer import write_tokenizer_files

    if dtype not in DTYPES:
        raise ModelError(f"unknown GGUF import dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    emit = on_event or (lambda _e: None)
    path, out_dir = Path(gguf_path), Path(out_dir)
    check_output(out_dir, force=force, sources=[path])  # before the slow part
    emit(events.Import("read", path=str(path), message=f"reading {path}").to_dict())
    tensors, meta = read_gguf(path)
    config = llama_config(meta, tensors, path)
    weights, quant = convert_tensors(tensors, config, dtype, path)
    qcfg = _quantization_config(quant)
    if qcfg:
        config["quantization"] = qcfg
        config["quantization_config"] = qcfg
    config["torch_dtype"] = dtype if dtype != "keep-quant" else "float16"

    with staged_dir(out_dir, force=force, sources=[path]) as tmp:
        emit(events.Import("convert", tensors=len(weights), message=f"converting {len(weights)} tensors to {dtype}"
                           ).to_dict())
        _write_weights(tmp, weights, emit)
        del weights, tensors
        tok = write_tokenizer_files(meta, tmp, source=path)
        gen = {"eos_token_id": tok["eos_token_id"]}
        if tok.get("bos_token_id") is not None:
            gen["bos_token_id"] = tok["bos_token_id"]
        atomic_write_json(tmp / "generation_config.json", gen)
        if tok["eos_token_id"] is not None:
            config["eos_token_id"] = tok["eos_token_id"]
        atomic_write_json(tmp / "config.json", config)
        st = path.stat()
        atomic_write_json(
            tmp / IMPORT_INFO,
            {
                "source": str(path.resolve()),
                "source_size": st.st_size,
                "source_mtime": st.st_mtime,
                "dtype": dtype,
                "name": meta_value(meta, "general.name"),
            },
        )
    emit(events.Import("done", path=str(out_dir), message=f"wrote {out_dir}").to_dict())
    return out_dir
