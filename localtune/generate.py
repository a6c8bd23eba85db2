"""Decoding for everything that makes a model answer: chat, eval, feedback sampling, RL rollouts.

One `Sampling` (temperature, top-p/k, min-p, repetition penalty, max tokens, seed) drives both paths:
- `generate_batch`: many prompts decoded together with a KV cache (mlx_lm's `BatchGenerator`,
  continuous batching: a finished answer's slot is refilled by the next prompt), `n` answers each.
- `stream_answer`: one prompt, piece by piece, for chat (mlx_lm's `stream_generate`).

Both wrap mlx_lm rather than re-implement it. Two things are ours, with reasons:
- The random draw uses an explicit key chain started from `Sampling.seed` (mlx_lm's sampler draws
  from MLX's global RNG): generation never moves the caller's random stream (a training loop's), and
  the same call gives the same answers. mlx_lm's filters (top-p, min-p) are used as they are; with
  top-k set, `topk_sampling` keeps the same tokens without sorting the whole vocabulary each step.
- The model is put in eval mode while decoding (LoRA dropout off), and each module's own mode is
  put back after (`lora.eval_mode`).

Reproducible draws: the same model weights, prompts, `n`, `batch_size` and `Sampling` (seed included)
give the same completions. The rows of a batch share one random stream, so a different batch_size or
prompt order draws differently. A caller that must resume exactly (GRPO) passes a seed derived from
its own seed and step, e.g. `dataclasses.replace(sampling, seed=step_seed(cfg.seed, step))`.
Adapter on/off is the caller's: `localtune.lora.set_adapter_enabled`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterator, Sequence

import localtune  # noqa: F401  (OpenBLAS before mlx)
import mlx.core as mx

from localtune.errors import LocaltuneError
from localtune.lora import eval_mode

GENERATION_CONFIG = "generation_config.json"
DEFAULT_BATCH_SIZE = 32  # rows decoded together; more rarely helps on CPU (bench/eval_batching.py)


@dataclass
class Sampling:
    """How to pick each next token. temperature 0 = greedy (reproducible answers for comparisons);
    top_p 1, top_k 0, min_p 0 and repetition_penalty 1 switch that filter off."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    repetition_context_size: int = 20
    max_tokens: int = 256
    seed: int = 0

    def validate(self) -> "Sampling":
        """Self, or LocaltuneError naming the bad setting (flag names, since users type those)."""
        def bad(flag, value, want):
            raise LocaltuneError(f"--{flag} {value!r}: {want}")

        def number(flag, value):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                bad(flag, value, "must be a finite number")
            return value

        def integer(flag, value):
            if isinstance(value, bool) or not isinstance(value, int):
                bad(flag, value, "must be a whole number")
            return value

        if integer("max-tokens", self.max_tokens) < 1:
            bad("max-tokens", self.max_tokens, "must be at least 1")
        if number("temperature", self.temperature) < 0:
            bad("temperature", self.temperature, "must be >= 0 (0 = greedy)")
        if not 0 < number("top-p", self.top_p) <= 1:
            bad("top-p", self.top_p, "must be in (0, 1] (1 = off)")
        if integer("top-k", self.top_k) < 0:
            bad("top-k", self.top_k, "must be >= 0 (0 = off)")
        if not 0 <= number("min-p", self.min_p) <= 1:
            bad("min-p", self.min_p, "must be in [0, 1] (0 = off)")
        if number("repetition-penalty", self.repetition_penalty) <= 0:
            bad("repetition-penalty", self.repetition_penalty, "must be > 0 (1 = off)")
        if integer("repetition-context-size", self.repetition_context_size) < 1:
            bad("repetition-context-size", self.repetition_context_size, "must be at least 1")
        if not 0 <= integer("seed", self.seed) < 2**63:
            bad("seed", self.seed, "must be in [0, 2**63)")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_generation_config(cls, model_dir: str | Path | None, **overrides) -> "Sampling":
        """Defaults from the model's generation_config.json where it has them, then `overrides`
        (None values ignored: unset CLI flags). Hugging Face's meaning: temperature, top_p, top_k and
        min_p apply only with "do_sample": true (else decoding is greedy); repetition_penalty and
        max_new_tokens apply either way. Not validated: call validate()."""
        values = {}
        path = Path(model_dir) / GENERATION_CONFIG if model_dir else None
        if path is not None and path.is_file():
            try:
                cfg = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise LocaltuneError(f"{path}: unreadable generation config: {e}") from None
            if isinstance(cfg, dict):
                values = _from_hf(cfg)
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown sampling settings: {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _from_hf(cfg: dict) -> dict:
    out = {}
    if cfg.get("do_sample") is True:
        out["temperature"] = cfg.get("temperature", 1.0)  # HF's default temperature when sampling
        for key in ("top_p", "top_k", "min_p"):
            if cfg.get(key) is not None:
                out[key] = cfg[key]
    if cfg.get("repetition_penalty") is not None:
        out["repetition_penalty"] = cfg["repetition_penalty"]
    if cfg.get("max_new_tokens") is not None:
        out["max_tokens"] = cfg["max_new_tokens"]
    # Integers written as floats (top_k: 50.0) are still integers.
    for key in ("top_k", "max_tokens"):
        if isinstance(out.get(key), float) and out[key].is_integer():
            out[key] = int(out[key])
    return out


@dataclass
class Completion:
    """One answer. text excludes the stop token; token_ids are the answer's tokens (no stop token);
    finish_reason is "stop" (an end-of-turn token) or "length" (max_tokens reached).
    prompt_index: which prompt of the call; sample: which of its n answers. logprobs (with
    return_logprobs) are the sampling distribution's log-probabilities of the chosen tokens. stop_ids:
    the trimmed end-of-turn tokens (online RL trains on the decision to end, so it needs them)."""

    text: str
    token_ids: list[int]
    finish_reason: str
    prompt_tokens: int
    prompt_index: int = 0
    sample: int = 0
    logprobs: list[float] | None = None
    stop_ids: list[int] = field(default_factory=list)  # the end-of-turn token(s) that ended it ([] if cut off)

    @property
    def ended(self) -> bool:
        return self.finish_reason == "stop"


def make_sampler(sampling: Sampling) -> Callable[[mx.array], mx.array]:
    """(B, V) log-probabilities -> (B,) tokens. mlx_lm's filters, our own keyed draw (module doc);
    with top-k set, the same filters over the k best tokens only (topk_sampling)."""
    from mlx_lm.sample_utils import apply_min_p, apply_top_p, greedy_sampler

    from localtune.topk_sampling import draw_top_k

    if sampling.greedy:
        return greedy_sampler
    filters = []
    if sampling.top_p < 1:
        filters.append(lambda x: apply_top_p(x, sampling.top_p))
    if sampling.min_p > 0:
        filters.append(lambda x: apply_min_p(x, sampling.min_p))
    key = [mx.random.key(sampling.seed)]
    inv_temp = 1.0 / sampling.temperature

    def sample(logprobs: mx.array) -> mx.array:
        key[0], draw = mx.random.split(key[0])
        if 0 < sampling.top_k < logprobs.shape[-1]:
            # The same kept tokens as mlx_lm's filters in a fraction of the time (topk_sampling).
            return draw_top_k(logprobs, sampling.top_k, sampling.top_p, sampling.min_p, inv_temp, draw)
        # top_k >= the vocabulary keeps everything (mlx_lm refuses it instead).
        for f in filters:
            logprobs = f(logprobs)
        return mx.random.categorical(logprobs * inv_temp, key=draw)

    return sample


def make_logits_processors(sampling: Sampling) -> list:
    from mlx_lm.sample_utils import make_logits_processors as mlx_processors

    if sampling.repetition_penalty == 1:
        return []
    return mlx_processors(repetition_penalty=sampling.repetition_penalty,
                          repetition_context_size=sampling.repetition_context_size)


def encode_prompt(tokenizer, prompt) -> list[int]:
    """Token ids of a prompt: a chat message list rendered with the chat template training uses
    (ending with the assistant header), a string as one user message, or token ids as they are."""
    from localtune.data.template import render_messages

    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(t, int) and not isinstance(t, bool)
                                                            for t in prompt):
        return list(prompt)
    if not isinstance(prompt, (list, tuple)) or not prompt or not all(isinstance(m, dict) for m in prompt):
        raise LocaltuneError(f"a prompt must be a non-empty chat message list or token-id list, "
                             f"got {type(prompt).__name__}")
    try:
        text = render_messages(list(prompt), tokenizer, add_generation_prompt=True)
    except Exception as e:  # jinja errors, raise_exception() in templates
        raise LocaltuneError(f"the chat template failed on a prompt: {e}") from e
    return list(tokenizer.encode(text, add_special_tokens=False))


def stop_sequences(tokenizer) -> list[list[int]]:
    """What ends an answer: each EOS id, and the end-of-turn text of localtune's fallback template
    (models without a chat template are tuned with it; the text may be several tokens)."""
    from localtune.data.template import FALLBACK_END_MARKER, has_chat_template

    seqs = [[t] for t in sorted(tokenizer.eos_token_ids)]
    if not has_chat_template(tokenizer):
        marker = list(tokenizer.encode(FALLBACK_END_MARKER, add_special_tokens=False))
        if marker and marker not in seqs:
            seqs.append(marker)
    return seqs


def _trim_stop(tokens: list[int], stops: list[list[int]]) -> list[int]:
    for seq in sorted(stops, key=len, reverse=True):
        if len(tokens) >= len(seq) and tokens[-len(seq):] == seq:
            return tokens[:-len(seq)]
    return tokens


def generate_batch(model, tokenizer, prompts: Sequence, sampling: Sampling | None = None, *, n: int = 1,
                   batch_size: int | None = None, return_logprobs: bool = False,
                   on_progress: Callable[[int, int], None] | None = None,
                   prompt_cache: Callable[[int], list] | None = None) -> list[Completion]:
    """Answer every prompt `n` times, decoding up to `batch_size` answers together.

    Returns len(prompts) * n completions, prompt-major: completion i * n + j is prompt i's j-th.
    The n answers of a prompt share its prompt's tokens but are drawn independently (greedy makes
    them equal). on_progress(done, total) is called as answers finish. prompt_cache(i): a fresh
    cache list for an answer to prompt i, instead of the model's own (state that must follow the
    row through the batch, e.g. lora_routing.RoutedModel's adapter index).
    """
    from mlx_lm.generate import BatchGenerator

    sampling = (sampling or Sampling()).validate()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise LocaltuneError(f"n must be a whole number >= 1, got {n!r}")
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LocaltuneError(f"batch size must be a whole number >= 1, got {batch_size!r}")
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    if not encoded:
        return []
    rows = [(i, j) for i in range(len(encoded)) for j in range(n)]
    stops = stop_sequences(tokenizer)
    tokens: dict[int, list[int]] = {}
    logprobs: dict[int, list[float]] = {}
    finish: dict[int, str] = {}
    with eval_mode(model):
        gen = BatchGenerator(model, max_tokens=sampling.max_tokens, stop_tokens=stops,
                             sampler=make_sampler(sampling), logits_processors=make_logits_processors(sampling),
                             completion_batch_size=batch_size, prefill_batch_size=min(batch_size, 8))
        try:
            uids = gen.insert([encoded[i] for i, _ in rows], [sampling.max_tokens] * len(rows),
                              caches=[prompt_cache(i) for i, _ in rows] if prompt_cache else None)
            for uid in uids:
                tokens[uid], logprobs[uid] = [], []
            while responses := gen.next_generated():
                for r in responses:
                    tokens[r.uid].append(r.token)
                    if return_logprobs:
                        logprobs[r.uid].append(r.logprobs[r.token].item())
                    if r.finish_reason is not None:
                        finish[r.uid] = r.finish_reason
                        if on_progress:
                            on_progress(len(finish), len(rows))
        finally:
            gen.close()
    out = []
    for uid, (i, j) in zip(uids, rows):
        ids = raw = tokens[uid]
        if finish[uid] == "stop":
            ids = _trim_stop(raw, stops)
        out.append(Completion(tokenizer.decode(ids), ids, finish[uid], len(encoded[i]), i, j,
                              logprobs[uid][:len(ids)] if return_logprobs else None, raw[len(ids):]))
    return out


@dataclass
class StreamStats:
    """Filled in while stream_answer runs (the chat UI shows it); tokens = the answer's tokens."""

    text: str = ""
    tokens: int = 0
    tokens_per_sec: float = 0.0
    finish_reason: str | None = None


def stream_answer(model, tokenizer, prompt, sampling: Sampling | None = None,
                  stats: StreamStats | None = None) -> Iterator[str]:
    """One prompt answered piece by piece (mlx_lm's single-sequence decoder, the same sampler and
    processors as generate_batch). A caller stops early by not asking for more."""
    from mlx_lm.generate import stream_generate

    sampling = (sampling or Sampling()).validate()
    stats = stats if stats is not None else StreamStats()
    ids = encode_prompt(tokenizer, prompt)
    marker = _fallback_marker(tokenizer)
    pending = ""  # text held back while it could be the start of a several-token end marker
    with eval_mode(model):
        for r in stream_generate(model, tokenizer, ids, max_tokens=sampling.max_tokens,
                                 sampler=make_sampler(sampling),
                                 logits_processors=make_logits_processors(sampling)):
            # mlx_lm counts the end-of-turn token; the answer's own tokens are one fewer then.
            stats.tokens = r.generation_tokens - (r.finish_reason == "stop")
            stats.tokens_per_sec, stats.finish_reason = r.generation_tps, r.finish_reason
            pending += r.text
            if marker and marker in pending:
                pending = pending[: pending.index(marker)]
                stats.finish_reason = "stop"
                break
            keep = _marker_prefix(pending, marker)
            if len(pending) > keep:
                piece, pending = pending[: len(pending) - keep], pending[len(pending) - keep:]
                stats.text += piece
                yield piece
    if pending:
        stats.text += pending
        yield pending


def _marker_prefix(text: str, marker: str | None) -> int:
    """Length of the longest end of `text` that begins `marker`."""
    if not marker:
        return 0
    for k in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-k:]):
            return k
    return 0


def _fallback_marker(tokenizer) -> str | None:
    from localtune.data.template import FALLBACK_END_MARKER, has_chat_template

    return None if has_chat_template(tokenizer) else FALLBACK_END_MARKER
