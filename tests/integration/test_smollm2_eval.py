"""`localtune eval` on the real SmolLM2: a short SFT run on the Pip samples, then base and tuned
answer held-out IFEval rows and Pip prompts side by side; the numbers land in summary.json."""

import itertools
import json

import pytest

import localtune  # noqa: F401
from localtune.cli import main
from localtune.config import build_config
from localtune.train.session import run_training
from localtune.train.sft import sft_task

pytestmark = pytest.mark.integration


def head(src, dst, n):
    with open(src) as f, open(dst, "w") as g:
        g.writelines(itertools.islice(f, n))
    return dst


def test_eval_of_base_and_a_tuned_adapter(smollm2_dir, tmp_path, capsys):
    train = head("samples/sft/train.jsonl", tmp_path / "train.jsonl", 24)
    cfg = build_config(None, dict(model=str(smollm2_dir), data=str(train), out=str(tmp_path / "run"), iters=8,
                                  batch_size=3, lr=1e-3, lora_layers=4, lora_rank=8, max_seq_len=256,
                                  eval_every=0, save_every=0))
    run = run_training(cfg, sft_task)
    ifeval = head("samples/ifeval/heldout.jsonl", tmp_path / "ifeval.jsonl", 6)
    out = tmp_path / "eval"
    assert main(["eval", "--adapter", str(run), "--ifeval", str(ifeval), "--prompts",
                 "samples/sft/heldout_prompts.txt", "--checks", "samples/pip_checks.yaml", "--max-tokens", "32",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "base (12)" in printed and "run (12)" in printed and "check: greets" in printed

    summary = json.loads((out / "summary.json").read_text())
    base, tuned = summary["models"]["base"], summary["models"]["run"]
    assert summary["model_path"] == str(smollm2_dir)
    for m in (base, tuned):
        assert m["ifeval_prompts"] == 6 and m["answers"] == 12
        for key in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose", "ended", "loops"):
            assert 0.0 <= m[key] <= 1.0
        assert m["instruction_loose"] >= m["instruction_strict"] and m["prompt_loose"] >= m["prompt_strict"]
        assert 0 < m["mean_tokens"] <= 32
    # The persona's greeting, learned in 8 steps, shows in the check the base never passes
    # (measured: 0.00 vs 0.33 of the 6 Pip prompts).
    assert base["checks"]["greets"] == 0.0 < tuned["checks"]["greets"], (base["checks"], tuned["checks"])
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [a["model"] for a in answers] == ["base"] * 12 + ["run"] * 12
    assert all(len(a["follow_instruction_list"]) == len(a["instruction_id_list"]) for a in answers)
