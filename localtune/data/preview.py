"""What the model is trained on, as text: runs of decoded tokens flagged trained or not."""

from __future__ import annotations

from localtune.data.example import Example
from localtune.data.template import hf_tokenizer, tokenize_example


def segments_from_tokens(ids: list[int], mask: list[bool], tokenizer) -> list[tuple[str, bool]]:
    """Consecutive (text, trained) runs. Each run is decoded as the difference between decoding
    the prefixes before and after it, so tokenizers whose pieces depend on their neighbours
    (SentencePiece leading spaces, multi-byte characters) still read naturally."""
    hf = hf_tokenizer(tokenizer)

    def decode(part):
        return hf.decode(part, skip_special_tokens=False)

    segments: list[tuple[str, bool]] = []
    done, start = "", 0
    for i in range(1, len(ids) + 1):
        if i < len(ids) and mask[i] == mask[start]:
            continue
        upto = decode(ids[:i])
        text = upto[len(done):] if upto.startswith(done) else decode(ids[start:i])
        if segments and segments[-1][1] == mask[start]:
            segments[-1] = (segments[-1][0] + text, mask[start])
        elif text:
            segments.append((text, mask[start]))
        done, start = upto, i
    return segments


def preview_segments(
    example: Example, tokenizer, *, train_on_prompt: bool = False
) -> list[tuple[str, bool]]:
    tok = tokenize_example(example, tokenizer, train_on_prompt=train_on_prompt)
    return segments_from_tokens(tok.ids, tok.mask, tokenizer)
