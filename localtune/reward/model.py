"""Score answers with a trained reward run: the public API other modes call (GRPO's
`reward-model:RUN`, the feedback judge, `localtune eval --reward-model`, `localtune reward score`).

    rm = RewardModel.open(run_dir, model=policy, tokenizer=tok, on_event=emit)
    rm.score(prompts, answers) -> list[float]      # prompts: chat message lists; answers: strings

One model in memory: given a caller's model of the same base (the fingerprint of its base weights
equals the run's recorded `base_hash`; adapters do not change it), every `score` swaps the reward
run's LoRA layers into that model, scores with no gradient in eval mode, and puts the caller's own
adapter layers back: the very same module objects, so its weights, their optimizer state, dropout
and on/off flags are untouched. Otherwise (no model, another base) it loads its own copy of the
run's base and says so through a RewardModelOpened event.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from localtune import events
from localtune.data.example import Example
from localtune.data.template import tokenize_example
from localtune.errors import LocaltuneError, RunError
from localtune.lora import ADAPTER_FILE, load_adapter_weights, lora_layers_for, lora_modules, read_adapter_spec
from localtune.reward.head import hidden_size, read_head, sequence_rewards
from localtune.runs import layout, read_run

DEFAULT_BATCH = 16  # sequences per forward pass


class RewardModel:
    """A reward run ready to score. Build it with `RewardModel.open`."""

    def __init__(self, run: Path, source: Path, base: str, model: nn.Module, tokenizer, head,
                 layers: list, shared: bool, max_seq_len: int, batch_size: int):
        self.run = run  # the reward run directory
        self.source = source  # where its weights were read: the run, or its newest checkpoint while training
        self.base = base  # the base model the run was trained on (its record's model_path)
        self.model = model  # the caller's model (shared) or this reward model's own copy
        self.tokenizer = tokenizer
        self.head = head
        self.layers = layers  # shared: the run's LoRA layers, (path, layer), swapped in per call
        self.shared = shared
        self.max_seq_len = max_seq_len
        self.batch_size = batch_size

    @classmethod
    def open(cls, run_dir: str | Path, *, model: nn.Module | None = None, tokenizer=None,
             batch_size: int = DEFAULT_BATCH, on_event=events.ignore) -> "RewardModel":
        """A reward run (made by `localtune train reward`) ready to score. `model`: a model the caller
        already holds (e.g. the GRPO policy); it is used when its base weights are the run's base,
        else this loads its own. `tokenizer`: the caller's (same base: the same tokenizer); loaded
        from the run's base when not given. RunError when `run_dir` is not a usable reward run."""
        run, info, source = _reward_source(Path(run_dir), on_event)
        spec = read_adapter_spec(source)
        weights = dict(mx.load(str(source / ADAPTER_FILE)))
        base = info.model
        if not base:
            raise RunError(f"{run}: its record names no base model; cannot score with it")
        cfg = info.config
        max_seq_len = int(cfg.get("max_seq_len") or 2048)
        shared, why = _can_share(model, info.record.get("base_hash"), base)
        if shared:
            if tokenizer is None:
                from localtune.models import load_tokenizer_only

                tokenizer = load_tokenizer_only(base, on_event=on_event)
            head = read_head(source / layout.REWARD_HEAD_FILE, hidden_size(model))
            with own_layers_out(model):  # built on the base linears, under the caller's adapter
                # An explicit key: building the layers must not move the caller's global RNG.
                layers = lora_layers_for(model, spec, key=mx.random.key(0))
            load_adapter_weights(_LayerTree(layers), source / ADAPTER_FILE, weights=weights)
            message = f"reward model {run.name}: scoring inside the loaded model (same base; adapter swapped in per call)"
        else:
            from localtune.lora import load_adapter
            from localtune.models import load_model, resolve_model

            path = resolve_model(base, on_event=on_event)
            model, own_tokenizer = load_model(path)
            tokenizer = own_tokenizer
            load_adapter(model, source)
            model.eval()
            head = read_head(source / layout.REWARD_HEAD_FILE, hidden_size(model))
            layers = []
            message = f"reward model {run.name}: loaded its own copy of {path} ({why})"
        on_event(events.RewardModelOpened(str(run), str(base), shared, message, source=str(source)).to_dict())
        return cls(run, source, str(base), model, tokenizer, head, layers, shared, max_seq_len, batch_size)

    # -- scoring ------------------------------------------------------------------------------
    def score(self, prompts: Sequence[list[dict]], answers: Sequence[str]) -> list[float]:
        """One reward per (prompt, answer): the prompt's chat messages (system?, user, ...) with the
        answer as the assistant's turn, rendered as training rendered its pairs. Batched; the order
        of the inputs is kept."""
        if len(prompts) != len(answers):
            raise LocaltuneError(f"reward model: {len(prompts)} prompts but {len(answers)} answers")
        rows = [self.tokenize(p, a, i) for i, (p, a) in enumerate(zip(prompts, answers))]
        out = [0.0] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # little padding
        with self._scoring():
            for start in range(0, len(order), self.batch_size):
                idx = order[start: start + self.batch_size]
                rewards = self._forward([rows[i] for i in idx])
                for i, r in zip(idx, rewards):
                    out[i] = r
        return out

    def tokenize(self, prompt: list[dict], answer: str, index: int = 0) -> list[int]:
        if not isinstance(prompt, list) or not all(isinstance(m, dict) for m in prompt):
            raise LocaltuneError(f"reward model: prompt {index} must be a list of chat messages")
        if not isinstance(answer, str):
            raise LocaltuneError(f"reward model: answer {index} must be a string")
        messages = list(prompt) + [{"role": "assistant", "content": answer}]
        ids = tokenize_example(Example(messages, None, "<score>", index + 1, "messages"), self.tokenizer).ids
        return ids[: self.max_seq_len]  # as training cut its pairs (fit_pairs)

    def _forward(self, rows: list[list[int]]) -> list[float]:
        width = max(len(r) for r in rows)
        ids = mx.array([r + [0] * (width - len(r)) for r in rows], mx.int32)
        rewards = mx.stop_gradient(sequence_rewards(self.model, self.head, ids, [len(r) for r in rows]))
        mx.eval(rewards)  # inside the swap: the caller's layers are back right after
        return [float(v) for v in rewards.tolist()]

    @contextmanager
    def _scoring(self):
        from localtune.lora import eval_mode

        if not self.shared:
            with eval_mode(self.model):
                yield
            return
        with swapped_in(self.model, self.layers), eval_mode(self.model):
            yield

    def scorer(self, name: str = "reward") -> "RewardScorer":
        """This reward model as an eval Scorer (localtune/eval/runner.py)."""
        return RewardScorer(self, name)


class RewardScorer:
    """The eval `Scorer` protocol over a RewardModel: each answer's reward for its prompt row."""

    def __init__(self, reward_model: RewardModel, name: str = "reward"):
        self.reward_model, self.name = reward_model, name

    def score(self, answers) -> list[float]:
        return self.reward_model.score([a.row.messages for a in answers], [a.completion.text for a in answers])


# --- the run --------------------------------------------------------------------------------------

def _reward_source(run: Path, on_event):
    """(run, its RunInfo, the directory to read the adapter and head from). A finished run: the run
    itself. Any other: its newest whole checkpoint (a run still training, or one killed between
    writing its adapter and its head, has a consistent pair only there), else the run itself."""
    info = read_run(run)
    if info.problem or not info.record:
        raise RunError(f"{run}: not a run directory ({info.problem or 'no record'})")
    if info.kind != "reward":
        raise RunError(f"{run}: a {info.kind or 'unknown'} run, not a reward model "
                       "(train one with `localtune train reward`)")
    source = run
    if info.status != "finished" and info.checkpoint is not None:
        source = info.checkpoint
    for note in info.reader_notes:
        on_event(events.Notice(note).to_dict())
    for needed in (ADAPTER_FILE, layout.REWARD_HEAD_FILE):
        if not (source / needed).is_file():
            raise RunError(f"{source}: no {needed} yet (the run saves it at its first checkpoint)")
    return run, info, source


def _can_share(model, base_hash: str | None, base: str) -> tuple[bool, str]:
    """Whether the caller's model is the run's base (by the fingerprint of its base weights)."""
    if model is None:
        return False, "no model given to share"
    if not base_hash:
        return False, "the run records no base fingerprint to check the given model against"
    from localtune.train.provenance import base_fingerprint

    if base_fingerprint(model) != base_hash:
        return False, f"the given model is not the run's base {base}"
    return True, ""


class _LayerTree(nn.Module):
    """The swapped-in layers as one module tree under their model paths, so adapter files load into
    them with lora.load_adapter_weights (names and shapes checked) before they enter any model."""

    def __init__(self, layers: list):
        super().__init__()
        tree = tree_unflatten(layers)
        for k, v in tree.items():
            setattr(self, k, v)


@contextmanager
def own_layers_out(model: nn.Module):
    """Inside the block the model has no adapter layers (each replaced by the linear it wraps); on
    exit its own are back: the same objects, so nothing of them changed."""
    own = lora_modules(model)
    if own:
        model.update_modules(tree_unflatten([(p, m.linear) for p, m in own]))
    try:
        yield model
    finally:
        if own:
            model.update_modules(tree_unflatten(own))


@contextmanager
def swapped_in(model: nn.Module, layers: list):
    """Inside the block, `model` runs with `layers` ((path, LoRA layer) wrapping its base linears)
    in place of its own adapter layers; on exit its own layers are back."""
    with own_layers_out(model):
        _check_wraps(model, layers)
        model.update_modules(tree_unflatten(layers))
        try:
            yield model
        finally:
            model.update_modules(tree_unflatten([(p, layer.linear) for p, layer in layers]))


def _check_wraps(model: nn.Module, layers: list) -> None:
    """Each reward layer must wrap the very linear the model has at its path (a caller that fused or
    replaced its linears since the open would otherwise score with stale base weights)."""
    current = dict(model.named_modules())
    for path, layer in layers:
        if current.get(path) is not layer.linear:
            raise RunError(f"reward model: the shared model's layer {path} changed since the reward model "
                           "was opened (fused or reloaded); open it again")
