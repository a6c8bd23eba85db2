"""Several LoRA adapters (and the base model) answering in ONE batch from one loaded model: each row
of the batch has its own adapter. For side-by-side evaluation (`eval.compare(..., together=True)`).

Why: judging the base and N adapters one after another decodes N+1 times, and each pass ends in a
tail where a few long (often looping) answers run on in a nearly empty batch. Decoded together, the
continuous batch stays full until the very end, so the tail is paid once.

How:
- Every adapted linear is replaced by a `RoutedLoRALinear` that holds all adapters' A and B side by
  side (zeros for the base and for an adapter without a layer there; smaller ranks padded with
  zeros, which add exact zeros), and each row keeps its own adapter's part: y = W x + s_k B_k A_k x.
- A row's adapter index rides in its KV cache: one extra mlx_lm `ArraysCache` entry next to the
  layers' caches, which mlx_lm's BatchGenerator merges, filters, extends and splits together with
  the row's other caches. So the index follows the row through continuous batching without touching
  mlx_lm's scheduler. `RoutedModel` takes that entry off and hands the indices to the layers before
  each forward.
Inference only (no dropout, no gradients). DoRA adapters are not routed (their row norm needs the
whole adapted weight): `routable` says so and callers decode them one after another.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import localtune  # noqa: F401  (OpenBLAS before mlx)
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from localtune.lora import detach_lora, load_adapter, lora_modules, read_adapter_spec


@dataclass
class _Routing:
    """The adapter index of each row of the batch now being computed; set by RoutedModel."""

    ids: mx.array | None = None


class RoutedLoRALinear(nn.Module):
    """A linear with K adapters side by side; row b of the input uses adapter routing.ids[b] (an
    adapter of zeros is the base).

    The adapters' A are concatenated along the rank axis (in, K*r) and their B likewise (K*r, out):
    x A_all gives every adapter's low-rank activations at the cost of a rank-K*r LoRA, a per-row
    mask keeps the row's own r of them (the others become exact zeros), and B_all maps them out.
    Cheaper than gathering a (B, in, r) and a (B, r, out) matrix per row and layer at every step."""

    def __init__(self, linear: nn.Module, cat_a: mx.array, cat_b: mx.array, scales: mx.array, rank: int,
                 routing: _Routing):
        super().__init__()
        self.linear = linear
        self.cat_a = cat_a  # (in, K * rank)
        self.cat_b = cat_b  # (K * rank, out)
        self.scales = scales  # (K,)
        self.rank = rank
        self._routing = routing

    def __call__(self, x):
        y = self.linear(x)
        ids = self._routing.ids
        owner = mx.arange(self.cat_a.shape[1]) // self.rank  # which adapter each column belongs to
        keep = (owner[None, :] == ids[:, None]).astype(x.dtype)[:, None, :]  # (B, 1, K * rank)
        z = ((x @ self.cat_a) * keep) @ self.cat_b
        # scaled after the products, as LoRALinear does
        return y + (self.scales[ids][:, None, None] * z).astype(x.dtype)


class RoutedModel(nn.Module):
    """The model as mlx_lm's generators call it, `model(inputs, cache=...)`, where the last cache
    entry holds each row's adapter index (`prompt_cache(k)` makes a row's caches)."""

    def __init__(self, model: nn.Module, routing: _Routing):
        super().__init__()
        self.model = model
        self._routing = routing

    def __call__(self, inputs, cache=None):
        *layer_caches, route = cache
        self._routing.ids = route[0]
        return self.model(inputs, cache=layer_caches)

    def prompt_cache(self, adapter_index: int) -> list:
        """A fresh cache list for one row that will use adapter `adapter_index`."""
        from mlx_lm.models.cache import ArraysCache, make_prompt_cache

        route = ArraysCache(1)
        route[0] = mx.array([adapter_index], dtype=mx.int32)
        return make_prompt_cache(self.model) + [route]


def routable(adapters: Sequence[Path | None]) -> bool:
    """True when every adapter can be routed (plain LoRA; not DoRA)."""
    return all(a is None or not read_adapter_spec(a).dora for a in adapters)


def _padded(a: mx.array | None, b: mx.array | None, in_dims: int, out_dims: int, rank: int, dtype):
    """A (in, rank) and B (rank, out), zero-padded (all zeros for a missing adapter)."""
    if a is None:
        return mx.zeros((in_dims, rank), dtype=dtype), mx.zeros((rank, out_dims), dtype=dtype)
    r = a.shape[1]
    if r < rank:
        a = mx.concatenate([a, mx.zeros((in_dims, rank - r), dtype=a.dtype)], axis=1)
        b = mx.concatenate([b, mx.zeros((rank - r, out_dims), dtype=b.dtype)], axis=0)
    return a, b


@contextlib.contextmanager
def routed_adapters(model: nn.Module, adapters: Sequence[Path | None]) -> Iterator[RoutedModel]:
    """The model with every adapter in `adapters` (None = the base model) routable per row: row
    caches from `RoutedModel.prompt_cache(k)` decode with adapters[k]. Each adapter is loaded through
    lora.load_adapter, so a file that does not fit this model fails here with its own message.
    Afterwards the model is the base model (no adapter layers attached)."""
    weights: list[dict[str, tuple]] = []  # per adapter: path -> (lora_a, lora_b, scale)
    for adapter in adapters:
        layers = {}
        if adapter is not None:
            detach_lora(model)
            load_adapter(model, adapter)
            layers = {name: (m.lora_a, m.lora_b, m.scale) for name, m in lora_modules(model)}
        weights.append(layers)
    detach_lora(model)
    modules = dict(model.named_modules())
    routing = _Routing()
    routed = []
    for path in sorted({p for layers in weights for p in layers}):
        linear = modules[path]
        got = [layers.get(path) for layers in weights]
        present = [g for g in got if g is not None]
        in_dims, out_dims = present[0][0].shape[0], present[0][1].shape[1]
        rank = max(g[0].shape[1] for g in present)
        dtype = present[0][0].dtype
        pairs = [_padded(g[0] if g else None, g[1] if g else None, in_dims, out_dims, rank, dtype) for g in got]
        scales = mx.array([g[2] if g else 0.0 for g in got], dtype=mx.float32)
        routed.append((path, RoutedLoRALinear(linear, mx.concatenate([a for a, _ in pairs], axis=1),
                                              mx.concatenate([b for _, b in pairs], axis=0), scales, rank,
                                              routing)))
    model.update_modules(tree_unflatten(routed))
    try:
        yield RoutedModel(model, routing)
    finally:
        model.update_modules(tree_unflatten([(path, layer.linear) for path, layer in routed]))


