"""LoRA and DoRA adapter layers on Linear and QuantizedLinear: attach, enable/disable, fuse, save, load.

Parameter names match mlx_lm's (`linear`, `lora_a` (in, r), `lora_b` (r, out), DoRA's `m`) and
the saved files follow its layout, so our run directories load in `mlx_lm.load(adapter_path=...)`.
Unlike mlx_lm's layers, ours can be switched off, which gives DPO its reference policy and chat
its base-vs-tuned comparison without a second copy of the model.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from localtune.errors import RunError
from localtune.fsutil import atomic_save_safetensors, atomic_write_json
from localtune.runs.layout import ADAPTER_CONFIG_FILE as CONFIG_FILE
from localtune.runs.layout import ADAPTER_FILE

ALL_LINEAR = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)
ADAPTER_LEAVES = ("lora_a", "lora_b", "m")


@dataclass(frozen=True)
class LoraSpec:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    layers: int = 16  # the last N transformer blocks (mlx_lm's num_layers); -1 = all
    targets: tuple[str, ...] = ALL_LINEAR
    dora: bool = False

    @property
    def scale(self) -> float:
        # PEFT's convention: the update is (alpha / rank) * B A.
        return self.alpha / self.rank

    def to_mlx_lm_config(self) -> dict:
        return {
            "fine_tune_type": "dora" if self.dora else "lora",
            "num_layers": self.layers,
            "lora_parameters": {
                "rank": self.rank,
                "scale": self.scale,
                "dropout": self.dropout,
                "keys": list(self.targets),
            },
            # Ours, ignored by mlx_lm: keeps alpha exact for PEFT export.
            "lora_alpha": self.alpha,
        }

    @classmethod
    def from_mlx_lm_config(cls, cfg: dict) -> "LoraSpec":
        p = cfg.get("lora_parameters", {})
        rank = int(p.get("rank", 8))
        alpha = float(cfg.get("lora_alpha", p.get("scale", 20.0) * rank))
        keys = p.get("keys")
        return cls(
            rank=rank,
            alpha=alpha,
            dropout=float(p.get("dropout", 0.0)),
            layers=int(cfg.get("num_layers", 16)),
            targets=tuple(keys) if keys else ALL_LINEAR,
            dora=cfg.get("fine_tune_type", "lora") == "dora",
        )


def _dims(linear: nn.Module) -> tuple[int, int]:
    out_dims, in_dims = linear.weight.shape
    if isinstance(linear, nn.QuantizedLinear):
        in_dims = in_dims * 32 // linear.bits
    return in_dims, out_dims


def _dense_weight(linear: nn.Module) -> mx.array:
    if isinstance(linear, nn.QuantizedLinear):
        return mx.dequantize(
            linear.weight,
            linear.scales,
            linear.biases,
            group_size=linear.group_size,
            bits=linear.bits,
            mode=getattr(linear, "mode", "affine"),
        )
    return linear.weight


class LoRALinear(nn.Module):
    """y = W x + scale * B A dropout(x); B starts at zero so attaching is an exact no-op."""

    def __init__(self, linear: nn.Module, rank: int, scale: float, dropout: float, key: mx.array | None = None):
        super().__init__()
        in_dims, out_dims = _dims(linear)
        self.linear = linear
        self.scale = scale
        self.dropout = nn.Dropout(p=dropout)
        bound = 1.0 / math.sqrt(in_dims)
        # key: an explicit random key leaves MLX's global RNG alone (layers built to load saved weights into)
        self.lora_a = mx.random.uniform(-bound, bound, (in_dims, rank), key=key)
        self.lora_b = mx.zeros((rank, out_dims))
        self.adapter_enabled = True

    def delta_weight(self) -> mx.array:
        return (self.scale * self.lora_b.T) @ self.lora_a.T

    def __call__(self, x):
        y = self.linear(x)
        if not self.adapter_enabled:
            return y
        z = (self.dropout(x) @ self.lora_a) @ self.lora_b
        return y + (self.scale * z).astype(x.dtype)

    def fuse(self, dequantize: bool = False) -> nn.Module:
        return _fused_linear(self.linear, _dense_weight(self.linear) + self.delta_weight(), dequantize)


class DoRALinear(LoRALinear):
    """DoRA (Liu et al. 2024): W' = m * (W + s B A) / ||W + s B A||_row, with m learned."""

    def __init__(self, linear: nn.Module, rank: int, scale: float, dropout: float, key: mx.array | None = None):
        super().__init__(linear, rank, scale, dropout, key)
        self.m = mx.linalg.norm(_dense_weight(linear).astype(mx.float32), axis=1)

    def __call__(self, x):
        if not self.adapter_enabled:
            return self.linear(x)
        w = _dense_weight(self.linear)
        bias = self.linear.bias if "bias" in self.linear else None
        y = x @ w.T
        z = (self.dropout(x) @ self.lora_a) @ self.lora_b
        out = y + (self.scale * z).astype(x.dtype)
        # The norm is a constant for the gradient, as in the paper's memory-saving variant.
        denom = mx.stop_gradient(mx.linalg.norm(w + self.delta_weight().astype(w.dtype), axis=1))
        out = (self.m / denom).astype(x.dtype) * out
        return out + bias if bias is not None else out

    def fuse(self, dequantize: bool = False) -> nn.Module:
        w = _dense_weight(self.linear)
        adapted = w + self.delta_weight().astype(w.dtype)
        norm = mx.linalg.norm(adapted, axis=1)
        return _fused_linear(self.linear, (self.m / norm)[:, None] * adapted, dequantize)


def _fused_linear(base: nn.Module, weight: mx.array, dequantize: bool) -> nn.Module:
    has_bias = "bias" in base
    out_dims, in_dims = weight.shape
    fused = nn.Linear(in_dims, out_dims, bias=has_bias)
    dtype = base.scales.dtype if isinstance(base, nn.QuantizedLinear) else base.weight.dtype
    fused.weight = weight.astype(dtype)
    if has_bias:
        fused.bias = base.bias
    if isinstance(base, nn.QuantizedLinear) and not dequantize:
        fused = nn.QuantizedLinear.from_linear(fused, base.group_size, base.bits)
    return fused


def _blocks(model: nn.Module) -> list:
    layers = getattr(model, "layers", None)
    if layers is None:
        layers = model.model.layers
    return layers


def attach_lora(model: nn.Module, spec: LoraSpec) -> list[str]:
    """Freeze the model and wrap the target linears of the last `spec.layers` blocks.

    Returns the wrapped modules' paths. Raises RunError when a target matches nothing.
    """
    model.freeze()
    layers = lora_layers_for(model, spec)
    model.update_modules(tree_unflatten(layers))
    return [path for path, _ in layers]


def lora_layers_for(model: nn.Module, spec: LoraSpec, key: mx.array | None = None) -> list[tuple[str, LoRALinear]]:
    """New adapter layers for `spec`'s targets in the last `spec.layers` blocks, each wrapping the
    model's linear there, as (path from the model's root, layer), not installed: attach_lora
    installs them; a reward model's scorer swaps them in and out (reward/model.py). `key`: draw the
    initial lora_a from it instead of the global RNG. RunError when a target matches nothing."""
    blocks = _blocks(model)
    paths = {id(m): name for name, m in model.named_modules()}
    n = len(blocks) if spec.layers < 0 else min(spec.layers, len(blocks))
    cls = DoRALinear if spec.dora else LoRALinear
    layers, seen = [], set()
    for i in range(len(blocks) - n, len(blocks)):
        block = blocks[i]
        for name, module in block.named_modules():
            if name in spec.targets and isinstance(module, (nn.Linear, nn.QuantizedLinear)):
                if key is not None:
                    key, sub = mx.random.split(key)
                else:
                    sub = None
                layers.append((f"{paths[id(block)]}.{name}", cls(module, spec.rank, spec.scale, spec.dropout, sub)))
                seen.add(name)
    missing = set(spec.targets) - seen
    if missing:
        raise RunError(
            f"LoRA targets not found in the model: {sorted(missing)}; "
            f"linear layers of a block are: {sorted(linear_names(blocks[-1]))}"
        )
    return layers


def lora_modules(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    """(path, layer) of every adapter layer in the model."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def linear_names(block: nn.Module) -> list[str]:
    return [n for n, m in block.named_modules() if isinstance(m, (nn.Linear, nn.QuantizedLinear))]


def adapter_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for _, m in model.named_modules() if isinstance(m, LoRALinear)]


@contextmanager
def eval_mode(model: nn.Module):
    """No dropout inside the block (decoding, reference and validation passes); then every
    module's own flag back. Not `model.train(was)`: mlx_lm loads a model in eval mode while our
    LoRA layers are made in train mode, so the root's flag is not the run's, and restoring it
    would switch LoRA dropout off for the rest of a run after its first eval."""
    flags = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m._set_training_mode(flag)


def set_adapter_enabled(model: nn.Module, enabled: bool) -> None:
    """Switch every adapter on or off (off = the base model exactly)."""
    for layer in adapter_layers(model):
        layer.adapter_enabled = enabled


def detach_lora(model: nn.Module) -> int:
    """Put every wrapped linear back in place of its adapter layer (the base model as loaded, before
    attaching another adapter of a different shape). Returns how many layers were unwrapped."""
    wrapped = [(n, m.linear) for n, m in lora_modules(model)]
    if wrapped:
        model.update_modules(tree_unflatten(wrapped))
    return len(wrapped)


def adapter_weights(model: nn.Module) -> dict[str, mx.array]:
    """The adapter's own parameters, under mlx_lm's names (model.layers.N....lora_a)."""
    return {
        k: v
        for k, v in tree_flatten(model.parameters())
        if k.rsplit(".", 1)[-1] in ADAPTER_LEAVES
    }


def fuse_lora(model: nn.Module, *, dequantize: bool = False) -> None:
    """Merge every adapter into its base linear, in place."""
    fused = [(n, m.fuse(dequantize)) for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    model.update_modules(tree_unflatten(fused))


def save_adapter(model: nn.Module, directory: str | Path, spec: LoraSpec, extra: dict | None = None) -> None:
    """adapters.safetensors + adapter_config.json, in mlx_lm's format, written atomically."""
    directory = Path(directory)
    atomic_save_safetensors(directory / ADAPTER_FILE, adapter_weights(model))
    atomic_write_json(directory / CONFIG_FILE, {**spec.to_mlx_lm_config(), **(extra or {})})


ADAPTER_REPAIR = "in a run, `localtune train sft|dpo --resume RUN` rewrites it from the last checkpoint"


def read_adapter_spec_json(directory: str | Path) -> dict:
    """adapter_config.json as a dict; RunError when missing, CorruptFileError when damaged."""
    from localtune.ioerrors import read_json

    path = Path(directory) / CONFIG_FILE
    try:
        return read_json(path, ADAPTER_REPAIR)
    except FileNotFoundError:
        raise RunError(f"{path}: no adapter config (is this a run directory?)") from None


def read_adapter_spec(directory: str | Path) -> LoraSpec:
    path = Path(directory) / CONFIG_FILE
    try:
        spec = LoraSpec.from_mlx_lm_config(read_adapter_spec_json(directory))
    except (TypeError, ValueError, AttributeError) as e:
        raise RunError(f"{path}: unreadable adapter config: {e}") from None
    if spec.rank < 1 or spec.layers == 0 or spec.layers < -1 or not math.isfinite(spec.alpha):
        raise RunError(f"{path}: unusable adapter config (rank {spec.rank}, layers {spec.layers}, "
                       f"alpha {spec.alpha})")
    return spec


def read_adapter_file(path: str | Path) -> dict[str, mx.array]:
    """The tensors of an adapters.safetensors; CorruptFileError naming it when truncated/damaged."""
    from localtune.ioerrors import check_safetensors, mlx_reads

    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: adapter weights missing")
    check_safetensors(path, ADAPTER_REPAIR)
    with mlx_reads(path, ADAPTER_REPAIR):
        weights = mx.load(str(path))
        mx.eval(weights)
    return weights


def load_adapter(model: nn.Module, directory: str | Path, weights_file: str | Path | None = None) -> LoraSpec:
    """Attach the adapter described in `directory` and load its weights, checking names and shapes."""
    directory = Path(directory)
    spec = read_adapter_spec(directory)
    cfg = read_adapter_spec_json(directory)
    if cfg.get("fine_tune_type", "lora") == "full":
        raise RunError(f"{directory}: full fine-tunes are not adapters; load it as a model")
    path = Path(weights_file) if weights_file else directory / ADAPTER_FILE
    weights = read_adapter_file(path)  # before attaching: a damaged file leaves the model as it was
    attach_lora(model, spec)
    load_adapter_weights(model, path, weights)
    return spec


def load_adapter_weights(model: nn.Module, path: str | Path, weights: dict | None = None) -> None:
    """Load an adapter file's weights (or `weights`, already read from `path`) into the model's
    adapter layers; RunError naming the file when they do not fit (another base, another spec)."""
    weights = read_adapter_file(path) if weights is None else weights
    expected = adapter_weights(model)
    errors = []
    for name, w in weights.items():
        if name not in expected:
            errors.append(f"{name}: not an adapter parameter of this model")
        elif w.shape != expected[name].shape:
            errors.append(f"{name}: shape {tuple(w.shape)} != model's {tuple(expected[name].shape)}")
    if not errors and set(expected) - set(weights):
        errors.append(f"{len(set(expected) - set(weights))} adapter parameters missing from the file")
    if errors:
        raise RunError(
            f"{path}: adapter does not fit this model (was it trained on another base?):\n  "
            + "\n  ".join(errors[:8])
        )
    model.load_weights(list(weights.items()), strict=False)
    mx.eval(model.parameters())


def spec_summary(model: nn.Module) -> dict:
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    total = sum(v.size for _, v in tree_flatten(model.parameters()))
    return {"trainable_params": trainable, "total_params": total}


def spec_dict(spec: LoraSpec) -> dict:
    d = asdict(spec)
    d["targets"] = list(spec.targets)
    return d
