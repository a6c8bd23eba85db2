"""`localtune export --push`: the folder handed to the Hub holds the export, its model card and the
loss curve (HTTP layer stubbed: HfApi.create_repo/upload_folder record what they were given)."""

import json

import pytest
from huggingface_hub import HfApi

from localtune.cli import main
from localtune.errors import LocaltuneError
from localtune.lora import LoraSpec
from test_export_peft import make_run


@pytest.fixture()
def hub(monkeypatch):
    calls = {}

    def create_repo(self, repo_id, **kw):
        calls["create"] = (repo_id, kw)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kw):
        from pathlib import Path

        folder = Path(folder_path)  # read now: a GGUF's staging folder is gone after the call
        calls["upload"] = (repo_id, sorted(p.name for p in folder.iterdir()),
                           (folder / "README.md").read_text(), (folder / "loss.png").read_bytes()[:8])

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def run_with_metrics(tmp_path, model_dir):
    run = tmp_path / "run"
    make_run(run, model_dir, LoraSpec(rank=4, layers=1))
    info = json.loads((run / "run.json").read_text())
    info.update(kind="sft", step=20, train_rows=48,
                config={**info["config"], "data": "train.jsonl", "lr": 1e-4, "lora_rank": 4, "iters": 20})
    (run / "run.json").write_text(json.dumps(info))
    events = [{"step": s, "train_loss": 3.0 - 0.1 * s} for s in (1, 10, 20)] + [{"step": 20, "val_loss": 1.25}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


@pytest.mark.parametrize("fmt", ["peft", "gguf"])
def test_push_uploads_export_card_and_loss_curve(tiny_model_dir, tmp_path, hub, fmt):
    run = run_with_metrics(tmp_path, tiny_model_dir)
    out = tmp_path / ("out.gguf" if fmt == "gguf" else "out")
    assert main(["export", str(run), "--format", fmt, "--out", str(out), "--push", "me/tuned", "--private"]) == 0
    assert hub["create"] == ("me/tuned", {"private": True, "exist_ok": True, "repo_type": "model"})
    repo, files, card, png = hub["upload"]
    expected = {"peft": ["README.md", "adapter_config.json", "adapter_model.safetensors", "loss.png"],
                "gguf": ["README.md", "loss.png", "out.gguf"]}[fmt]
    assert repo == "me/tuned" and files == expected
    assert png == b"\x89PNG\r\n\x1a\n"
    assert card.startswith(f"---\nbase_model: {tiny_model_dir}\n")
    assert f"library_name: {'peft' if fmt == 'peft' else 'gguf'}" in card
    assert "- training: `train.jsonl` (48 rows)" in card and "| lora_rank | 4 |" in card
    assert "- train_loss: 1.0000 (step 20)" in card and "- val_loss: 1.2500 (step 20)" in card
    assert "](loss.png)" in card


def test_push_offline_is_a_clear_error(tiny_model_dir, tmp_path, monkeypatch):
    def refuse(self, repo_id, **kw):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    run = run_with_metrics(tmp_path, tiny_model_dir)
    from localtune.export.hub import push_export

    with pytest.raises(LocaltuneError, match="cannot reach the Hugging Face Hub.*me/x"):
        push_export(run, run, "me/x")
