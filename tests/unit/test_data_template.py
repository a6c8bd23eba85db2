"""Chat-template rendering and loss masks, checked by decoding the trained tokens."""

import json

import pytest
from mlx_lm.utils import load_tokenizer

from localtune.data import (
    FALLBACK_CHAT_TEMPLATE, Example, preview_segments, render, tokenize_example,
)
from localtune.data.template import hf_tokenizer
from tiny import CHATML, write_tiny_tokenizer

SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
NO_GEN_PROMPT = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
)
# Renders the last message differently, so prefixes of the conversation are not string prefixes.
LAST_DIFFERS = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] }}"
    "{% if loop.last %}{{ ' (end)' }}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
)
WITH_BOS = "{{ bos_token }}" + CHATML

THREE_TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Q1 say A1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "Q2"},
    {"role": "assistant", "content": "a"},  # one letter: also found inside "assistant"
    {"role": "user", "content": "Q3 é"},
    {"role": "assistant", "content": "A3 ünï\ncode"},
]
EXPECTED_TRAINED = "A1<|im_end|>a<|im_end|>A3 ünï\ncode<|im_end|>"


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    root = tmp_path_factory.mktemp("toks")
    out = {}
    for name, tmpl in [("chatml", CHATML), ("smollm2", SMOLLM2), ("nogen", NO_GEN_PROMPT),
                       ("fallback", None), ("last", LAST_DIFFERS), ("bos", WITH_BOS)]:
        write_tiny_tokenizer(root / name, tmpl)
        if name == "bos":
            cfg = json.loads((root / name / "tokenizer_config.json").read_text())
            cfg["bos_token"] = "<|endoftext|>"
            (root / name / "tokenizer_config.json").write_text(json.dumps(cfg))
        out[name] = load_tokenizer(root / name)
    return out


def chat(messages=THREE_TURNS):
    return Example(messages, None, "d.jsonl", 7, "messages")


def trained_text(tok, tokenizer):
    return hf_tokenizer(tokenizer).decode([i for i, m in zip(tok.ids, tok.mask) if m])


@pytest.mark.parametrize("name", ["chatml", "smollm2", "nogen", "fallback", "bos"])
def test_mask_covers_every_assistant_turn_and_no_header(tokenizers, name):
    tokenizer = tokenizers[name]
    tok = tokenize_example(chat(), tokenizer)
    assert (tok.source, tok.line) == ("d.jsonl", 7)
    assert len(tok.ids) == len(tok.mask)
    assert trained_text(tok, tokenizer) == EXPECTED_TRAINED
    # Specials written by the template are single special ids, not their characters.
    assert tok.ids.count(1) == 7  # <|im_start|> (system given, so SmolLM2 injects none)
    assert sum(t == 2 and m for t, m in zip(tok.ids, tok.mask)) == 3  # each trained <|im_end|>
    # The full render round-trips through the ids.
    assert hf_tokenizer(tokenizer).decode(tok.ids) == render(chat(), tokenizer)


def test_system_prompt_injecting_template(tokenizers):
    ex = chat(THREE_TURNS[1:])  # no system message: SmolLM2 injects its own
    text = render(ex, tokenizers["smollm2"])
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    tok = tokenize_example(ex, tokenizers["smollm2"])
    assert trained_text(tok, tokenizers["smollm2"]) == EXPECTED_TRAINED


def test_fallback_template_is_chatml(tokenizers):
    tokenizer = tokenizers["fallback"]
    assert not tokenizer.has_chat_template
    ex = chat(THREE_TURNS[1:3])
    assert render(ex, tokenizer) == (
        "<|im_start|>user\nQ1 say A1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
    )
    assert "<|im_start|>" in FALLBACK_CHAT_TEMPLATE


def test_template_that_renders_history_differently(tokenizers):
    tok = tokenize_example(chat(), tokenizers["last"])
    assert trained_text(tok, tokenizers["last"]) == "A1<|im_end|>a<|im_end|>A3 ünï\ncode (end)<|im_end|>"


def test_bos_from_template_is_not_doubled(tokenizers):
    tok = tokenize_example(chat(), tokenizers["bos"])
    assert tok.ids[0] == 0 and tok.ids[1] == 1


def test_train_on_prompt_trains_everything_but_token_zero(tokenizers):
    tok = tokenize_example(chat(), tokenizers["chatml"], train_on_prompt=True)
    assert tok.mask == [False] + [True] * (len(tok.ids) - 1)


def test_text_rows_train_on_all_tokens_plus_eos(tokenizers):
    tokenizer = tokenizers["chatml"]
    tok = tokenize_example(Example(None, "hi there", "t.jsonl", 1, "text"), tokenizer)
    assert tok.ids == hf_tokenizer(tokenizer).encode("hi there") + [2]
    assert tok.mask == [False] + [True] * (len(tok.ids) - 1)


def test_raw_hf_tokenizer_works_too(tokenizers):
    hf = hf_tokenizer(tokenizers["chatml"])
    assert trained_text(tokenize_example(chat(), hf), hf) == EXPECTED_TRAINED


def test_preview_segments(tokenizers):
    tokenizer = tokenizers["smollm2"]
    segs = preview_segments(chat(), tokenizer)
    assert "".join(t for t, _ in segs) == render(chat(), tokenizer)
    assert [t for t, trained in segs if trained] == ["A1<|im_end|>", "a<|im_end|>",
                                                     "A3 ünï\ncode<|im_end|>"]
    assert all(a[1] != b[1] for a, b in zip(segs, segs[1:]))  # runs alternate
    segs = preview_segments(chat(), tokenizer, train_on_prompt=True)
    assert [s[1] for s in segs] == [False, True]
