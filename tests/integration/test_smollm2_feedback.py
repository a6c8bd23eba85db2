"""The feedback loop on the real SmolLM2: its tokenizer gives the judge single-token labels, batched
verdicts equal one-at-a-time ones (right padding with a real tokenizer), a few sample pairs are
judged with a report whose numbers hang together, and a session of SmolLM2's own answers is
sampled, rated, judged and exported into pairs `train dpo` reads."""

import itertools
import json

import pytest

import localtune  # noqa: F401
from localtune.cli import main

pytestmark = pytest.mark.integration


def test_smollm2_as_judge_and_a_session_of_its_answers(smollm2_dir, tmp_path, capsys):
    from localtune.data.preferences import read_preferences
    from localtune.feedback import FeedbackSession, Rater, replay
    from localtune.feedback.judge import load_judge

    judge = load_judge(str(smollm2_dir), batch_size=4)
    assert all(len(ids) >= 1 for ids in judge.label_ids)
    pairs = tmp_path / "pairs.jsonl"
    with open("samples/dpo/valid.jsonl") as f:
        pairs.write_text("".join(itertools.islice(f, 3)))
    items = [(ex.prompt, ex.chosen, ex.rejected) for ex in read_preferences(pairs).examples]
    together = judge.compare_many(items)
    for t, it in zip(together, items):
        alone = judge.compare(*it)
        assert t.p_orders == pytest.approx(alone.p_orders, abs=2e-4)
        assert 0 < t.p_a_better < 1

    assert main(["feedback", "judge", "--pairs", str(pairs), "--judge-model", str(smollm2_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["pairs"] == 3 and report["labelled_pairs"] == 3
    decided = report["consistent"] * 3
    assert report["agreement"] * 3 <= decided + 1e-9  # a tie is never an agreement

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of France?\nName a primary color.\n")
    out = tmp_path / "session"
    assert main(["feedback", "sample", "--model", str(smollm2_dir), "--prompts", str(prompts), "--n", "2",
                 "--max-tokens", "24", "--out", str(out)]) == 0
    session = FeedbackSession.open(out)
    assert len(session.items) == 2
    rater = Rater(session)
    rater.press("1")
    rater.close()
    assert main(["feedback", "judge", str(out), "--judge-model", str(smollm2_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["pairs"] == 2 and report["labelled_pairs"] == 1
    assert sum(len(v) for v in replay(session.records()).judge.values()) == 2
    assert main(["feedback", "export", str(out), "--out", str(tmp_path / "out.jsonl")]) == 0
    exported = read_preferences(tmp_path / "out.jsonl").examples
    assert 1 <= len(exported) <= 2  # the person's pair, and the judge's if its verdict was consistent
