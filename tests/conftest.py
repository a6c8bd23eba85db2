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


def _chat_rows(n: int) -> str:
    import json

    return "".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                            {"role": "assistant", "content": f"yo {i}"}]}) + "\n" for i in range(n))


@pytest.fixture(scope="session")
def tiny_run(tiny_model_dir, tmp_path_factory):
    """A finished 4-step SFT run of the tiny model (checkpoints at 2 and 4), session-wide: copy it
    before changing anything in it."""
    from localtune.config import build_config
    from localtune.train.session import run_training
    from localtune.train.sft import sft_task

    tmp = tmp_path_factory.mktemp("tiny_run")
    (tmp / "d.jsonl").write_text(_chat_rows(12))
    cfg = build_config(None, dict(model=str(tiny_model_dir), data=str(tmp / "d.jsonl"), out=str(tmp / "run"),
                                  iters=4, batch_size=2, lr=1e-3, lora_rank=4, save_every=2, report_every=1))
    return run_training(cfg, sft_task)
