"""Export an adapter in Hugging Face PEFT's layout (adapter_config.json + adapter_model.safetensors),
so `PeftModel.from_pretrained(transformers_model, DIR)` reproduces our logits.

PEFT stores lora_A as (r, in) and lora_B as (out, r) (torch Linear weights); ours are their
transposes. Its scale is lora_alpha / r, the same convention as ours. DoRA's magnitude `m` is
PEFT's `lora_magnitude_vector` (use_dora=True): both divide by the row norm of W + s·B·A.
"""

from __future__ import annotations

import re
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx

from localtune.errors import RunError
from localtune.export.source import read_adapter
from localtune.fsutil import atomic_save_safetensors, atomic_write_json

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"
_KEY = re.compile(r"model\.layers\.(\d+)\.(.+)\.(lora_a|lora_b|m)")
_LEAF = {"lora_a": "lora_A.weight", "lora_b": "lora_B.weight", "m": "lora_magnitude_vector"}


def peft_tensors(weights: dict[str, mx.array]) -> tuple[dict[str, mx.array], list[int], list[str]]:
    """(PEFT state dict, adapted layer indices, short target names) from our adapter weights."""
    out, layers, targets = {}, set(), set()
    for name, w in weights.items():
        m = _KEY.fullmatch(name)
        if m is None:
            raise RunError(f"unexpected adapter tensor {name!r}: not model.layers.N.<module>.lora_a/b/m")
        layer, module, leaf = m.groups()
        layers.add(int(layer))
        targets.add(module.rsplit(".", 1)[-1])  # transformers' target_modules match name suffixes
        value = w.T if leaf in ("lora_a", "lora_b") else w
        out[f"base_model.model.model.layers.{layer}.{module}.{_LEAF[leaf]}"] = mx.contiguous(value)
    return out, sorted(layers), sorted(targets)


def export_peft(run: str | Path, out: str | Path, *, base_name: str, force: bool = False) -> Path:
    """Write DIR/adapter_config.json + DIR/adapter_model.safetensors; returns DIR (built in a
    temp dir and renamed into place; an existing one is refused unless `force`)."""
    from localtune.outputs import check_output, staged_dir

    check_output(out, force=force, sources=[run])
    spec, weights = read_adapter(run)
    tensors, layers, targets = peft_tensors(weights)
    short = {t.rsplit(".", 1)[-1] for t in spec.targets}
    if len(short) != len(spec.targets):
        raise RunError(f"{run}: targets {list(spec.targets)} share a module name; PEFT cannot tell them apart")
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_name,
        "r": spec.rank,
        "lora_alpha": spec.alpha,
        "lora_dropout": spec.dropout,
        "target_modules": targets,
        # The last-N-layers setting (mlx_lm's num_layers) as explicit layer indices.
        "layers_to_transform": layers,
        "layers_pattern": "layers",
        "bias": "none",
        "fan_in_fan_out": False,
        "use_dora": spec.dora,
        "use_rslora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
    }
    with staged_dir(out, force=force, sources=[run]) as tmp:
        atomic_save_safetensors(tmp / PEFT_WEIGHTS, tensors, {"format": "pt"})
        atomic_write_json(tmp / PEFT_CONFIG, config)
    return Path(out)
