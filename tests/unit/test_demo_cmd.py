"""`localtune demo` finds the repository's samples/ from any working folder, and says what to do
where there are none."""

from pathlib import Path

import pytest

from localtune.cli import demo_cmd
from localtune.config import build_config
from localtune.config_dpo import DPOConfig
from localtune.errors import LocaltuneError

REPO = Path(__file__).resolve().parents[2]


def test_samples_are_the_repositorys_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not Path("samples").exists()
    root = demo_cmd.repo_root()
    assert root == REPO
    for yaml, cls in (("sft.yaml", None), ("dpo.yaml", DPOConfig)):
        cfg = build_config(root / "samples" / yaml, **({"cls": cls} if cls else {}))
        changed = demo_cmd._sample_overrides(cfg, root)
        assert set(changed) == {"data", "valid", "eval_every"} and changed["eval_every"] == 0  # start and end only
        paths = [changed["data"], changed["valid"]]
        assert all(Path(p).is_file() and Path(p).is_absolute() for p in paths)


def test_no_samples_anywhere_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_cmd, "__file__", str(tmp_path / "site-packages" / "localtune" / "cli" / "demo_cmd.py"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LocaltuneError, match="samples/ not found.*clone of the repository"):
        demo_cmd.repo_root()
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "sft.yaml").write_text("iters: 1\n")
    assert demo_cmd.repo_root() == tmp_path  # the working folder's samples/ when the package has none


def test_absolute_data_paths_are_left_alone(tmp_path):
    cfg = build_config(None, {"data": str(tmp_path / "t.jsonl"), "valid": None})
    assert demo_cmd._sample_overrides(cfg, REPO) == {"eval_every": 0}


def test_preference_accuracy_is_opt_in():
    """The demo's table is the answers (issue 11 §5); scoring the pairs with three models costs ~30 s
    of a demo that must stay under 15 minutes, so it runs only when asked."""
    from localtune.cli import build_parser

    assert build_parser().parse_args(["demo"]).preference_accuracy is False
    assert build_parser().parse_args(["demo", "--preference-accuracy"]).preference_accuracy is True


def test_summary_prints_the_cross_entropy_when_the_loss_has_an_unlikelihood_term(capsys):
    vals = [{"event": "val", "step": s, "val_loss": loss, "val_nll": nll} for s, loss, nll in ((0, 3.0, 2.5), (9, 2.0, 1.5))]
    demo_cmd._summary("SFT", vals)
    assert "held-out loss 2.500 -> 1.500 (9 steps)" in capsys.readouterr().out
    demo_cmd._summary("DPO", [{k: v for k, v in e.items() if k != "val_nll"} for e in vals])
    assert "held-out loss 3.000 -> 2.000" in capsys.readouterr().out
