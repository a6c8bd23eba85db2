"""Nothing silently wrong: DPO pairs that truncation made identical are counted and dropped (and a
file of nothing else is refused), an adapter loaded onto a base it was not trained on is warned
about, row text with terminal escape sequences is printed escaped, and a run that failed before its
first step can simply be run again."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localtune.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
SAME = "The answer to this question is certainly "


def localtune(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "localtune", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def write_pairs(path: Path, long: int, short: int) -> Path:
    rows = [{"prompt": f"q{i}", "chosen": SAME + "yes", "rejected": SAME + "no"} for i in range(long)]
    rows += [{"prompt": f"q{i}", "chosen": "Yes", "rejected": "No"} for i in range(short)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from localtune.models import load_tokenizer_only

    return load_tokenizer_only(tiny_model_dir)


def test_pairs_made_identical_by_truncation_are_dropped_and_reported(tmp_path, tokenizer):
    from localtune.data.preferences import load_pairs

    events = []
    pairs = load_pairs(str(write_pairs(tmp_path / "p.jsonl", 6, 4)), tokenizer, max_seq_len=40,
                       on_event=events.append)
    assert len(pairs) == 4 and all(p.chosen_ids != p.rejected_ids for p in pairs)
    data = next(e for e in events if e["event"] == "data")
    assert data["identical"] == 6 and data["dropped"] == 6 and data["usable"] == 4
    warning = next(e for e in events if e["event"] == "warning")
    assert "6 of 10 pairs became identical when cut to --max-seq-len 40" in warning["message"]
    # long enough: nothing lost, nothing said
    events.clear()
    assert len(load_pairs(str(tmp_path / "p.jsonl"), tokenizer, max_seq_len=512, on_event=events.append)) == 10
    assert not [e for e in events if e["event"] == "warning"]


def test_a_file_of_only_such_pairs_is_refused(tmp_path, tokenizer):
    from localtune.data.preferences import load_pairs

    with pytest.raises(DataError, match=r"all 6 pairs .* identical chosen and rejected .* raise --max-seq-len "
                                        r"\(the longest pair has \d+ tokens\)"):
        load_pairs(str(write_pairs(tmp_path / "p.jsonl", 6, 0)), tokenizer, max_seq_len=40)


def test_dpo_training_on_them_says_so_and_stats_counts_them(tmp_path, tiny_model_dir):
    write_pairs(tmp_path / "p.jsonl", 6, 0)
    out = localtune("train", "dpo", "--model", tiny_model_dir, "--data", tmp_path / "p.jsonl", "--out",
                    tmp_path / "run", "--iters", "2", "--max-seq-len", "40")
    assert out.returncode == 2 and "identical chosen and rejected" in out.stderr, out.stderr  # was: loss log 2
    write_pairs(tmp_path / "mix.jsonl", 6, 6)
    stats = localtune("data", "stats", tmp_path / "mix.jsonl", "--model", tiny_model_dir, "--max-seq-len", "40",
                      "--json")
    assert json.loads(stats.stdout)["identical_after_truncation"] == {"count": 6, "lines": [1, 2, 3, 4, 5, 6]}


@pytest.fixture
def other_base(tmp_path):
    """Another tiny model of the same shapes (other weights): the run's adapter fits it."""
    from tiny import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path / "other", seed=1)


def test_an_adapter_on_another_base_of_the_same_shapes_is_warned_about(tiny_run, tiny_model_dir, other_base,
                                                                        tmp_path):
    from localtune.chat import ChatSession
    from localtune.config import build_config
    from localtune.export import export_run
    from localtune.train.session import run_training
    from localtune.train.sft import sft_task

    events = []
    ChatSession.open(str(other_base), tiny_run, on_event=events.append)
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert warnings == [f"{tiny_run} was trained on {tiny_model_dir}, not on {other_base}: the adapter fits "
                        f"(same shapes) but its answers will be wrong on another base; use --model {tiny_model_dir}"]
    events.clear()
    export_run(tiny_run, "peft", tmp_path / "peft", model=str(other_base), on_event=events.append)
    assert [e for e in events if e["event"] == "warning"]
    events.clear()
    cfg = build_config(None, dict(model=str(other_base), data=str(tiny_run.parent / "d.jsonl"),
                                  adapter=str(tiny_run), out=str(tmp_path / "run2"), iters=1, batch_size=2))
    run_training(cfg, sft_task, on_event=events.append)
    assert [e for e in events if e["event"] == "warning" and str(other_base) in e["message"]]


def test_no_warning_for_the_same_base_or_a_copy_of_it(tiny_run, tiny_model_dir, tmp_path):
    from localtune.chat import ChatSession

    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    for base in (tiny_model_dir, copy):
        events = []
        ChatSession.open(str(base), tiny_run, on_event=events.append)
        assert not [e for e in events if e["event"] == "warning"], base


def test_chat_cli_shows_the_warning(tiny_run, other_base):
    out = localtune("chat", "--adapter", tiny_run, "--model", other_base, "--prompt", "hi", "--max-tokens", "2")
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith(f"warning: {tiny_run} was trained on"), out.stderr


ESC_ROWS = [{"messages": [{"role": "user", "content": "hi \x1b]0;PWNED\x07 \x1b[2J there"},
                          {"role": "assistant", "content": "ok \x1b[31mred\u202e [bold]x[/bold]"}]},
            {"messages": [{"role": "user", "content": "\x1b[2J"}]}]


def test_printable_escapes_controls_and_bidi_but_keeps_text():
    from localtune.safetext import printable

    assert printable("a\x1b[2Jb\nc\td\u202ee\x07\x9b") == "a\\x1b[2Jb\nc\td\\u202ee\\x07\\x9b"
    assert printable("x\ny\r", one_line=True) == "x\\ny\\r"
    assert printable("héllo 😀 – ok") == "héllo 😀 – ok"


def test_row_text_with_escape_sequences_is_printed_escaped(tmp_path, tiny_model_dir, tiny_run):
    rows = tmp_path / "esc.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ESC_ROWS))
    named = tmp_path / "esc\x1b[31m.jsonl"
    shutil.copy(rows, named)
    shutil.copytree(tiny_run, tmp_path / "runs" / "ev\x1b]0;x\x07il")
    preview = localtune("data", "preview", rows, "--model", tiny_model_dir)
    check = localtune("data", "check", named)
    listing = localtune("runs", "--root", tmp_path / "runs")
    for out in (preview, check, listing):
        assert "Traceback" not in out.stderr, out.stderr
        assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\u202e" not in out.stdout, out.stdout
    assert "hi \\x1b]0;PWNED\\x07 \\x1b[2J there" in preview.stdout
    assert "[bold]x[/bold]" in preview.stdout  # row text is never taken as rich markup
    assert "esc\\x1b[31m.jsonl:2: no assistant turn" in check.stdout
    assert "ev\\x1b]0;x\\x07il" in listing.stdout


def test_a_run_that_failed_before_its_first_step_can_be_run_again(tmp_path, tiny_model_dir, tiny_run):
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    os.truncate(broken / "model.safetensors", 1000)
    args = ["train", "sft", "--data", tiny_run.parent / "d.jsonl", "--out", tmp_path / "run", "--iters", "1",
            "--batch-size", "2"]
    first = localtune(*args, "--model", broken)
    assert first.returncode == 2 and "truncated" in first.stderr
    again = localtune(*args, "--model", tiny_model_dir)  # was: "already a run directory; use --resume"
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "finished"


def test_chat_with_a_checkpoint_takes_its_runs_base(tiny_run, tiny_model_dir):
    """A checkpoint has no run.json: its run's says the base (was: the default model, then an
    "adapter does not fit" error that sent users looking for the wrong cause)."""
    from localtune.cli.chat_cmd import model_for_adapter
    from localtune.models.identity import base_mismatch

    step = tiny_run / "checkpoints" / "step-000004"
    assert model_for_adapter(None, str(step)) == str(tiny_model_dir)
    assert base_mismatch(step, tiny_model_dir) is None
