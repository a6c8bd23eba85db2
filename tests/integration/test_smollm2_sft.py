"""A short real SFT run on SmolLM2-135M-Instruct with the project's samples: validation loss goes
down, the adapter loads in mlx_lm unchanged and changes what the model says."""

import itertools
import json

import pytest

import localtune  # noqa: F401
from localtune.config import build_config
from localtune.runs import RunDir
from localtune.train.session import run_training
from localtune.train.sft import sft_task

pytestmark = pytest.mark.integration


def head(src, dst, n):
    with open(src) as f, open(dst, "w") as g:
        g.writelines(itertools.islice(f, n))
    return dst


def test_short_sft_run_lowers_val_loss_and_loads_in_mlx_lm(smollm2_dir, tmp_path):
    from mlx_lm import generate, load

    train = head("samples/sft/train.jsonl", tmp_path / "train.jsonl", 24)
    valid = head("samples/sft/valid.jsonl", tmp_path / "valid.jsonl", 6)
    cfg = build_config(None, dict(model=str(smollm2_dir), data=str(train), valid=str(valid),
                                  out=str(tmp_path / "run"), iters=8, batch_size=3, lr=1e-3,
                                  lora_layers=4, lora_rank=8, max_seq_len=256, eval_every=0,
                                  save_every=0))
    events = []
    run = run_training(cfg, sft_task, on_event=events.append)
    vals = [e["val_loss"] for e in events if e["event"] == "val"]
    assert len(vals) == 2 and vals[-1] < vals[0] - 0.3, vals  # measured: 2.14 -> 1.38
    assert RunDir(run).read()["status"] == "finished"
    cfg_json = json.loads((run / "adapter_config.json").read_text())
    assert cfg_json["num_layers"] == 4 and cfg_json["lora_parameters"]["rank"] == 8

    model, tok = load(str(smollm2_dir))
    prompt = tok.apply_chat_template([{"role": "user", "content": "Name a colour of the sky."}],
                                     add_generation_prompt=True, tokenize=False)
    base = generate(model, tok, prompt=prompt, max_tokens=12)
    tuned_model, _ = load(str(smollm2_dir), adapter_path=str(run))
    tuned = generate(tuned_model, tok, prompt=prompt, max_tokens=12)
    assert tuned != base
    assert tuned.startswith("Aye"), tuned  # the sample persona's opening, learned in 8 steps
