"""Load an mlx_lm model directory, with float weights in the dtype this device trains fast in."""

from __future__ import annotations

import os
from pathlib import Path

import localtune  # noqa: F401  (OpenBLAS before mlx)
import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from localtune.errors import ModelError

_FLOATS = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")
TRUST_REMOTE_CODE_ENV = "LOCALTUNE_TRUST_REMOTE_CODE"


def trust_remote_code() -> bool:
    """Run a model's own Python files only when asked: LOCALTUNE_TRUST_REMOTE_CODE=1. Passed as an
    explicit False otherwise, because left unset transformers *asks* on a terminal (and runs the
    code on "y") instead of refusing."""
    return os.environ.get(TRUST_REMOTE_CODE_ENV, "").strip().lower() in ("1", "true", "yes")


REPAIR = "re-download or re-import the model (localtune models download / models import)"


def check_model_dir(path: Path) -> None:
    """ModelError naming the directory when it cannot be an mlx_lm model; CorruptFileError naming
    the file when its config.json is not a JSON object with a model_type."""
    if not path.is_dir():
        raise ModelError(f"model directory not found: {path}")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} has no config.json: not a model directory")
    if not any(path.glob("*.safetensors")):
        raise ModelError(f"{path} has no *.safetensors weights")
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        raise ModelError(f"{path} has no tokenizer files (tokenizer.json / tokenizer_config.json)")
    read_model_config(path)


def read_model_config(path: Path) -> dict:
    from localtune.ioerrors import corrupt_file, read_json

    config = read_json(path / "config.json", REPAIR)
    if not isinstance(config.get("model_type"), str):
        raise corrupt_file(path / "config.json", "no model_type", REPAIR)
    return config


def check_model_weights(path: Path) -> None:
    """CorruptFileError naming the first truncated or damaged *.safetensors of a model directory
    (headers only: cheap), before mlx fails on it with a message that names no file."""
    from localtune.ioerrors import check_safetensors

    for f in sorted(Path(path).glob("*.safetensors")):
        check_safetensors(f, REPAIR)


def cast_floats(model, dtype) -> int:
    """Cast floating, non-quantized parameters to dtype; quantized scales/biases stay as they are
    (quantized kernels want them in their own dtype). Returns how many were cast."""
    quantized_prefixes = {
        name for name, m in model.named_modules() if hasattr(m, "bits") and hasattr(m, "scales")
    }
    changed = []
    for name, p in tree_flatten(model.parameters()):
        owner = name.rpartition(".")[0]
        if owner in quantized_prefixes or not mx.issubdtype(p.dtype, mx.floating):
            continue
        if p.dtype != dtype:
            changed.append((name, p.astype(dtype)))
    if changed:
        model.update(tree_unflatten(changed))
        mx.eval(model.parameters())
    return len(changed)


def load_model(path: str | os.PathLike, *, dtype: str | None = None):
    """(model, TokenizerWrapper) from an mlx_lm directory.

    dtype: "float32" | "float16" | "bfloat16" casts float weights; None means float32 on CPU
    (BLAS-backed f32 matmuls are much faster there than f16/bf16) and as stored elsewhere.
    """
    from mlx_lm.utils import load

    path = Path(path).expanduser()
    check_model_dir(path)
    check_model_weights(path)
    if dtype is None:
        from localtune import backend

        dtype = "float32" if backend.kind() == "cpu" else None
    if dtype is not None and dtype not in _FLOATS:
        raise ModelError(f"unknown load dtype {dtype!r}; use float32, float16 or bfloat16")
    try:
        trust = trust_remote_code()
        model, tokenizer = load(str(path), tokenizer_config={"trust_remote_code": trust}, trust_remote_code=trust)
    except (FileNotFoundError, ValueError, KeyError, OSError, RuntimeError) as e:
        raise ModelError(f"cannot load model {path}: {e}") from e
    if dtype is not None:
        cast_floats(model, _FLOATS[dtype])
    from localtune import backend, cpu_math
    from localtune.models import packed_attention

    if backend.fast_cpu_math():
        cpu_math.install(model)
    packed_attention.install(model)  # after cpu_math: packed batches narrow whichever attention runs
    return model, tokenizer


def load_tokenizer_only(spec: str | os.PathLike | None = None, *, on_event=None):
    """The TokenizerWrapper of a model spec (as resolve_model takes), without loading weights."""
    from mlx_lm.utils import load_tokenizer, load_config

    from localtune.models.resolve import resolve_model

    path = resolve_model(None if spec is None else str(spec), on_event=on_event)
    check_model_dir(path)
    try:
        eos = load_config(path).get("eos_token_id")
        return load_tokenizer(path, {"trust_remote_code": trust_remote_code()}, eos_token_ids=eos)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"cannot load the tokenizer of {path}: {e}") from e
