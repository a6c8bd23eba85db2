"""The judge's logic on a scripted model (next-token logits the test decides): probabilities read
from the label tokens, both orders, position bias as a tie, identical answers, batching, win rates;
then the same judge on the real tiny model (padding, adapter views) and the session/file reports."""

import json
import math

import pytest
from feedback_helpers import ScriptedJudgeModel, make_session

from localtune.feedback.constitution import Constitution, Principle
from localtune.feedback.judge import TIE, AdapterSwap, Judge, adapters_off, verdict_from, win_rates_from

ONE = Constitution((Principle("good", "Good answers are good."),))


def sig(x):
    return 1 / (1 + math.exp(-x))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from localtune.models import load_model

    return load_model(tiny_model_dir)


def scripted(tiny, bias=0.0, good=2.0, **kw):
    """A judge whose logit for A is +good when answer A says 'good', -good when B does, + bias."""
    model = ScriptedJudgeModel(tiny[1], lambda text: good if "good" in text else 0.0, bias)
    return Judge(model, tiny[1], ONE, **kw), model


def test_verdict_is_the_order_averaged_label_probability(tiny):
    judge, _ = scripted(tiny, bias=0.5)
    v = judge.compare("which?", "a good answer", "a poor one")
    # a shown first: logit 2 + 0.5; a shown second: P(A) = sig(-2 + 0.5), so P(a better) = sig(2 - 0.5)
    assert v.p_orders == pytest.approx((sig(2.5), sig(1.5)), abs=1e-6)
    assert v.p_a_better == pytest.approx((sig(2.5) + sig(1.5)) / 2, abs=1e-6)
    assert v.consistent and v.winner == "a" and v.confidence == pytest.approx(v.p_a_better)
    w = judge.compare("which?", "a poor one", "a good answer")  # the same pair, named the other way
    assert w.winner == "b" and w.p_a_better == pytest.approx(1 - v.p_a_better, abs=1e-6)


def test_a_verdict_that_flips_with_the_order_is_a_tie(tiny):
    judge, _ = scripted(tiny, bias=3.0)  # the first answer shown wins whatever it says
    v = judge.compare("which?", "a good answer", "a poor one")
    assert v.p_orders[0] > 0.5 > v.p_orders[1]  # a wins as A, loses as B
    assert not v.consistent and v.winner == "tie"
    assert v.p_a_better == pytest.approx((sig(5) + sig(-1)) / 2, abs=1e-6)  # still reported


def test_pure_position_bias_averages_to_one_half(tiny):
    judge, _ = scripted(tiny, bias=1.7, good=0.0)
    v = judge.compare("q", "x", "y")
    assert v.p_a_better == pytest.approx(0.5, abs=1e-6) and v.winner == "tie"


def test_identical_answers_are_a_tie_without_a_forward_pass(tiny):
    judge, model = scripted(tiny)
    assert judge.compare("q", "same text ", "same text") == TIE
    assert model.calls == 0


def test_compare_many_batches_both_orders_and_keeps_the_item_order(tiny):
    judge, model = scripted(tiny, batch_size=4)
    items = [("q1", "good", "bad"), ("q2", "bad", "good"), ("q3", "x", "x"), ("q4", "good " * 30, "meh")]
    verdicts = judge.compare_many(items)
    assert [v.winner for v in verdicts] == ["a", "b", "tie", "a"]
    assert model.rows == 6 and model.calls == 2  # 3 pairs x 2 orders, in batches of 4 rows
    seen = []
    judge.compare_many(items, on_progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (6, 6)


def test_win_rates_count_wins_ties_and_probabilities(tiny):
    judge, _ = scripted(tiny)
    assert judge.win_rates("q", ["good", "bad", "also bad"]) == pytest.approx([1.0, 0.25, 0.25])
    soft = judge.win_rates("q", ["good", "bad"], soft=True)
    assert soft == pytest.approx([sig(2), 1 - sig(2)], abs=1e-6)
    many = judge.win_rates_many([("q", ["bad", "good"]), ("r", ["good", "good!", "bad"])])
    assert many[0] == pytest.approx([0.0, 1.0]) and many[1] == pytest.approx([0.75, 0.75, 0.0])


def test_win_rates_from_and_verdict_from_by_hand():
    v = verdict_from(0.9, 0.2)  # a first: P(A)=0.9; b first: P(A)=0.2, so P(a better)=0.8
    assert v.p_orders == pytest.approx((0.9, 0.8)) and v.winner == "a" and v.p_a_better == pytest.approx(0.85)
    assert verdict_from(0.5, 0.5).winner == "tie"  # no preference in either order
    assert win_rates_from(3, {(0, 1): v, (0, 2): TIE, (1, 2): verdict_from(0.1, 0.9)}) == \
        pytest.approx([0.75, 0.0, 0.75])


def test_label_probabilities_on_a_real_model_match_a_full_softmax(tiny):
    """The judge's P(A) equals the model's own next-token softmax over the A and B tokens, and a
    batch of right-padded prompts gives each prompt what it gets alone."""
    import mlx.core as mx

    model, tok = tiny
    judge = Judge(model, tok, ONE, batch_size=3)
    items = [("short", "yes", "no"), ("a longer question here", "one answer", "another, longer answer"),
             ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}], "a" * 40, "b")]
    together = judge.compare_many(items)
    alone = [judge.compare(*it) for it in items]
    for t, a in zip(together, alone):
        assert t.p_orders == pytest.approx(a.p_orders, abs=1e-5)
    ids = judge.prompt_ids(*items[1])
    logits = model(mx.array([ids]))[0, -1].astype(mx.float32)
    a_id, b_id = judge.label_ids[0][0], judge.label_ids[1][0]
    expected = 1 / (1 + math.exp(-(logits[a_id] - logits[b_id]).item()))
    assert together[1].p_orders[0] == pytest.approx(expected, abs=1e-5)


def test_the_judge_on_a_shared_policy_uses_the_base_or_a_swapped_adapter(tiny_model_dir, tmp_path):
    """GRPO's case: one loaded model. adapters_off judges with the base; AdapterSwap with a judge
    adapter of the same shape; the policy's arrays and switches are back as they were after."""
    from localtune.lora import LoraSpec, adapter_layers, adapter_weights, attach_lora, load_adapter, save_adapter
    from localtune.models import load_model

    spec = LoraSpec(rank=4, alpha=8, layers=-1)
    judge_model, tok = load_model(tiny_model_dir)
    attach_lora(judge_model, spec)
    judge_model.load_weights(list(_randomized(adapter_weights(judge_model)).items()), strict=False)
    save_adapter(judge_model, tmp_path / "judge", spec)

    policy, _ = load_model(tiny_model_dir)
    attach_lora(policy, spec)
    policy.load_weights(list(_randomized(adapter_weights(policy), seed=2).items()), strict=False)
    before = {k: v for k, v in adapter_weights(policy).items()}
    items = [("q", "first answer", "second answer"), ("r", "yes", "no")]

    base, _ = load_model(tiny_model_dir)
    want_base = Judge(base, tok, ONE).compare_many(items)
    loaded, _ = load_model(tiny_model_dir)
    load_adapter(loaded, tmp_path / "judge")
    want_judge = Judge(loaded, tok, ONE).compare_many(items)

    got_base = Judge.on_policy(policy, tok, ONE).compare_many(items)
    got_judge = Judge.on_policy(policy, tok, ONE, judge_adapter=tmp_path / "judge").compare_many(items)
    for got, want in ((got_base, want_base), (got_judge, want_judge)):
        for g, w in zip(got, want):
            assert g.p_orders == pytest.approx(w.p_orders, abs=1e-5)
    assert got_base[0].p_orders != pytest.approx(got_judge[0].p_orders, abs=1e-4)  # they do differ
    after = adapter_weights(policy)
    assert all(after[k] is before[k] for k in before)  # the very arrays, no copy left behind
    assert all(layer.adapter_enabled for layer in adapter_layers(policy))
    with adapters_off(policy):
        assert not any(layer.adapter_enabled for layer in adapter_layers(policy))
    assert all(layer.adapter_enabled for layer in adapter_layers(policy))


def test_an_adapter_of_another_shape_is_refused(tiny_model_dir, tmp_path):
    from localtune.errors import RunError
    from localtune.lora import LoraSpec, attach_lora, save_adapter
    from localtune.models import load_model

    m, _ = load_model(tiny_model_dir)
    attach_lora(m, LoraSpec(rank=2, layers=-1))
    save_adapter(m, tmp_path / "r2", LoraSpec(rank=2, layers=-1))
    policy, _ = load_model(tiny_model_dir)
    attach_lora(policy, LoraSpec(rank=4, layers=-1))
    with pytest.raises(RunError, match="rank differ"):
        AdapterSwap(policy, tmp_path / "r2")


def _randomized(weights, seed=0):
    import mlx.core as mx

    out = {}
    for i, (k, v) in enumerate(sorted(weights.items())):
        out[k] = mx.random.normal(v.shape, key=mx.random.key(seed * 10_000 + i)) * 0.5
    return out


def test_judge_session_appends_verdicts_reports_agreement_with_the_person_and_resumes(tiny, tmp_path):
    from localtune.feedback.judging import judge_session
    from localtune.feedback.labels import replay
    from localtune.feedback.rating import Rater

    session = make_session(tmp_path / "s", prompts=3, k=3)
    items = list(session.items)
    # make candidate 1 of every prompt the 'good' one for the scripted judge
    from dataclasses import replace

    session.items = [replace(it, candidates=(it.candidates[0], replace(it.candidates[1], text="good one"),
                                             it.candidates[2])) for it in items]
    rater = Rater(session)
    rater.press("2"), rater.press("1")  # p0001: the person agrees (1 best)
    rater.press("1"), rater.press("2")  # p0002: the person prefers 0 over 1 (disagrees with the judge)
    rater.close()
    judge, model = scripted(tiny)
    events = []
    report = judge_session(session, judge, on_event=events.append)
    state = replay(session.records())
    assert sum(len(v) for v in state.judge.values()) == 9 and model.rows == 18
    assert {e["step"] for e in events if e["event"] == "feedback"} == {"start", "progress", "done"}
    # person's ordered pairs: p0001 best 1 worst 0 -> (0,1),(1,2),(0,2); p0002 best 0 worst 1 -> same pairs
    assert report.labelled_pairs == 6
    # the judge: 1 beats 0 and 2 (consistent); 0 vs 2 a tie (neither says good)
    # p0001 person: 1>2>0: (0,1) agree, (1,2) agree, (0,2) person 2>0, judge tie -> miss
    # p0002 person: 0>2>1: (0,1) disagree, (1,2) disagree, (0,2) tie -> miss
    assert report.agreement == pytest.approx(2 / 6)
    assert report.agreement_decided == pytest.approx(2 / 4)
    assert report.consistent == pytest.approx(6 / 9)
    assert not session.locked
    again = judge_session(session, judge)
    assert again.reused == 9 and model.rows == 18  # nothing judged twice


def test_judge_pairs_file_hides_the_labels_and_reports_agreement(tiny, tmp_path, echo_pairs):
    from localtune.data.preferences import read_preferences
    from localtune.feedback.judging import judge_pairs_file

    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "q1", "chosen": "good", "rejected": "bad", "system": "Be kind."},
            {"prompt": "q2", "chosen": "meh", "rejected": "good"},
            {"chosen": [{"role": "user", "content": "q3"}, {"role": "assistant", "content": "good!"}],
             "rejected": [{"role": "user", "content": "q3"}, {"role": "assistant", "content": "no"}]},
            {"prompt": "q4", "chosen": "x", "rejected": "y"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    judge, _ = scripted(tiny)
    report = judge_pairs_file(judge, path, tmp_path / "judged.jsonl")
    assert report.pairs == 4 and report.labelled_pairs == 4
    assert report.agreement == pytest.approx(0.5)  # q1, q3 right; q2 wrong; q4 tie
    assert report.agreement_decided == pytest.approx(2 / 3)
    assert report.consistent == pytest.approx(0.75)
    assert report.first_position == pytest.approx(0.5)
    out = [json.loads(line) for line in (tmp_path / "judged.jsonl").read_text().splitlines()]
    assert [r["judge"]["winner"] for r in out] == ["chosen", "rejected", "chosen", "tie"]
    assert out[0]["chosen"][0] == {"role": "system", "content": "Be kind."}  # system kept
    assert len(read_preferences(tmp_path / "judged.jsonl").examples) == 4  # still a pairs file


def test_training_rows_teach_the_label_in_both_orders(tiny, tiny_model_dir, tmp_path, capsys):
    from localtune.cli import main
    from localtune.data.formats import read_dataset
    from localtune.data.preferences import read_preferences

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "right", "rejected": "wrong", "system": "S"}) + "\n")
    judge = Judge(None, tiny[1], ONE)  # rows need the tokenizer only
    rows = judge.training_rows(read_preferences(path).examples)
    assert [r["messages"][-1] for r in rows] == [{"role": "assistant", "content": "A"},
                                                 {"role": "assistant", "content": "B"}]
    first, second = (r["messages"][1]["content"] for r in rows)
    assert first.index("right") < first.index("wrong") and second.index("wrong") < second.index("right")
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]
    assert rows[0]["messages"][:2] == judge.messages(prompt, "right", "wrong")
    out, const = tmp_path / "judge_train.jsonl", tmp_path / "c.yaml"
    const.write_text("- name: good\n  text: Good answers are good.\n")
    assert main(["feedback", "judge", "--pairs", str(path), "--judge-model", str(tiny_model_dir),
                 "--constitution", str(const), "--training-data", str(out)]) == 0
    assert "wrote 2 judge training rows" in capsys.readouterr().out
    assert [e.messages for e in read_dataset(out).examples] == [r["messages"] for r in rows]
