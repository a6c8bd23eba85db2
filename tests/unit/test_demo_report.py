"""The demo's closing report on the tiny model: one table of base / SFT / DPO (Pip checks, ended,
loops on the held-out + validation prompts, IFEval on its own set, preference accuracy), the
evaluations written to the last run, and the held-out answers side by side."""

from pathlib import Path

from localtune.cli.demo_report import DemoSets, judge, side_by_side, table
from localtune.config_dpo import DPOConfig
from localtune.generate import Sampling
from localtune.runs import list_evals
from localtune.lora import load_adapter
from localtune.models import load_model
from localtune.train.dpo import dpo_task, preference_report
from localtune.train.session import run_training
from localtune.train.sft import sft_task

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_demo_report_judges_base_sft_and_dpo(tiny_model_dir, tiny_config, tmp_path, echo_rows, echo_pairs):
    rows = echo_rows(tmp_path / "train.jsonl", 16, 0)
    valid = echo_rows(tmp_path / "valid.jsonl", 3, 1)
    pairs = echo_pairs(tmp_path / "pairs.jsonl", [("apple", "river"), ("stone", "cloud")])
    sft = run_training(tiny_config(tmp_path / "sft", rows, iters=2, save_every=0), sft_task)
    dpo = run_training(tiny_config(tmp_path / "dpo", pairs, cls=DPOConfig, adapter=str(sft), iters=2,
                                   save_every=0, batch_size=2), dpo_task)
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("echo apple river\necho maple frost\n")
    sets = DemoSets(heldout, valid, SAMPLES / "ifeval" / "heldout.jsonl", SAMPLES / "pip_checks.yaml", pairs)
    result = judge(tiny_model_dir, [("base", None), ("SFT", sft), ("DPO", dpo)], sets,
                   Sampling(max_tokens=6))

    assert [e.name for e in result["pip"]] == ["base", "SFT", "DPO"] == [e.name for e in result["ifeval"]]
    pip = {e.name: e.summary() for e in result["pip"]}
    assert {s["answers"] for s in pip.values()} == {5}  # 2 held-out + 3 validation prompts
    assert {e.summary()["answers"] for e in result["ifeval"]} == {34}
    assert set(result["preference"]) == {"base", "SFT", "DPO"}
    # one pass per model gives what preference_report (tuned and base from the same batches) gives
    model, tok = load_model(tiny_model_dir)
    load_adapter(model, dpo)
    report = preference_report(model, tok, pairs)
    assert (result["preference"]["base"], result["preference"]["DPO"]) == (report["base"], report["tuned"])

    text = table(result).splitlines()
    assert text[0].split() == ["answers", "base", "SFT", "DPO"]
    row = next(line for line in text if line.strip().startswith("loops"))
    assert row.split()[1:] == [f"{pip[m]['loops']:.2f}" for m in ("base", "SFT", "DPO")]
    assert any(line.strip().startswith("Pip checks: every check passed") for line in text)
    assert any(line.strip().startswith("prompt-level strict") for line in text)

    # both evaluations are the DPO run's, readable by the TUI and scripts
    found = {e.name.rsplit("-", 1)[-1]: e for e in list_evals(dpo)}
    assert set(found) == {"pip", "ifeval"} and set(found["pip"].models) == {"base", "SFT", "DPO"}
    assert found["pip"].models["DPO"]["loops"] == pip["DPO"]["loops"]

    answers = side_by_side(result)
    assert answers.count("=== ") == 2 and "=== echo maple frost" in answers
    assert answers.count("--- base") == 2 and answers.count("--- DPO") == 2
