"""Export base + adapter merged into one mlx_lm model directory (config.json, safetensors,
tokenizer and generation files copied from the base). A quantized base is re-quantized with its
own bits/group size unless `dequantize`, which also makes a llama base loadable by transformers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
from mlx.utils import tree_flatten

from localtune.export.source import WEIGHT_FILES, load_tuned
from localtune.fsutil import atomic_write_json
from localtune.lora import fuse_lora


def fused_model(run: str | Path, *, model: str | None = None, dequantize: bool = False):
    """(fused mlx_lm model, tokenizer, base dir, base config.json dict)."""
    m, tokenizer, _, base = load_tuned(run, model)
    fuse_lora(m, dequantize=dequantize)
    if dequantize:
        from mlx_lm.utils import dequantize_model

        m = dequantize_model(m)  # the layers no adapter touched, too
    mx.eval(m.parameters())
    config = json.loads((base / "config.json").read_text())
    if dequantize:
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    return m, tokenizer, base, config


def copy_side_files(base: Path, dst: Path) -> None:
    """Tokenizer, generation config, chat template...: everything but weights and config."""
    skip = {p.name for pattern in WEIGHT_FILES for p in base.glob(pattern)}
    for p in base.iterdir():
        if p.is_file() and p.name not in skip and not p.name.startswith("."):
            shutil.copy2(p, dst / p.name)


def export_fused(run: str | Path, out: str | Path, *, model: str | None = None,
                 dequantize: bool = False, force: bool = False) -> Path:
    """Write the fused model directory `out` (built in a temp dir and renamed into place; an
    existing one is refused unless `force`, the run and its base never)."""
    from localtune.export.source import base_model_path
    from localtune.models.gguf_import import _write_weights
    from localtune.outputs import check_output, staged_dir

    sources = (run, base_model_path(run, model))
    check_output(out, force=force, sources=sources)  # before the slow part
    m, _, base, config = fused_model(run, model=model, dequantize=dequantize)
    with staged_dir(out, force=force, sources=sources) as tmp:
        copy_side_files(base, tmp)
        _write_weights(tmp, dict(tree_flatten(m.parameters())), lambda e: None)
        atomic_write_json(tmp / "config.json", config)
    return Path(out)
