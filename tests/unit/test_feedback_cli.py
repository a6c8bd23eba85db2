"""`localtune feedback` end to end on the tiny model and fixed sessions: sample, rate in a plain
terminal (piped keys; a rater killed with SIGKILL loses no label it acknowledged), judge --pairs
--json, critique-revise, show."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from feedback_helpers import make_session

from localtune.cli import main
from localtune.feedback import FeedbackSession, replay

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("say hi\n\nname a color\ncount to three\n")
    return path


def test_sample_makes_a_session_of_distinct_answers(tiny_untied_model_dir, prompts, tmp_path, capsys):
    tiny_model_dir = tiny_untied_model_dir
    out = tmp_path / "session"
    assert main(["feedback", "sample", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--n", "3",
                 "--max-tokens", "8", "--temperature", "1.0", "--seed", "3", "--out", str(out)]) == 0
    s = FeedbackSession.open(out)
    assert s.manifest["n"] == 3 and s.manifest["sampling"]["temperature"] == 1.0
    assert s.manifest["sampling"]["top_p"] == 0.95  # the feedback default where no flag was given
    assert s.manifest["prompt_sets"][0]["rows"] == 3
    assert len(s.items) == 3 and [it.messages[-1]["content"] for it in s.items] == ["say hi", "name a color",
                                                                                    "count to three"]
    for it in s.items:
        texts = [c.text.strip() for c in it.candidates]
        assert 2 <= len(texts) <= 3 and len(set(texts)) == len(texts) and all(texts)
        assert all(c.seed is not None and c.temperature == 1.0 for c in it.candidates)
    assert f"next: localtune feedback rate {out}" in capsys.readouterr().out
    # same flags into another folder: the same answers (keyed draws)
    again = tmp_path / "again"
    main(["feedback", "sample", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--n", "3",
          "--max-tokens", "8", "--temperature", "1.0", "--seed", "3", "--out", str(again)])
    assert FeedbackSession.open(again).items == s.items


def test_sample_with_temperatures_and_refusals(tiny_untied_model_dir, prompts, tmp_path, capsys):
    tiny_model_dir = tiny_untied_model_dir
    out = tmp_path / "t"
    assert main(["feedback", "sample", "--model", str(tiny_model_dir), "--prompts", str(prompts),
                 "--temperatures", "0,1.2", "--max-tokens", "6", "--out", str(out)]) == 0
    s = FeedbackSession.open(out)
    assert s.manifest["n"] == 2 and s.manifest["temperatures"] == [0.0, 1.2]
    assert {c.temperature for it in s.items for c in it.candidates} <= {0.0, 1.2}
    capsys.readouterr()
    assert main(["feedback", "sample", "--prompts", str(prompts), "--n", "5", "--out", str(tmp_path / "x")]) == 2
    assert "2..4" in capsys.readouterr().err
    assert main(["feedback", "sample", "--model", str(tiny_model_dir), "--prompts", str(prompts),
                 "--temperature", "0", "--out", str(tmp_path / "g")]) == 2
    assert "greedy" in capsys.readouterr().err and not (tmp_path / "g").exists()
    assert main(["feedback", "sample", "--model", str(tiny_model_dir), "--prompts", str(prompts),
                 "--out", str(out)]) == 2
    assert "a feedback session already" in capsys.readouterr().err


def _rater(session_dir, **kw):
    return subprocess.Popen([sys.executable, "-m", "localtune", "feedback", "rate", str(session_dir)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "EDITOR": "", "VISUAL": ""}, **kw)


def _until(proc, text, timeout=60):
    """stdout lines up to (and including) the first holding `text`."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"rater ended before {text!r}: {lines[-5:]} {proc.stderr.read()}")
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {timeout}s")


def test_rate_with_piped_keys_including_an_inline_edit(tmp_path):
    s = make_session(tmp_path / "s", prompts=4, k=3)
    keys = "2 3\n1n\ne2\nA corrected answer.\nSecond line.\n.\nt"
    done = subprocess.run([sys.executable, "-m", "localtune", "feedback", "rate", str(s.path)], cwd=ROOT,
                          input=keys, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "EDITOR": ""})
    assert done.returncode == 0, done.stderr
    assert "1/4 · p0001" in done.stdout and "answer 0.2" in done.stdout and "end of input" in done.stdout
    state = replay(s.records())
    assert state.human["p0001"]["order"] == [[1], [0], [2]]
    assert state.human["p0002"]["order"] == [[0], [1, 2]]
    assert state.human["p0003"]["text"] == "A corrected answer.\nSecond line."
    assert state.human["p0004"]["type"] == "tie"
    assert "all 4 prompts rated" in done.stdout


def test_a_killed_rating_session_loses_no_given_label(tmp_path):
    """SIGKILL a real `localtune feedback rate` process mid-session: every label it acknowledged
    is in the log, and a new process continues at the first prompt without one."""
    s = make_session(tmp_path / "s", prompts=8, k=2)
    proc = _rater(s.path)
    acked = []
    try:
        for key in "12t1":
            proc.stdin.write(key)
            proc.stdin.flush()
            acked += [line for line in _until(proc, "saved:") if line.startswith("saved:")]
        proc.stdin.write("2s")  # more keys in flight, then the kill lands wherever it lands
        proc.stdin.flush()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) == 4
    state = replay(FeedbackSession.open(s.path).records())
    for line, prompt in zip(acked, ["p0001", "p0002", "p0003", "p0004"]):
        assert prompt in line and prompt in state.human  # acknowledged -> on disk
    assert [state.human[p]["type"] for p in ["p0001", "p0002", "p0003", "p0004"]] == ["rank", "rank", "tie", "rank"]
    given = len(state.human)
    assert 4 <= given <= 6
    # a new rater process takes over the (stale) lock and continues
    again = subprocess.run([sys.executable, "-m", "localtune", "feedback", "rate", str(s.path)], cwd=ROOT,
                           input="q", capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"{given + 1}/8 · p{given + 1:04d}" in again.stdout
    assert f"{given}/8 rated" in again.stdout


def test_judge_pairs_json_last_line(tiny_model_dir, tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"yes {i}", "rejected": "no"}) + "\n"
                             for i in range(3)))
    const = tmp_path / "c.yaml"
    const.write_text("- name: short\n  text: Short answers are better.\n")
    assert main(["feedback", "judge", "--pairs", str(pairs), "--judge-model", str(tiny_model_dir),
                 "--constitution", str(const), "--out", str(tmp_path / "judged.jsonl"), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert report["pairs"] == 3 and {"agreement", "consistent", "first_position"} <= set(report)
    assert 0 <= report["consistent"] <= 1 and report["judge"]["constitution"]
    assert any(line.startswith("consistent (verdict survives the order swap)") for line in out)
    judged = [json.loads(x) for x in (tmp_path / "judged.jsonl").read_text().splitlines()]
    assert len(judged) == 3 and all(j["judge"]["winner"] in ("chosen", "rejected", "tie") for j in judged)
    const.write_text("- name: short\n  txt: Short\n")
    assert main(["feedback", "judge", "--pairs", str(pairs), "--judge-model", str(tiny_model_dir),
                 "--constitution", str(const)]) == 2
    assert f"{const}:2: unknown key 'txt'" in capsys.readouterr().err


def test_judge_on_a_session_then_show_and_export(tiny_model_dir, tmp_path, capsys):
    s = make_session(tmp_path / "s", prompts=2, k=2)
    assert main(["feedback", "judge", str(s.path), "--judge-model", str(tiny_model_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["pairs"] == 2 and report["labelled_pairs"] == 0
    assert main(["feedback", "show", str(s.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["judge_verdicts"] == 2 and info["human"]["rated"] == 0
    assert main(["feedback", "judge", "--judge-model", str(tiny_model_dir)]) == 2
    assert "give a session DIR" in capsys.readouterr().err


def test_critique_revise_asks_by_a_principle_then_for_a_revision(monkeypatch, tmp_path):
    """The conversation critique-revise builds, checked on a stand-in generator."""
    from localtune import generate
    from localtune.feedback.constitution import load_constitution
    from localtune.feedback.critique import critique_session
    from localtune.generate import Completion, Sampling

    seen = []

    def fake_generate(model, tokenizer, prompts, sampling, **kw):
        seen.append(prompts)
        if len(seen) == 1:
            texts = [f"critique {i}" for i in range(len(prompts))]
        else:  # the first 'revision' repeats the answer (unusable), the second is new (its label is cut)
            texts = [prompts[0][2]["content"]] + [f"Revised answer: better {i}" for i in range(1, len(prompts))]
        return [Completion(t, [1], "stop", 3, i) for i, t in enumerate(texts)]

    monkeypatch.setattr(generate, "generate_batch", fake_generate)
    s = make_session(tmp_path / "s", prompts=1, k=2, system="Be brief.")
    constitution = load_constitution()
    counts = critique_session(s, None, None, constitution, Sampling(temperature=0.7))
    critique_prompts, revise_prompts = seen
    first = critique_prompts[0]
    assert first[:3] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "question 0"},
                         {"role": "assistant", "content": "answer 0.0"}]
    assert first[3]["role"] == "user" and any(p.critique_request() == first[3]["content"]
                                               for p in constitution.principles)
    assert revise_prompts[0][4] == {"role": "assistant", "content": "critique 0"}
    assert revise_prompts[0][5]["role"] == "user" and revise_prompts[0][5]["content"].endswith("revised answer only.")
    revisions = replay(s.records()).revisions["p0001"]
    assert [(r["revision"], r["usable"]) for r in revisions] == [("answer 0.0", False), ("better 1", True)]
    assert counts == {"answers": 2, "usable": 1, "unfinished": 0, "already_revised": 0}
    assert critique_session(s, None, None, constitution, Sampling())["answers"] == 0  # nothing left to revise


def test_critique_revise_cli_on_the_tiny_model(tiny_model_dir, tmp_path, capsys):
    s = make_session(tmp_path / "s", prompts=2, k=2)
    assert main(["feedback", "judge", str(s.path), "--critique-revise", "--judge-model", str(tiny_model_dir),
                 "--max-tokens", "6", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    revisions = [r for rs in replay(s.records()).revisions.values() for r in rs]
    assert counts["answers"] == 4 == len(revisions)
    from localtune.feedback.constitution import load_constitution

    names = set(load_constitution().names())
    assert all(r["principle"] in names and r["model"] for r in revisions)
    assert counts["usable"] == sum(r["usable"] for r in revisions)
    assert all(r["usable"] is False for r in revisions if not r["ended"])
