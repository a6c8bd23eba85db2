"""Rebuild HF tokenizer files (tokenizer.json, tokenizer_config.json, special_tokens_map.json)
from a GGUF's tokenizer.ggml.* metadata.

Two GGUF tokenizer models are handled:
- "gpt2": byte-level BPE (tokens + merges), with the pre-tokenizer named by tokenizer.ggml.pre;
- "llama": SentencePiece BPE with scores, rebuilt like HF's LlamaTokenizerFast (merges derived
  from the scores, byte fallback through the <0xNN> tokens).
"""

from __future__ import annotations

from pathlib import Path

from localtune.errors import ModelError
from localtune.fsutil import atomic_write_json, atomic_write_text

# GGUF token types (llama.cpp's llama_token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Split regexes of the BPE families, as in their HF tokenizer.json files.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
DIGITS_THEN_BYTELEVEL = {"smollm", "starcoder", "refact", "codeshell", "falcon3"}


def _v(meta: dict, key: str, default=None):
    from localtune.models.gguf_import import meta_value

    return meta_value(meta, key, default)


def _byte_level_pre_tokenizer(pre: str | None):
    from tokenizers import Regex, pre_tokenizers

    if pre in ("llama-bpe", "llama3", "llama-v3", "smaug-bpe"):
        split = pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False)
        byte = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        return pre_tokenizers.Sequence([split, byte])
    if pre in ("qwen2",):
        split = pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False)
        byte = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        return pre_tokenizers.Sequence([split, byte])
    byte = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in DIGITS_THEN_BYTELEVEL:
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte])
    return byte  # "gpt2", "default" and families we do not know: plain GPT-2 splitting


def _gpt2_tokenizer(meta: dict, tokens: list[str]):
    from tokenizers import Tokenizer, decoders, models

    merges = meta.get("tokenizer.ggml.merges") or []
    pairs = []
    for m in merges:
        left, sep, right = m.partition(" ")
        if sep:
            pairs.append((left, right))
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = _byte_level_pre_tokenizer(_v(meta, "tokenizer.ggml.pre"))
    tok.decoder = decoders.ByteLevel()
    return tok


def spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece vocab (HF's SentencePieceExtractor logic):
    every split of a normal piece into two vocab pieces, ordered by the merged piece's score."""
    vocab = {t: i for i, t in enumerate(tokens)}
    found = []
    for i, piece in enumerate(tokens):
        if types[i] not in (NORMAL, 0):
            continue
        local = [
            (piece[:k], piece[k:])
            for k in range(1, len(piece))
            if piece[:k] in vocab and piece[k:] in vocab
        ]
        local.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
        found.extend((left, right, scores[i]) for left, right in local)
    found.sort(key=lambda m: m[2], reverse=True)  # stable: ties keep vocab order
    return [(left, right) for left, right, _ in found]


def _llama_spm_tokenizer(meta: dict, tokens: list[str], types: list[int]):
    from tokenizers import Tokenizer, decoders, models, normalizers

    scores = _v(meta, "tokenizer.ggml.scores") or [0.0] * len(tokens)
    unk_id = _v(meta, "tokenizer.ggml.unknown_token_id", 0)
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=spm_merges(tokens, scores, types),
            unk_token=tokens[unk_id] if unk_id is not None and unk_id < len(tokens) else None,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    add_prefix = bool(_v(meta, "tokenizer.ggml.add_space_prefix", True))
    steps = [normalizers.Prepend("▁")] if add_prefix else []
    tok.normalizer = normalizers.Sequence(steps + [normalizers.Replace(" ", "▁")])
    dec = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix:
        dec.append(decoders.Strip(" ", 1, 0))
    tok.decoder = decoders.Sequence(dec)
    return tok


def _post_processor(bos: str | None, bos_id, eos: str | None, eos_id, add_bos: bool, add_eos: bool):
    from tokenizers import processors

    single, pair, specials = "$A", "$A $B", []
    if add_bos and bos is not None:
        single, pair = f"{bos} {single}", f"{bos} $A {bos} $B"
        specials.append((bos, bos_id))
    if add_eos and eos is not None:
        single, pair = f"{single} {eos}", f"{pair} {eos}"
        if (eos, eos_id) not in specials:
            specials.append((eos, eos_id))
    if not specials:
        return None
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)


def build_tokenizer(meta: dict, source: Path | str = "GGUF"):
    """(tokenizers.Tokenizer, tokenizer_config dict, special_tokens_map dict, info dict)."""
    from tokenizers import AddedToken

    model = _v(meta, "tokenizer.ggml.model")
    tokens = list(meta.get("tokenizer.ggml.tokens") or [])
    if not tokens:
        raise ModelError(f"{source}: GGUF has no tokenizer.ggml.tokens; cannot build a tokenizer")
    types = _v(meta, "tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
    if model == "gpt2":
        tok = _gpt2_tokenizer(meta, tokens)
    elif model == "llama":
        tok = _llama_spm_tokenizer(meta, tokens, types)
    else:
        raise ModelError(
            f"{source}: tokenizer model {model!r} is not supported (only 'gpt2' and 'llama')"
        )

    # Control tokens become special added tokens (never split, skipped when decoding with
    # skip_special_tokens); user-defined ones are added but not special.
    added = [
        AddedToken(t, special=(ty == CONTROL), normalized=False)
        for t, ty in zip(tokens, types)
        if ty in (CONTROL, USER_DEFINED)
    ]
    tok.add_tokens(added)

    def name(key):
        i = _v(meta, f"tokenizer.ggml.{key}")
        return (tokens[i], int(i)) if i is not None and 0 <= i < len(tokens) else (None, None)

    bos, bos_id = name("bos_token_id")
    eos, eos_id = name("eos_token_id")
    unk, _ = name("unknown_token_id")
    pad, _ = name("padding_token_id")
    eot, eot_id = name("eot_token_id")
    add_bos = bool(_v(meta, "tokenizer.ggml.add_bos_token", model == "llama"))
    add_eos = bool(_v(meta, "tokenizer.ggml.add_eos_token", False))
    post = _post_processor(bos, bos_id, eos, eos_id, add_bos, add_eos)
    if post is not None:
        tok.post_processor = post
    for special in (bos, eos, unk, pad):  # make sure they are special even if typed NORMAL
        if special is not None and tok.token_to_id(special) is not None:
            tok.add_special_tokens([AddedToken(special, special=True, normalized=False)])

    specials = {"bos_token": bos, "eos_token": eos, "unk_token": unk, "pad_token": pad}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(_v(meta, "llama.context_length", 2048) or 2048),
    }
    template = _v(meta, "tokenizer.chat_template")
    if template:
        config["chat_template"] = template
    eos_ids = [i for i in (eos_id, eot_id) if i is not None]
    info = {
        "model": model,
        "bos_token_id": bos_id,
        "eos_token_id": eos_ids[0] if len(set(eos_ids)) == 1 else (sorted(set(eos_ids)) or None),
    }
    smap = {k: v for k, v in specials.items() if v is not None}
    return tok, config, smap, info


def write_tokenizer_files(meta: dict, out_dir: Path, *, source: Path | str = "GGUF") -> dict:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into out_dir.

    Returns {"model", "bos_token_id", "eos_token_id"} (eos may be a list when the GGUF names a
    separate end-of-turn token, e.g. Llama 3).
    """
    tok, config, smap, info = build_tokenizer(meta, source)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "tokenizer.json", tok.to_str(pretty=False))
    atomic_write_json(out_dir / "tokenizer_config.json", config)
    atomic_write_json(out_dir / "special_tokens_map.json", smap)
    return info

