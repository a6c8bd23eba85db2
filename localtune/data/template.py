"""Render an Example with the model's chat template and tokenize it with a loss mask.

Mask convention: mask[i] is True when token i is a training target (the loss is on predicting
ids[i] from ids[:i]); mask[0] is always False because the first token has nothing to be predicted
from. For chat rows the mask covers every assistant turn's content plus the end-of-turn marker that
follows it (`<|im_end|>` in ChatML, `<|eot_id|>` in Llama 3), so the model learns to stop; it never
covers the assistant header (`<|im_start|>assistant\\n`), system or user turns, nor the whitespace
the template writes after the end marker (the model stops at the marker, so it never predicts that
newline). Text rows are trained on every token, with EOS appended.
"""

from __future__ import annotations

from dataclasses import dataclass

from localtune.data.example import Example
from localtune.errors import DataError

# Used when the tokenizer has no chat template (base models). ChatML because it is the most widely
# used chat format (Qwen, SmolLM2, many fine-tunes), its markers are plain text that any tokenizer
# can encode (as special tokens where the vocabulary has them, as ordinary pieces where not), and
# it needs no BOS/EOS variables that differ between model families. Saved with an adapter, the same
# template can drive inference; generation then stops on the text "<|im_end|>".
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
FALLBACK_END_MARKER = "<|im_end|>"
# Stands in for an assistant message's content to find where the template puts the content
# (everything before it is prefix + assistant header, whatever the template looks like).
_SENTINEL = "LOCALTUNE7f3eSENTINELc41a"


@dataclass(frozen=True)
class TokenizedExample:
    ids: list[int]
    mask: list[bool]
    source: str
    line: int


def hf_tokenizer(tokenizer):
    """The Hugging Face tokenizer behind an mlx_lm TokenizerWrapper (or the argument itself).
    The wrapper forwards attributes but not calls, and we need __call__ for offsets."""
    if type(tokenizer).__name__ == "TokenizerWrapper":
        return tokenizer._tokenizer
    return tokenizer


def has_chat_template(tokenizer) -> bool:
    flag = getattr(tokenizer, "has_chat_template", None)  # the wrapper also knows custom renderers
    if isinstance(flag, bool):
        return flag
    return getattr(hf_tokenizer(tokenizer), "chat_template", None) is not None


def render_messages(messages: list[dict], tokenizer, *, add_generation_prompt: bool = False) -> str:
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    return hf_tokenizer(tokenizer).apply_chat_template(
        messages, chat_template=FALLBACK_CHAT_TEMPLATE, tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def render(example: Example, tokenizer) -> str:
    """The exact text the model trains on (text rows: the text itself)."""
    if example.messages is None:
        return example.text
    try:
        return render_messages(example.messages, tokenizer)
    except Exception as e:  # jinja errors, raise_exception() in templates
        raise DataError(f"{example.source}:{example.line}: the chat template failed: {e}") from e


def _end_markers(tokenizer, after_sentinel: str | None) -> list[str]:
    """What may close an assistant turn: what the template wrote after the sentinel, else EOS."""
    found = [after_sentinel.rstrip()] if after_sentinel and after_sentinel.strip() else []
    eos = getattr(hf_tokenizer(tokenizer), "eos_token", None)
    return found + ([eos] if isinstance(eos, str) and eos else []) + [FALLBACK_END_MARKER]


def _turn_span(messages, i, tokenizer, full, cursor):
    """Character span [start, end) of assistant message i in `full`.

    Start: render the conversation up to i with a sentinel as message i's content; the text
    before the sentinel (prefix turns + assistant header, incl. any injected system prompt) must be
    a prefix of the full render. End: the render up to and including message i, without trailing
    whitespace, must also be a prefix. Templates that render history differently break these
    checks; then fall back to finding the content string itself (after `cursor`)."""
    content = messages[i]["content"]
    after = None
    lo = cursor
    try:
        probe = render_messages(messages[:i] + [{"role": "assistant", "content": _SENTINEL}],
                                tokenizer)
        cut = probe.find(_SENTINEL)
        after = probe[cut + len(_SENTINEL):] if cut >= 0 else None
        if cut >= cursor and full.startswith(probe[:cut]):
            lo = cut  # the header is right; only the end needs the fallback
            upto = render_messages(messages[: i + 1], tokenizer).rstrip()
            if full.startswith(upto) and content.strip() in full[cut: len(upto)]:
                return cut, len(upto)
    except Exception:
        pass
    for needle in (content, content.strip()):
        start = full.find(needle, lo)
        if start >= 0:
            end = start + len(needle)
            for marker in _end_markers(tokenizer, after):
                if full.startswith(marker, end):
                    end += len(marker)
                    break
            return start, end
    return None


def assistant_spans(messages: list[dict], tokenizer, full: str) -> list[tuple[int, int]]:
    spans, cursor = [], 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        span = _turn_span(messages, i, tokenizer, full, cursor)
        if span is None:
            raise DataError(f"cannot find assistant turn {len(spans) + 1} in the rendered chat "
                            "template (the template changes the content)")
        spans.append(span)
        cursor = span[1]
    return spans


def encode_with_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of `text` (special tokens written as text become their ids; no BOS is added,
    chat templates write their own) and each token's character span."""
    hf = hf_tokenizer(tokenizer)
    enc = hf(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def _encode_pieces(tokenizer, text: str, cuts: list[int]):
    """Slow tokenizers have no offsets: encode the text piece by piece between span boundaries
    (may tokenize boundaries slightly differently from one pass; only used as a fallback)."""
    hf = hf_tokenizer(tokenizer)
    ids, offsets = [], []
    bounds = sorted({0, len(text), *cuts})
    for a, b in zip(bounds, bounds[1:]):
        piece = hf.encode(text[a:b], add_special_tokens=False)
        ids += piece
        offsets += [(a, b)] * len(piece)
    return ids, offsets


def tokenize_example(
    example: Example, tokenizer, *, train_on_prompt: bool = False
) -> TokenizedExample:
    """ids and loss mask for one example (see the module docstring for the mask convention).
    train_on_prompt=True trains on every token of the rendered chat (except token 0)."""
    hf = hf_tokenizer(tokenizer)
    if example.messages is None:
        ids = list(hf.encode(example.text))  # BOS as the tokenizer adds it for plain text
        eos = getattr(hf, "eos_token_id", None)
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        mask = [True] * len(ids)
    else:
        full = render(example, tokenizer)
        try:
            spans = [] if train_on_prompt else assistant_spans(example.messages, tokenizer, full)
        except DataError as e:
            raise DataError(f"{example.source}:{example.line}: {e}") from None
        if getattr(hf, "is_fast", False):
            ids, offsets = encode_with_offsets(tokenizer, full)
        else:
            ids, offsets = _encode_pieces(tokenizer, full, [c for s in spans for c in s])
        if train_on_prompt:
            mask = [True] * len(ids)
        else:
            # Whole tokens only: a token straddling a span edge (header + content merged) is not
            # trained, so no header text is ever a target.
            mask = [any(a <= s and e <= b and e > s for a, b in spans) for s, e in offsets]
    if mask:
        mask[0] = False
    return TokenizedExample(ids, mask, example.source, example.line)
