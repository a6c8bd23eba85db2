"""The reward model's value head: a linear map hidden -> 1 (no bias, as transformers'
`*ForSequenceClassification.score`) on the backbone's final hidden state of each sequence's last
real token. Its file holds one tensor, `score.weight` (1, hidden), so it maps onto a Hugging Face
sequence-classification head.

Both training (train/reward.py) and scoring (reward/model.py) compute rewards here, so a run's
scores and its training metrics are the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn

from localtune.errors import ModelError, RunError
from localtune.runs.checkpoints import safetensors_problem

HEAD_ATTR = "reward_head"  # where the head sits in the model tree while a reward run trains
WEIGHT = "score.weight"
FORMAT = "localtune-reward-head-1"


def backbone(model: nn.Module) -> nn.Module:
    """The transformer without its vocabulary projection. mlx_lm models keep it as `model.model`,
    and its output is the final hidden state after the final norm (the input of lm_head)."""
    inner = getattr(model, "model", None)
    if not isinstance(inner, nn.Module) or not hasattr(model, "layers"):
        raise ModelError(f"{type(model).__module__}: a reward model needs an mlx_lm language model whose "
                         "transformer is `model.model` (the architectures mlx_lm trains with LoRA)")
    return inner


def hidden_size(model: nn.Module) -> int:
    """The width of the backbone's output: the config's hidden_size, else one token's forward pass."""
    size = getattr(getattr(model, "args", None), "hidden_size", None)
    if isinstance(size, int) and size > 0:
        return size
    return int(backbone(model)(mx.array([[0]])).shape[-1])


class ValueHead(nn.Module):
    """r = w · h, `weight` (1, hidden) float32. nn.Linear without a bias computes the same, but its
    constructor draws an initial weight from MLX's global RNG, and opening a reward model inside a
    training run (GRPO) must not move that run's random stream."""

    def __init__(self, weight: mx.array):
        super().__init__()
        self.weight = weight.astype(mx.float32)

    def __call__(self, x: mx.array) -> mx.array:
        return x @ self.weight.T


def new_head(hidden: int) -> ValueHead:
    """A zero head: every reward starts at 0, so the first loss is exactly log 2 (as DPO's) and the
    first step moves only the head, along the mean difference of chosen and rejected states."""
    return ValueHead(mx.zeros((1, hidden), mx.float32))


def last_token_hidden(model: nn.Module, ids: mx.array, lengths: list[int]) -> mx.array:
    """(N, hidden) float32: the final hidden state of each row's last real token (rows are padded
    on the right, as data.batching pads them)."""
    hidden = backbone(model)(ids)
    last = mx.array([n - 1 for n in lengths], mx.int32)
    return hidden[mx.arange(hidden.shape[0]), last].astype(mx.float32)


def sequence_rewards(model: nn.Module, head: ValueHead, ids: mx.array, lengths: list[int]) -> mx.array:
    """(N,) one scalar reward per row."""
    return head(last_token_hidden(model, ids, lengths)).squeeze(-1)


def head_weights(head: ValueHead) -> dict[str, mx.array]:
    return {WEIGHT: head.weight}


def head_metadata(head: ValueHead) -> dict[str, str]:
    return {"format": FORMAT, "hidden_size": str(head.weight.shape[-1])}


def head_from(weights: dict[str, mx.array], hidden: int | None, where: str | Path) -> ValueHead:
    """A head from its file's tensors; RunError naming `where` when they are not a head of this width."""
    w = weights.get(WEIGHT)
    if w is None or w.ndim != 2 or w.shape[0] != 1 or set(weights) != {WEIGHT}:
        raise RunError(f"{where}: not a reward head (expected one tensor {WEIGHT} of shape (1, hidden); "
                       f"found {sorted(weights)})")
    if hidden is not None and w.shape[1] != hidden:
        raise RunError(f"{where}: the reward head is {w.shape[1]} wide but the model's hidden size is {hidden} "
                       "(was it trained on another base?)")
    return ValueHead(w)


def read_head(path: str | Path, hidden: int | None = None) -> ValueHead:
    """The head saved in `path` (a reward_head.safetensors); RunError naming it when missing or torn."""
    path = Path(path)
    problem = safetensors_problem(path)
    if problem:
        raise RunError(f"{path.parent}: {problem} (is it a reward run? `localtune train reward` makes one)")
    try:
        weights = dict(mx.load(str(path)))
    except Exception as e:  # mlx raises RuntimeError/ValueError on a damaged file
        raise RunError(f"{path}: unreadable reward head ({e})") from None
    return head_from(weights, hidden, path)
