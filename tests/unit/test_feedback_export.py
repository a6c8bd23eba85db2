"""Labels to training files: which pairs each kind of label gives, SFT rows of corrected answers,
the person over the judge, --min-confidence, and exported pairs that `train dpo` trains on."""

import json
import pytest
from feedback_helpers import make_session

from localtune.data.preferences import read_preferences
from localtune.errors import LocaltuneError
from localtune.feedback import FeedbackSession, Rater, export_session, session_rows
from localtune.feedback.session import Candidate, PromptItem, item_id


def judged(session, prompt, a, b, p1, p2, judge="j1"):
    """Append a judge verdict: P(a better) p1 with a first, p2 with a second."""
    from localtune.feedback.judge import verdict_from

    v = verdict_from(p1, 1 - p2)
    with session:
        session.append({"source": "judge", "type": "judge", "prompt": prompt, "a": a, "b": b, **v.to_json(),
                        "judge": judge})


def test_each_kind_of_person_label_gives_its_pairs(tmp_path):
    s = make_session(tmp_path / "s", prompts=5, k=3, system="Be brief.")
    r = Rater(s)
    r.press("2"), r.press("3")  # p0001: 1 best, 2 worst
    r.press("1"), r.press("n")  # p0002: 0 best, no worst
    r.press("t")  # p0003
    r.press("s")  # p0004
    r.press("e"), r.press("3"), r.submit_edit("fixed answer")  # p0005: edit of 2
    r.close()
    pairs, sft, report = session_rows(s)
    got = [(p["prompt_id"], p["chosen"][-1]["content"], p["rejected"][-1]["content"]) for p in pairs]
    assert got == [("p0001", "answer 0.1", "answer 0.2"), ("p0002", "answer 1.0", "answer 1.1"),
                   ("p0002", "answer 1.0", "answer 1.2"), ("p0005", "fixed answer", "answer 4.2")]
    assert pairs[0]["chosen"][:2] == [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "question 0"}]
    assert all(p["source"] == "human" and p["confidence"] == 1.0 for p in pairs)
    assert sft == [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "question 4"},
                                 {"role": "assistant", "content": "fixed answer"}],
                    "source": "human", "prompt_id": "p0005"}]
    assert report.left_out == {"tie": 1, "skip": 1}
    every, _, _ = session_rows(s, all_pairs=True)
    assert len(every) == 3 + 2 + 3  # 1>0>2 (3 pairs), 0 over 1 and 2, the edit over all three


def test_judge_pairs_min_confidence_and_the_person_first(tmp_path):
    s = make_session(tmp_path / "s", prompts=3, k=2)
    judged(s, "p0001", 0, 1, 0.9, 0.8)  # 0 better, confidence 0.85
    judged(s, "p0002", 0, 1, 0.4, 0.3)  # 1 better, confidence 0.65
    judged(s, "p0003", 1, 0, 0.9, 0.2)  # flips with the order: tie
    pairs, _, report = session_rows(s)
    assert [(p["prompt_id"], p["chosen"][-1]["content"], p["confidence"]) for p in pairs] == \
        [("p0001", "answer 0.0", 0.85), ("p0002", "answer 1.1", 0.65)]
    assert report.left_out == {"judge_tie": 1}
    high, _, report = session_rows(s, min_confidence=0.7)
    assert [p["prompt_id"] for p in high] == ["p0001"] and report.left_out["low_confidence"] == 1
    r = Rater(s)
    r.press("2"), r.press("t")  # the person disagrees on p0001 and calls p0002 a tie
    r.close()
    pairs, _, _ = session_rows(s)
    assert [(p["prompt_id"], p["source"], p["chosen"][-1]["content"]) for p in pairs] == \
        [("p0001", "human", "answer 0.1")]
    judge_only, _, _ = session_rows(s, sources=("judge",))
    assert [p["prompt_id"] for p in judge_only] == ["p0001", "p0002"]
    with pytest.raises(LocaltuneError, match="unknown label source"):
        session_rows(s, sources=("robot",))


def test_judge_default_is_best_over_worst_by_win_rate(tmp_path):
    s = make_session(tmp_path / "s", prompts=1, k=3)
    judged(s, "p0001", 0, 1, 0.2, 0.3)  # 1 > 0
    judged(s, "p0001", 1, 2, 0.8, 0.9)  # 1 > 2
    judged(s, "p0001", 0, 2, 0.7, 0.6)  # 0 > 2
    pairs, _, _ = session_rows(s)
    assert [(p["chosen"][-1]["content"], p["rejected"][-1]["content"]) for p in pairs] == \
        [("answer 0.1", "answer 0.2")]
    assert pytest.approx(pairs[0]["confidence"]) == 0.85
    assert len(session_rows(s, all_pairs=True)[0]) == 3


def test_critique_revisions_give_pairs_and_sft_rows(tmp_path):
    s = make_session(tmp_path / "s", prompts=1, k=2)
    with s:
        for cand, usable in ((0, True), (1, False)):
            s.append({"source": "critique", "type": "revision", "prompt": "p0001", "candidate": cand,
                      "principle": "correct", "critique": "c", "revision": f"revised {cand}", "ended": usable,
                      "usable": usable, "model": "m"})
    pairs, sft, report = session_rows(s)
    assert [(p["chosen"][-1]["content"], p["rejected"][-1]["content"], p["confidence"]) for p in pairs] == \
        [("revised 0", "answer 0.0", None)]
    assert sft[0]["messages"][-1]["content"] == "revised 0" and sft[0]["principle"] == "correct"
    assert report.left_out == {"unusable_revision": 1}


def test_export_writes_files_atomically_and_refuses_to_overwrite(tmp_path):
    s = make_session(tmp_path / "s", prompts=2)
    with pytest.raises(LocaltuneError, match="no preference pairs yet"):
        export_session(s, tmp_path / "pairs.jsonl")
    r = Rater(s)
    r.press("1"), r.press("e"), r.press("1"), r.submit_edit("better")
    r.close()
    report = export_session(s, tmp_path / "pairs.jsonl")
    assert report.pairs == 2 and report.sft_rows == 1 and report.sft_out == str(tmp_path / "pairs.sft.jsonl")
    assert len(read_preferences(tmp_path / "pairs.jsonl").examples) == 2
    from localtune.data.formats import read_dataset

    sft = read_dataset(tmp_path / "pairs.sft.jsonl")  # what `train sft --data` reads
    assert sft.format == "messages" and [e.messages[-1]["content"] for e in sft.examples] == ["better"]
    with pytest.raises(LocaltuneError, match="exists"):
        export_session(s, tmp_path / "pairs.jsonl")
    assert export_session(s, tmp_path / "pairs.jsonl", overwrite=True).pairs == 2


def test_exported_pairs_train_with_train_dpo(tiny_model_dir, tmp_path, echo_words):
    """A person prefers the answer that ends with ' #' (the learnable echo preference); the export
    trains with `localtune train dpo`, and the DPO loss falls from log 2."""
    import random

    from localtune.cli import main
    from localtune.runs import RunDir, read_metrics

    rng = random.Random(0)
    items = []
    for i in range(16):
        w = " ".join(rng.sample(echo_words, 2))
        cands = [Candidate(f"{w} #"), Candidate(w)]
        rng.shuffle(cands)
        items.append(PromptItem(item_id(i), [{"role": "user", "content": f"echo {w}"}], tuple(cands)))
    s = FeedbackSession.create(tmp_path / "s", {"model": str(tiny_model_dir)}, items)
    r = Rater(s)
    for it in items:
        r.press("1" if it.candidates[0].text.endswith("#") else "2")
    r.close()
    assert main(["feedback", "export", str(s.path), "--out", str(tmp_path / "pairs.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(r["chosen"][-1]["content"].endswith("#") for r in rows)
    out = tmp_path / "run"
    (tmp_path / "cfg.yaml").write_text("report_every: 1\n")  # a loss for every step
    assert main(["train", "dpo", "--config", str(tmp_path / "cfg.yaml"), "--model", str(tiny_model_dir),
                 "--data", str(tmp_path / "pairs.jsonl"), "--out", str(out), "--iters", "8", "--batch-size", "4",
                 "--lora-layers", "-1", "--lr", "5e-3", "--eval-every", "0", "--save-every", "0"]) == 0
    assert RunDir(out).read()["status"] == "finished"
    losses = [e["train_loss"] for e in read_metrics(out) if e["event"] == "train"]
    assert len(losses) == 8
    assert losses[0] == pytest.approx(0.6931, abs=0.02)  # policy == reference at the start
    assert min(losses[-3:]) < losses[0] - 0.05, losses
