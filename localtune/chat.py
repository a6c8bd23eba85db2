"""Chat with a model and, optionally, a run's adapter: streaming, multi-turn history, adapter on/off.

One model in memory serves both "base" and "tuned": the adapter is switched off for the base.
Generation is a plain generator of text pieces; a caller stops it by not asking for more. Decoding
and its settings (`Sampling`) are localtune.generate's, shared with eval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import localtune  # noqa: F401

from localtune.generate import Sampling, StreamStats, stream_answer
from localtune.lora import adapter_layers, load_adapter, set_adapter_enabled
from localtune.models.identity import warn_if_other_base

__all__ = ["ChatSession", "Reply", "Sampling"]

Reply = StreamStats  # text, tokens, tokens_per_sec, finish_reason of the last answer


@dataclass
class ChatSession:
    model: object
    tokenizer: object
    system: str | None = None
    history: list[dict] = field(default_factory=list)
    adapter_path: str | None = None
    model_path: str | None = None

    @classmethod
    def open(cls, model_spec: str | None, adapter: str | Path | None = None, system: str | None = None,
             on_event=None) -> "ChatSession":
        from localtune.models import load_model, resolve_model

        path = resolve_model(model_spec, on_event=on_event)
        model, tokenizer = load_model(path)
        if adapter:
            from localtune.runs import tell_readers

            tell_readers(adapter, on_event or (lambda e: None))  # e.g. a run still training
            load_adapter(model, adapter)
            warn_if_other_base(adapter, path, on_event)
        return cls(model, tokenizer, system, adapter_path=str(adapter) if adapter else None, model_path=str(path))

    def default_sampling(self, **overrides) -> Sampling:
        """The model's generation_config.json defaults with `overrides` (None = unset), validated."""
        return Sampling.from_generation_config(self.model_path, **overrides).validate()

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
        yield from stream_answer(self.model, self.tokenizer, messages, sampling, reply)
