"""Quantize a float model directory into a new mlx_lm directory (e.g. a 4-bit QLoRA base)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import localtune  # noqa: F401  (OpenBLAS before mlx)

from localtune.errors import ModelError
from localtune.fsutil import atomic_write_json
from localtune.outputs import check_output, staged_dir

# Files that travel with the weights (tokenizer, chat template, generation settings).
_COPY = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "vocab.json", "merges.txt", "added_tokens.json", "generation_config.json",
    "chat_template.jinja", "chat_template.json",
)


def quantize_model_dir(
    src: str | os.PathLike, dst: str | os.PathLike, *, bits: int = 4, group_size: int = 64,
    force: bool = False,
) -> Path:
    """Write src quantized (affine, `bits`, `group_size`) to dst; returns dst.

    Built in a temp dir next to dst and renamed into place, so a crash leaves no half model. An
    existing non-empty dst is refused unless `force`, and never src or a directory around it.
    """
    from mlx_lm.utils import load_model, quantize_model, save_model

    from localtune.ioerrors import mlx_writes
    from localtune.models.load import check_model_dir, check_model_weights

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    check_model_dir(src)
    check_model_weights(src)
    check_output(dst, force=force, sources=[src], flag="DST")
    if bits not in (2, 3, 4, 5, 6, 8):
        raise ModelError(f"cannot quantize to {bits} bits (use 2, 3, 4, 5, 6 or 8)")
    model, config = load_model(src, lazy=True)
    if "quantization" in config:
        raise ModelError(f"{src} is already quantized; quantize a float model")
    # quantize_model prints a summary line; engine code must stay silent.
    with contextlib.redirect_stdout(io.StringIO()):
        model, config = quantize_model(model, config, group_size=group_size, bits=bits)

    with staged_dir(dst, force=force, sources=[src], flag="DST") as tmp:
        with mlx_writes(tmp / "model.safetensors"):
            save_model(tmp, model)  # writes model*.safetensors + index into tmp
        config.pop("_name_or_path", None)
        atomic_write_json(tmp / "config.json", config)
        for name in _COPY:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
    return dst
