"""The feedback session directory and the rating keys: creation only where localtune may write,
the labels log (append, fsync, torn tail, undo as a record, replay), and the Rater's steps."""

import json
import os

import pytest
from feedback_helpers import make_session

from localtune.errors import RunError
from localtune.feedback import FeedbackSession, Rater, SessionError, list_sessions, replay
from localtune.feedback.labels import preferred_pairs, rank_order
from localtune.feedback.session import LABELS_FILE, LOCK_FILE, SESSION_FILE


def test_a_session_is_created_only_in_a_new_or_empty_folder(tmp_path):
    s = make_session(tmp_path / "new", prompts=2)
    assert s.manifest["status"] == "ready" and s.manifest["prompts"] == 2 and not s.locked
    assert not (tmp_path / "new" / LOCK_FILE).exists()
    (tmp_path / "empty").mkdir()
    make_session(tmp_path / "empty", prompts=1)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(SessionError, match="not empty"):
        make_session(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(SessionError, match="a feedback session already"):
        make_session(tmp_path / "new")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SessionError, match="not a folder"):
        make_session(tmp_path / "file")


def test_an_interrupted_sampling_can_be_started_again_but_not_opened(tmp_path):
    s = FeedbackSession.begin(tmp_path / "s", {"model": "m"})
    s.release()  # as if the sampler died
    with pytest.raises(SessionError, match="sampling did not finish"):
        FeedbackSession.open(tmp_path / "s")
    make_session(tmp_path / "s", prompts=2)  # ours, unfinished: taken over
    assert len(FeedbackSession.open(tmp_path / "s").items) == 2


def test_abandon_removes_only_what_begin_wrote(tmp_path):
    s = FeedbackSession.begin(tmp_path / "a", {"model": "m"})
    s.abandon()
    assert not (tmp_path / "a").exists()
    (tmp_path / "yours").mkdir()  # an empty folder the user made stays
    s = FeedbackSession.begin(tmp_path / "yours", {"model": "m"})
    s.abandon()
    assert (tmp_path / "yours").is_dir() and not any((tmp_path / "yours").iterdir())


def test_open_refuses_a_folder_that_is_not_a_session(tmp_path):
    (tmp_path / SESSION_FILE).write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(SessionError, match="not a feedback session"):
        FeedbackSession.open(tmp_path)


def test_candidates_round_trip(tmp_path):
    s = make_session(tmp_path / "s", prompts=2, k=3, system="Be brief.")
    back = FeedbackSession.open(tmp_path / "s")
    assert back.items == s.items
    assert back.items[1].messages[0] == {"role": "system", "content": "Be brief."}


def test_labels_need_the_lock_and_one_writer_at_a_time(tmp_path):
    s = make_session(tmp_path / "s")
    with pytest.raises(RunError, match="lock"):
        s.append({"type": "skip", "prompt": "p0001"})
    with s:
        other = FeedbackSession.open(tmp_path / "s")
        with pytest.raises(RunError, match="in use by process"):
            other.acquire()
        s.append({"type": "skip", "prompt": "p0001", "source": "human"})
    assert [r["seq"] for r in s.records()] == [1]


def test_a_torn_last_line_is_skipped_and_cut_by_the_next_writer(tmp_path):
    s = make_session(tmp_path / "s")
    with s:
        s.append({"type": "skip", "prompt": "p0001", "source": "human"})
    with open(s.labels_path, "ab") as f:
        f.write(b'{"seq": 2, "type": "rank", "pro')  # a kill inside write()
    assert len(s.records()) == 1
    with s:
        s.append({"type": "tie", "prompt": "p0002", "source": "human"})
    lines = s.labels_path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["seq"] == 2


def test_rank_orders_and_the_pairs_they_give():
    assert rank_order(2, 1, 0) == [[1], [0]]
    assert rank_order(3, 2, None) == [[2], [0, 1]]
    assert rank_order(4, 0, 3) == [[0], [1, 2], [3]]
    assert preferred_pairs([[0], [1, 2], [3]], all_pairs=False) == [(0, 3)]
    assert preferred_pairs([[0], [1, 2], [3]], all_pairs=True) == [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)]
    assert preferred_pairs([[2], [0, 1]], all_pairs=False) == [(2, 0), (2, 1)]
    assert preferred_pairs([[0, 1]], all_pairs=True) == []


def test_rater_keys_with_two_candidates(tmp_path):
    s = make_session(tmp_path / "s", prompts=4, k=2)
    r = Rater(s, "ann")
    assert r.item.id == "p0001" and r.progress().text().startswith("0/4")
    assert r.press("2").kind == "saved"
    assert r.press("t").kind == "saved"
    assert r.press("S").kind == "saved"  # letters are case-insensitive
    assert r.press("3").kind == "ignored"  # only two answers
    assert r.press("x").kind == "ignored"
    assert r.item.id == "p0004"
    assert r.press("u").kind == "undone" and r.item.id == "p0003"
    state = replay(s.records())
    assert state.human["p0001"]["order"] == [[1], [0]] and state.human["p0001"]["rater"] == "ann"
    assert state.human["p0002"]["type"] == "tie" and "p0003" not in state.human
    p = r.progress()
    assert (p.done, p.ranked, p.ties, p.skipped) == (2, 1, 1, 0)
    r.close()
    assert not s.locked


def test_rater_best_then_worst_with_four_candidates_and_back(tmp_path):
    s = make_session(tmp_path / "s", prompts=3, k=4)
    r = Rater(s)
    assert r.press("3").kind == "pending" and r.step == "worst"
    assert r.press("3").kind == "ignored"  # the best cannot be the worst
    assert r.press("u").kind == "undone" and r.step == "best"  # back, nothing saved
    assert s.records() == []
    r.press("3")
    assert r.press("1").kind == "saved"
    r.press("2")
    assert r.press("enter").kind == "saved"  # no worst
    state = replay(s.records())
    assert state.human["p0001"]["order"] == [[2], [1, 3], [0]]
    assert state.human["p0002"]["order"] == [[1], [0, 2, 3]] and state.human["p0002"]["worst"] is None
    r.close()


def test_rater_edit_saves_a_corrected_answer(tmp_path):
    s = make_session(tmp_path / "s", prompts=2, k=2)
    r = Rater(s)
    assert r.press("e").kind == "pending"
    assert r.press("2").kind == "edit" and r.edit_target == 1
    assert r.submit_edit("answer 0.1").kind == "ignored"  # unchanged
    assert r.submit_edit("   ").kind == "ignored"  # empty
    assert r.submit_edit("A better answer.\n").kind == "saved"
    label = replay(s.records()).human["p0001"]
    assert label == {**label, "type": "edit", "candidate": 1, "text": "A better answer."}
    r.press("e"), r.press("1")
    assert r.cancel_edit().kind == "undone" and r.item.id == "p0002" and r.step == "best"
    r.close()


def test_reopening_continues_where_rating_stopped_and_undo_walks_back(tmp_path):
    s = make_session(tmp_path / "s", prompts=5)
    r = Rater(s)
    for key in "12t":
        r.press(key)
    r.close()
    r = Rater(FeedbackSession.open(tmp_path / "s"))
    assert r.item.id == "p0004" and r.progress().done == 3
    r.press("u"), r.press("u")
    assert r.item.id == "p0002"
    r.press("s")
    assert r.item.id == "p0003"  # the next prompt without a label
    state = replay(r.session.records())
    assert state.human["p0002"]["type"] == "skip" and state.human["p0001"]["best"] == 0
    types = [rec["type"] for rec in r.session.records()]
    assert types == ["rank", "rank", "tie", "undo", "undo", "skip"]  # undo is a record, nothing deleted
    r.close()


def test_rating_everything_then_done(tmp_path):
    s = make_session(tmp_path / "s", prompts=2)
    r = Rater(s)
    r.press("1"), r.press("1")
    assert r.item is None and r.step == "done" and r.press("1").kind == "done"
    assert "every prompt is rated" in r.hint()
    assert r.press("q").kind == "quit"
    r.close()


def test_list_sessions_finds_sessions_and_runs_sessions(tmp_path):
    make_session(tmp_path / "feedback" / "a")
    run = tmp_path / "adapters" / "run1"
    make_session(run / "feedback" / "20250101-000000")
    (tmp_path / "feedback" / "other").mkdir()
    found = list_sessions(tmp_path / "feedback", tmp_path / "adapters")
    assert set(found) == {tmp_path / "feedback" / "a", run / "feedback" / "20250101-000000"}


def test_labels_file_is_fsynced_per_label(tmp_path, monkeypatch):
    s = make_session(tmp_path / "s")
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    r = Rater(s)
    before = len(synced)
    r.press("1")
    assert len(synced) == before + 1 and (tmp_path / "s" / LABELS_FILE).exists()
    r.close()
