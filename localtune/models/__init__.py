"""Models: find (resolve), fetch (hub), convert (GGUF import, quantize), load and list them.

Functions are imported lazily by their modules' users; this file stays import-light so
`import localtune.models` never pulls in mlx_lm or huggingface_hub.
"""

from __future__ import annotations


def __getattr__(name):
    # Lazy re-exports: `from localtune.models import resolve_model` works without import cost.
    import importlib

    where = {
        "resolve_model": "resolve",
        "models_dir": "resolve",
        "download_model": "hub",
        "import_gguf": "gguf_import",
        "load_model": "load",
        "load_tokenizer_only": "load",
        "quantize_model_dir": "quantize",
        "list_models": "catalog",
    }
    if name in where:
        return getattr(importlib.import_module(f"{__name__}.{where[name]}"), name)
    raise AttributeError(name)
