"""GGUF import on tiny GGUFs written here: weights, q/k un-permutation, tokenizers, errors."""

from __future__ import annotations

import json
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from localtune.errors import ModelError
from localtune.models import gguf_import
from localtune.models.gguf_import import import_gguf, permute_qk, unpermute_qk
from localtune.models.gguf_tokenizer import build_tokenizer

HIDDEN, HEADS, KV_HEADS, LAYERS = 64, 4, 2, 2
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_TO_GGUF = {v: k for k, v in gguf_import._LAYER_MAP.items()}


def gpt2_vocab() -> tuple[list[str], list[int], list[str]]:
    """Specials, the 256 byte-level symbols, and two merged tokens."""
    from tokenizers.pre_tokenizers import ByteLevel

    tokens = SPECIALS + sorted(ByteLevel.alphabet()) + ["Ġt", "he", "Ġthe"]
    types = [3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS))
    return tokens, types, ["Ġ t", "h e", "Ġt he"]


def gguf_name(hf: str) -> str:
    parts = hf.split(".")
    if parts[:2] == ["model", "layers"]:
        return f"blk.{parts[2]}.{_TO_GGUF['.'.join(parts[3:-1])]}.{parts[-1]}"
    return {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }[hf]


def reference_model(vocab: int, tie: bool, seed: int = 0):
    from mlx_lm.models import llama

    cfg = {
        "model_type": "llama", "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
        "intermediate_size": 2 * HIDDEN, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "rms_norm_eps": 1e-5, "vocab_size": vocab,
        "rope_theta": 10000.0, "tie_word_embeddings": tie,
    }
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(cfg))
    # Random norms too, so a norm mapped to the wrong place changes the logits.
    model.update(
        {
            "model": {
                "embed_tokens": {"weight": mx.random.normal((vocab, HIDDEN)) * 0.5},
                "norm": {"weight": 1 + 0.1 * mx.random.normal((HIDDEN,))},
            }
        }
    )
    mx.eval(model.parameters())
    return model


def gguf_tensors(model) -> dict:
    """HF-layout weights -> GGUF names, with q/k permuted the way llama.cpp's converter does."""
    out = {}
    for hf, w in tree_flatten(model.parameters()):
        name = gguf_name(hf)
        if ".attn_q." in name:
            w = permute_qk(w, HEADS)
        elif ".attn_k." in name:
            w = permute_qk(w, KV_HEADS)
        out[name] = w
    return out


def llama_meta(tokens, types, merges, arch="llama") -> dict:
    return {
        "general.architecture": arch,
        "general.name": "tiny",
        f"{arch}.embedding_length": mx.array(HIDDEN, dtype=mx.uint32),
        f"{arch}.block_count": mx.array(LAYERS, dtype=mx.uint32),
        f"{arch}.feed_forward_length": mx.array(2 * HIDDEN, dtype=mx.uint32),
        f"{arch}.attention.head_count": mx.array(HEADS, dtype=mx.uint32),
        f"{arch}.attention.head_count_kv": mx.array(KV_HEADS, dtype=mx.uint32),
        f"{arch}.rope.freq_base": mx.array(10000.0),
        f"{arch}.attention.layer_norm_rms_epsilon": mx.array(1e-5),
        f"{arch}.context_length": mx.array(2048, dtype=mx.uint32),
        f"{arch}.rope.dimension_count": mx.array(HIDDEN // HEADS, dtype=mx.uint32),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": mx.array(types, dtype=mx.int32),
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": mx.array(1, dtype=mx.uint32),
        "tokenizer.ggml.eos_token_id": mx.array(2, dtype=mx.uint32),
        "tokenizer.ggml.unknown_token_id": mx.array(0, dtype=mx.uint32),
        "tokenizer.ggml.padding_token_id": mx.array(0, dtype=mx.uint32),
        "tokenizer.ggml.add_bos_token": mx.array(False),
        "tokenizer.chat_template": CHATML,
    }


def write_gguf(path: Path, tie: bool = True, **meta_overrides) -> tuple[Path, object]:
    tokens, types, merges = gpt2_vocab()
    model = reference_model(len(tokens), tie)
    meta = llama_meta(tokens, types, merges)
    meta.update(meta_overrides)
    mx.save_gguf(str(path), gguf_tensors(model), meta)
    return path, model


IDS = mx.array([[1, 40, 70, 5, 100, 259, 260, 261, 2]])  # 259..261: the merged tokens


@pytest.mark.parametrize("n_head", [1, 2, 4])
def test_unpermute_is_exact_inverse_of_llama_cpp_permute(n_head):
    w = mx.random.normal((n_head * 8, 5))
    assert mx.array_equal(unpermute_qk(permute_qk(w, n_head), n_head), w)
    assert mx.array_equal(permute_qk(unpermute_qk(w, n_head), n_head), w)
    assert not mx.array_equal(permute_qk(w, n_head), w)
    # the same row order on uint32 packs / fp16 scales (keep-quant path)
    q = mx.arange(n_head * 8 * 3, dtype=mx.uint32).reshape(n_head * 8, 3)
    assert mx.array_equal(unpermute_qk(permute_qk(q, n_head), n_head), q)


@pytest.mark.parametrize("tie", [True, False])
def test_import_dense_gguf_matches_reference_logits(tmp_path, tie):
    from mlx_lm.utils import load

    gguf, ref = write_gguf(tmp_path / "tiny.gguf", tie=tie)
    events = []
    out = import_gguf(gguf, tmp_path / "out", dtype="float32", on_event=events.append)
    assert out == tmp_path / "out"
    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] is tie
    assert config["num_key_value_heads"] == KV_HEADS and "quantization" not in config
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 2
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert tok_cfg["chat_template"] == CHATML and tok_cfg["eos_token"] == "<|im_end|>"
    assert {e["stage"] for e in events} >= {"read", "done"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp dir gone

    model, tokenizer = load(str(out))
    assert mx.allclose(model(IDS), ref(IDS), atol=1e-5).item()
    # the chat template and specials work through mlx_lm's wrapper
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "the"}], tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert ids[0] == 1 and 2 in ids and 260 in ids  # <|im_start|>, <|im_end|>, "he"


def test_import_float16(tmp_path):
    gguf, _ = write_gguf(tmp_path / "tiny.gguf")
    out = import_gguf(gguf, tmp_path / "f16", dtype="float16")
    weights = mx.load(str(out / "model.safetensors"))
    assert {w.dtype for w in weights.values()} == {mx.float16}


def test_keep_quant_is_lossless_and_dequantizes_like_float(tmp_path, monkeypatch):
    """mx.save_gguf cannot write quantized blocks, so feed read_gguf quantized triples the way
    mx.load returns Q4_1/Q8_0 tensors, permuted q/k included."""
    from mlx_lm.utils import load

    gguf, _ = write_gguf(tmp_path / "tiny.gguf")
    tensors, meta = mx.load(str(gguf), return_metadata=True)
    quant = {}
    for name, w in tensors.items():
        if name.endswith(".weight") and w.ndim == 2:
            bits = 8 if name == "token_embd.weight" else 4  # mixed, like real Q4_1 files
            q, s, b = mx.quantize(w, group_size=32, bits=bits)
            base = name[: -len(".weight")]
            quant.update({f"{base}.weight": q, f"{base}.scales": s, f"{base}.biases": b})
        else:
            quant[name] = w
    monkeypatch.setattr(gguf_import, "read_gguf", lambda p: (quant, meta))
    kq = import_gguf(gguf, tmp_path / "kq", dtype="keep-quant")
    f32 = import_gguf(gguf, tmp_path / "f32", dtype="float32")
    config = json.loads((kq / "config.json").read_text())
    assert config["quantization"]["bits"] == 4 and config["quantization"]["group_size"] == 32
    assert config["quantization"]["model.embed_tokens"] == {"group_size": 32, "bits": 8}

    saved = mx.load(str(kq / "model.safetensors"))
    q_w = quant["blk.0.attn_q.weight"]
    assert mx.array_equal(saved["model.layers.0.self_attn.q_proj.weight"], unpermute_qk(q_w, HEADS))
    model_q, _ = load(str(kq))
    model_f, _ = load(str(f32))
    assert mx.allclose(model_q(IDS), model_f(IDS), atol=1e-3).item()


def test_gpt2_tokenizer_from_metadata():
    tokens, types, merges = gpt2_vocab()
    tok, cfg, smap, info = build_tokenizer(llama_meta(tokens, types, merges))
    ids = tok.encode("the<|im_end|> 12").ids
    digits = [tokens.index("1"), tokens.index("2")]  # split one by one (Digits pre-tokenizer)
    assert ids == [tokens.index("t"), tokens.index("he"), 2, tokens.index("Ġ"), *digits]
    assert tok.encode(" the").ids == [tokens.index("Ġthe")] == [261]
    text = "héllo 日本 <|im_start|>x"
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    assert cfg["eos_token"] == "<|im_end|>" and cfg["add_bos_token"] is False
    assert info["eos_token_id"] == 2 and smap["bos_token"] == "<|im_start|>"


def _train_sentencepiece(tmp_path):
    import sentencepiece as spm

    corpus = [
        "hello world, the quick brown fox jumps over the lazy dog.",
        "the world says hello to the fox; dogs are lazy and foxes are quick.",
        "numbers like 12345 and 3.14 appear in text too.",
    ] * 30
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_prefix=str(tmp_path / "sp"), model_type="bpe",
        vocab_size=320, byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))


def test_llama_spm_tokenizer_matches_sentencepiece(tmp_path):
    sp = _train_sentencepiece(tmp_path)
    n = sp.get_piece_size()
    types = [
        2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1
        for i in range(n)
    ]
    meta = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [sp.id_to_piece(i) for i in range(n)],
        "tokenizer.ggml.scores": mx.array([sp.get_score(i) for i in range(n)]),
        "tokenizer.ggml.token_type": mx.array(types, dtype=mx.int32),
        "tokenizer.ggml.bos_token_id": mx.array(sp.bos_id(), dtype=mx.uint32),
        "tokenizer.ggml.eos_token_id": mx.array(sp.eos_id(), dtype=mx.uint32),
        "tokenizer.ggml.unknown_token_id": mx.array(sp.unk_id(), dtype=mx.uint32),
        "tokenizer.ggml.add_bos_token": mx.array(True),
    }
    tok, cfg, _, _ = build_tokenizer(meta)
    for text in [
        "hello world", "the quick brown fox", "héllo wörld 日本", "12345 + 3.14",
        "lazy  dogs\tand\nfoxes", "xyzzy",
    ]:
        want = [sp.bos_id()] + sp.encode(text)
        got = tok.encode(text).ids
        assert got == want, text
        assert tok.decode(got, skip_special_tokens=True) == text
    assert cfg["bos_token"] == "<s>" and cfg["add_bos_token"] is True


def test_errors_name_the_file(tmp_path):
    with pytest.raises(ModelError, match="nope.gguf"):
        import_gguf(tmp_path / "nope.gguf", tmp_path / "out")
    bad = tmp_path / "garbage.gguf"
    bad.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(ModelError, match="garbage.gguf"):
        import_gguf(bad, tmp_path / "out")
    qwen, _ = write_gguf(tmp_path / "qwen.gguf", **{"general.architecture": "qwen2"})
    with pytest.raises(ModelError, match=r"qwen\.gguf.*'qwen2'"):
        import_gguf(qwen, tmp_path / "out")
    with pytest.raises(ModelError, match="dtype"):
        import_gguf(qwen, tmp_path / "out", dtype="int3")
    assert not (tmp_path / "out").exists()


def test_unknown_tensor_is_an_error_and_leaves_nothing(tmp_path):
    tokens, types, merges = gpt2_vocab()
    model = reference_model(len(tokens), True)
    tensors = gguf_tensors(model)
    tensors["blk.0.attn_weird.weight"] = mx.zeros((4, 4))
    path = tmp_path / "odd.gguf"
    mx.save_gguf(str(path), tensors, llama_meta(tokens, types, merges))
    with pytest.raises(ModelError, match=r"odd\.gguf.*blk\.0\.attn_weird"):
        import_gguf(path, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [path]


def test_reimport_refuses_a_non_empty_dir_unless_forced(tmp_path):
    from localtune.outputs import OutputRefused

    gguf, _ = write_gguf(tmp_path / "tiny.gguf")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(OutputRefused, match="--force"):
        import_gguf(gguf, out)
    assert (out / "stale.txt").read_text() == "old" and not (out / "config.json").exists()
    import_gguf(gguf, out, force=True)
    assert not (out / "stale.txt").exists() and (out / "config.json").is_file()
