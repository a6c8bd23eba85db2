"""Security: weights only through safetensors/GGUF (no pickle anywhere in localtune/), a model's own
Python code never runs unless LOCALTUNE_TRUST_REMOTE_CODE=1, hub tokens never reach the run
directory, and dataset files are read as data, never executed (see test_faults_fuzz.py)."""

import json
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from localtune.config import TrainConfig
from localtune.errors import ModelError

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hf_secretTOKEN0123456789abcdefXYZ"
UNSAFE = {
    r"\bimport pickle\b|\bpickle\.|cPickle|\bdill\b|\bjoblib\b|\bshelve\b|marshal\.loads": "pickle-like loading",
    r"torch\.load\(": "torch.load (pickle)",
    r"allow_pickle\s*=\s*True": "np.load(allow_pickle=True)",
    r"yaml\.load\((?![^)]*SafeLoader)|yaml\.unsafe_load|yaml\.full_load": "unsafe YAML",
    r"(?<![\w.])eval\(|(?<![\w.])exec\(": "eval/exec",
    r"shell\s*=\s*True|os\.system\(": "a shell",
    r"trust_remote_code\s*=\s*True": "remote code on by default",
}


def test_no_pickle_eval_or_shell_in_the_engine():
    found = []
    for path in sorted((ROOT / "localtune").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, what in UNSAFE.items():
                if re.search(pattern, code):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_scan_would_catch_pickle():
    assert any(re.search(p, "state = torch.load(f)") for p in UNSAFE)
    assert any(re.search(p, "x = np.load(f, allow_pickle=True)") for p in UNSAFE)
    assert not any(re.search(p, "mx.eval(loss)") for p in UNSAFE)


def _remote_code_model(src: Path, dst: Path, marker: Path, where: str) -> Path:
    """A copy of the tiny model whose tokenizer (or architecture) lives in a .py file that leaves
    `marker` behind when it is imported."""
    shutil.copytree(src, dst)
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    if where == "tokenizer":
        (dst / "custom_tok.py").write_text(code + "from transformers import PreTrainedTokenizerFast\n"
                                           "class CustomTok(PreTrainedTokenizerFast):\n    pass\n")
        cfg = json.loads((dst / "tokenizer_config.json").read_text())
        cfg.update(tokenizer_class="CustomTok", auto_map={"AutoTokenizer": [None, "custom_tok.CustomTok"]})
        (dst / "tokenizer_config.json").write_text(json.dumps(cfg))
    else:
        (dst / "custom_model.py").write_text(code)
        cfg = json.loads((dst / "config.json").read_text())
        cfg["model_file"] = "custom_model.py"
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("where", ["tokenizer", "model"])
def test_remote_code_is_off_by_default_and_never_prompted(tiny_model_dir, tmp_path, capfd, monkeypatch, where):
    from localtune.models import load_model

    monkeypatch.delenv("LOCALTUNE_TRUST_REMOTE_CODE", raising=False)
    marker = tmp_path / "ran"
    model = _remote_code_model(tiny_model_dir, tmp_path / "m", marker, where)
    with pytest.raises(ModelError, match=re.escape(str(model))):
        load_model(model)
    assert not marker.exists(), "the model's own code ran"
    out, err = capfd.readouterr()
    assert "Do you wish to run the custom code" not in out + err  # refused, not asked on the terminal


def test_remote_code_runs_only_when_asked(tiny_model_dir, tmp_path, monkeypatch):
    from localtune.models.load import trust_remote_code

    monkeypatch.delenv("LOCALTUNE_TRUST_REMOTE_CODE", raising=False)
    assert trust_remote_code() is False
    marker = tmp_path / "ran"
    model = _remote_code_model(tiny_model_dir, tmp_path / "m", marker, "tokenizer")
    monkeypatch.setenv("LOCALTUNE_TRUST_REMOTE_CODE", "1")
    from localtune.models import load_tokenizer_only

    load_tokenizer_only(model)  # proves the fixture's code is runnable: its absence above means "refused"
    assert marker.exists()


def test_config_has_no_secret_fields():
    from localtune.config_dpo import DPOConfig

    for cls in (TrainConfig, DPOConfig):
        names = [f.name for f in fields(cls)]
        assert not [n for n in names if re.search(r"token(?!s)|secret|password|auth|key$", n)], names


def test_hub_token_never_reaches_the_run_directory(tiny_model_dir, tmp_path):
    import os

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                                     {"role": "assistant", "content": f"yo {i}"}]}) + "\n"
                            for i in range(4)))
    run = tmp_path / "run"
    env = {**os.environ, "HF_TOKEN": SECRET, "HUGGING_FACE_HUB_TOKEN": SECRET}
    out = subprocess.run([sys.executable, "-m", "localtune", "train", "sft", "--model", str(tiny_model_dir),
                          "--data", str(data), "--out", str(run), "--iters", "2", "--batch-size", "2",
                          "--save-every", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    files = [p for p in run.rglob("*") if p.is_file()]
    assert len(files) >= 8  # run.json, metrics, log, adapter, checkpoint files: all were searched
    leaks = [str(p) for p in files if SECRET.encode() in p.read_bytes() or b"hf_secret" in p.read_bytes()]
    assert not leaks and SECRET not in out.stdout + out.stderr, leaks
    info = json.loads((run / "run.json").read_text())
    assert set(info["config"]) == {f.name for f in fields(TrainConfig)}  # nothing but the config's fields
    assert Path(info["config"]["data"]) == data  # the dataset path is recorded as given, and resolvable
