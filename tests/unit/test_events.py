"""Events as code: every event round-trips through its dict form, readers get typed classes back,
the phase reporter throttles counted stages, and the metric registry decides what is shown."""

import pytest

from localtune import events


SAMPLES = [
    events.Phase("scoring_reference", 40, 120, 12.5),
    events.Phase("training", None, None, 13.0),
    events.Model("/m"),
    events.Download("me/model", stage="start", message="downloading"),
    events.Import("read", path="/x.gguf", message="reading"),
    events.Data("train", "/d.jsonl", "messages", 10, 9, problems=1, truncated=2, dropped=1, tokens=99),
    events.DataProblem("train", "d.jsonl:3: bad row"),
    events.Reference("train", "computed", "/r", 12, "abc", 1.5),
    events.Start("/run", 10, 0, 5, 100, 1000, weight_unit="pairs"),
    events.Train(step=3, train_loss=1.25, lr=1e-4, tokens_per_sec=10.0, trained_tokens=300, tokens=400,
                 weight_total=12.0, weight_unit="pairs", peak_memory_gb=0.5, elapsed=2.0, time=99.0,
                 metrics={"reward_accuracy": 0.75}),
    events.Val(step=4, val_loss=1.5, val_time=0.3, metrics={"val_reward_margin": 0.2}),
    events.Skipped(5, "non-finite loss"),
    events.Checkpoint(6, "/run/ckpt"),
    events.UnusableCheckpoint("/run/ckpt", "optimizer.safetensors is truncated"),
    events.Resumed(6, "/run/ckpt"),
    events.Notice("careful"),
    events.Warn("another base"),
    events.RewardModelOpened("/rm", "/m", True, "scoring inside the caller's model", source="/rm"),
    events.EvalProgress("done", "base", seconds=3.5, numbers={"ended": 0.9, "loops": 0.05}),
    events.FeedbackProgress("judge", "progress", done=4, total=12, model="/m"),
    events.Stopped(7),
    events.Done("finished", "/run", 7),
    events.EarlyStop(8, "eval_loops", 3, best_step=4, best=0.05),
    events.BestCheckpoint(4, "eval_loops", 0.05, 8, "/run/checkpoints/step-4"),
]


@pytest.mark.parametrize("ev", SAMPLES, ids=lambda e: e.name)
def test_every_event_round_trips_through_its_dict(ev):
    d = ev.to_dict()
    assert d["event"] == ev.name
    assert events.parse(d) == ev
    assert events.parse(dict(d)).to_dict() == d


def test_every_event_class_is_sampled():
    assert {e.name for e in SAMPLES} == set(events.names())


def test_metrics_travel_flat_and_come_back_as_metrics():
    d = SAMPLES[9].to_dict()
    assert d["reward_accuracy"] == 0.75 and "metrics" not in d  # flat on the wire, as metrics.jsonl has it
    back = events.parse({**d, "new_metric": 2.0, "note": "text"})
    assert back.metrics == {"reward_accuracy": 0.75, "new_metric": 2.0}  # numbers only
    assert back.values()["train_loss"] == 1.25 and back.values()["new_metric"] == 2.0


def test_the_phase_event_is_exactly_the_documented_shape():
    assert SAMPLES[0].to_dict() == {"event": "phase", "phase": "scoring_reference", "done": 40, "total": 120,
                                    "time": 12.5}
    assert SAMPLES[1].to_dict() == {"event": "phase", "phase": "training", "done": None, "total": None,
                                    "time": 13.0}
    assert set(events.PHASES) == {"loading_model", "preparing_data", "scoring_reference", "training",
                                  "generating", "scoring", "evaluating", "saving", "stopping"}
    assert SAMPLES[0].text() == "scoring reference 40/120" and SAMPLES[1].text() == "training"


def test_reading_is_tolerant():
    assert events.parse({"event": "no-such-event"}) is None
    assert events.parse({"step": 1, "train_loss": 2.0}) is None  # no name: not an event
    assert events.parse({"event": "stopped"}) == events.Stopped(None)  # a field missing: None
    nan_loss = events.Train(step=1, train_loss=None).to_dict()
    assert nan_loss["train_loss"] is None  # a non-finite loss is written as null, not left out


def test_phase_reporter_sends_changes_at_once_and_counts_at_most_once_a_second():
    sent, now = [], [100.0]
    phase = events.PhaseReporter(sent.append, clock=lambda: now[0])
    phase("loading_model")
    phase("loading_model")  # no change: nothing new to say
    progress = phase.counter("scoring_reference", 100)
    for done in range(1, 101):
        now[0] += 0.05  # 20 batches a second
        progress(done)
    phase.counter("scoring_reference", 30)  # the next file: its 0/30 is news
    phase("training")
    got = [(e["phase"], e["done"], e["total"]) for e in sent]
    assert got[:2] == [("loading_model", None, None), ("scoring_reference", 0, 100)]
    counts = [d for p, d, t in got if t == 100]
    assert counts[-1] == 100  # the last count always goes out
    assert len(counts) <= 2 + 5  # 5 s of counting: about one a second, not one per batch
    assert got[-2:] == [("scoring_reference", 0, 30), ("training", None, None)]
    with pytest.raises(ValueError, match="unknown phase"):
        phase("thinking")


def test_the_registry_decides_labels_plots_and_the_summary():
    reg = events.metric_set([{"key": "reward_mean", "label": "reward", "plot": "reward", "summary": True,
                              "fmt": ".2f"}])
    assert events.plot_labels("loss", reg) == ("train", "valid")
    assert "reward" in events.plot_labels("reward", reg)
    text = events.summary_text({"train_loss": 1.23456, "reward_mean": 0.5, "lr": 1.0, "tokens_per_sec": 99.4}, reg)
    assert text == "train 1.2346  99 tok/s  reward 0.50"  # registry order; lr is no summary metric
    assert events.metric_set([{"bogus": 1}]) == events.metric_set()  # a malformed declaration is ignored
    assert events.Metric("x", "x").text(float("nan")) == "x nan"


def test_early_stop_and_best_checkpoint_say_which_step():
    assert SAMPLES[-2].text() == ("stopping early at step 8: eval_loops has not improved for 3 evaluations "
                                  "(best 0.05 at step 4)")
    assert SAMPLES[-1].text() == ("best checkpoint: step 4 (eval_loops 0.05); the run's adapter is that "
                                  "step's (training ended at step 8)")
    assert events.BestCheckpoint(None, "val_loss", None, 8).text().endswith("the adapter is the last step's")
