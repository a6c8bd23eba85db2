import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import localtune  # noqa: E402,F401  (OpenBLAS before mlx, for every test)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random f32 tiny llama with the byte-level ChatML tokenizer (session-wide, read-only)."""
    from tiny import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_q4_model_dir(tmp_path_factory):
    from tiny import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tinyq") / "model", quantize_bits=4)
