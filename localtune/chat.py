"""Chat with a model and, optionally, a run's adapter: streaming, multi-turn history, adapter on/off.

One model in memory serves both "base" and "tuned": the adapter is switched off for the base.
Generation is a plain generator of text pieces; a caller stops it by not asking for more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import localtune  # noqa: F401
import mlx.core as mx
from mlx_lm.generate import stream_generate
from mlx_lm.sample_utils import make_sampler

from localtune.lora import adapter_layers, load_adapter, set_adapter_enabled
from localtune.models.identity import warn_if_other_base


@dataclass
class Sampling:
    temperature: float = 0.0  # 0 = greedy (reproducible answers for comparisons)
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0


@dataclass
class Reply:
    text: str = ""
    tokens: int = 0
    tokens_per_sec: float = 0.0
    finish_reason: str | None = None


def prompt_text(tokenizer, messages: list[dict]) -> str:
    """The chat-templated prompt ending with the assistant header (the same rendering as training)."""
    from localtune.data.template import render_messages

    return render_messages(messages, tokenizer, add_generation_prompt=True)


@dataclass
class ChatSession:
    model: object
    tokenizer: object
    system: str | None = None
    history: list[dict] = field(default_factory=list)
    adapter_path: str | None = None

    @classmethod
    def open(cls, model_spec: str | None, adapter: str | Path | None = None, system: str | None = None,
             on_event=None) -> "ChatSession":
        from localtune.models import load_model, resolve_model

        path = resolve_model(model_spec, on_event=on_event)
        model, tokenizer = load_model(path)
        if adapter:
            load_adapter(model, adapter)
            warn_if_other_base(adapter, path, on_event)
        return cls(model, tokenizer, system, adapter_path=str(adapter) if adapter else None)

    @property
    def has_adapter(self) -> bool:
        return bool(adapter_layers(self.model))

    def set_adapter(self, enabled: bool) -> None:
        set_adapter_enabled(self.model, enabled)

    def reset(self) -> None:
        self.history.clear()

    def messages(self, user: str) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history + [{"role": "user", "content": user}]

    def stream(self, user: str, sampling: Sampling = Sampling(), *, remember: bool = True) -> Iterator[str]:
        """Yield the answer piece by piece; the finished answer joins the history."""
        reply = Reply()
        for piece in self._generate(self.messages(user), sampling, reply):
            yield piece
        if remember:
            self.history += [{"role": "user", "content": user}, {"role": "assistant", "content": reply.text}]
        self.last = reply

    def ask(self, user: str, sampling: Sampling = Sampling(), *, remember: bool = True) -> str:
        return "".join(self.stream(user, sampling, remember=remember))

    def compare(self, user: str, sampling: Sampling = Sampling()) -> dict[str, str]:
        """The same prompt answered with the adapter off ("base") and on ("tuned"); history untouched."""
        answers = {}
        for name, enabled in (("base", False), ("tuned", True)):
            self.set_adapter(enabled)
            answers[name] = self.ask(user, sampling, remember=False)
        self.set_adapter(True)
        return answers

    def _generate(self, messages: list[dict], sampling: Sampling, reply: Reply) -> Iterator[str]:
        prompt = prompt_text(self.tokenizer, messages)
        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        mx.random.seed(sampling.seed)
        sampler = make_sampler(temp=sampling.temperature, top_p=sampling.top_p if sampling.top_p < 1 else 0.0)
        for r in stream_generate(self.model, self.tokenizer, ids, max_tokens=sampling.max_tokens, sampler=sampler):
            reply.tokens = r.generation_tokens
            reply.tokens_per_sec = r.generation_tps
            reply.finish_reason = r.finish_reason
            if r.text:
                reply.text += r.text
                yield r.text
