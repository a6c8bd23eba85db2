"""Train screen: a real trainer subprocess on the tiny model, followed live; a failing run; the
plan (predicted memory and speed) of the form's run."""

from __future__ import annotations

import time

import pytest
from textual.widgets import ProgressBar
from tui_helpers import SAMPLES, paste_into, type_into, wait_for_workers, wait_until

from localtune.runs import RunDir, list_checkpoints
from tui import create_app
from tui.widgets.curve_plot import CurvePlot

pytestmark = pytest.mark.asyncio


async def test_start_short_run_and_follow_it(tui_env, tiny_model_dir):
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        await paste_into(pilot, "#f-model", str(tiny_model_dir))
        await paste_into(pilot, "#f-data", str(SAMPLES / "sft" / "train.jsonl"))
        await paste_into(pilot, "#f-valid", str(SAMPLES / "sft" / "valid.jsonl"))
        await type_into(pilot, "#f-iters", "6")
        await type_into(pilot, "#f-batch_size", "2")
        await type_into(pilot, "#f-eval_every", "3")
        await type_into(pilot, "#f-report_every", "1")
        await type_into(pilot, "#f-name", "tiny-run")
        t0 = time.monotonic()
        await pilot.press("ctrl+s")
        screen = app.screen
        plot = screen.query_one("#loss-plot", CurvePlot)
        seen = []

        def finished():
            seen.append(plot.point_count)
            return screen.run_status == "finished" and plot.point_count >= 9 and screen.proc is None

        await wait_until(pilot, finished, timeout=90, what="the run to finish")
        print(f"run took {time.monotonic() - t0:.1f}s")
        assert set(plot.series) == {"train", "valid"}
        assert plot.series["train"][0] == [1, 2, 3, 4, 5, 6]  # report every step
        assert plot.series["valid"][0] == [0, 3, 6]
        assert max(seen) > min(seen)  # the curve received points while we watched
        bar = screen.query_one("#run-progress", ProgressBar)
        assert bar.progress == bar.total  # 100% only now that it has finished
        assert "finished · step 6/6" in str(screen.query_one("#run-activity").render())
        assert "tok/s" in str(screen.query_one("#run-summary").render())
        info = RunDir(tui_env / "adapters" / "tiny-run").read()
        assert info["status"] == "finished" and info["config"]["report_every"] == 1


async def test_failing_run_shows_error_and_app_keeps_running(tui_env, tiny_model_dir):
    bad = tui_env / "data" / "nonsense.jsonl"
    bad.write_text('{"foo": 1}\n{"bar": 2}\n')
    app = create_app(runs_root="adapters", model=str(tiny_model_dir))
    async with app.run_test(size=(120, 36)) as pilot:
        await type_into(pilot, "#f-data", "data/nonsense.jsonl")
        await type_into(pilot, "#f-name", "bad-run")
        await pilot.click("#start")
        screen = app.screen
        await wait_until(pilot, lambda: screen.run_status == "failed", timeout=60, what="the run to fail")
        await wait_until(pilot, lambda: screen.query_one("#run-error").display, timeout=5, what="error")
        error = str(screen.query_one("#run-error").render())
        assert "cannot tell the dataset format" in error
        await pilot.press("f2")  # the app is alive and switches screens
        assert type(app.screen).__name__ == "RunsScreen"
        assert app.screen.runs[0]["status"] == "failed"


async def test_start_without_data_is_refused_visibly(tui_env):
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen.query_one("#error").display
        assert "training data" in str(app.screen.query_one("#error").render())
        assert not any((tui_env / "adapters").iterdir())


async def test_stop_sends_sigterm_and_the_run_checkpoints(tui_env, tiny_model_dir):
    app = create_app(runs_root="adapters", model=str(tiny_model_dir))
    async with app.run_test(size=(120, 36)) as pilot:
        await paste_into(pilot, "#f-data", str(SAMPLES / "sft" / "train.jsonl"))
        await type_into(pilot, "#f-iters", "5000")
        await type_into(pilot, "#f-report_every", "1")
        await type_into(pilot, "#f-name", "long")
        await pilot.press("ctrl+s")
        screen = app.screen
        await wait_until(pilot, lambda: screen.follower.step >= 2, timeout=60, what="training steps")
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: screen.run_status == "stopped", timeout=60, what="the stop")
        stopped_at = screen.follower.step
        assert 2 <= stopped_at < 5000
        assert list_checkpoints(tui_env / "adapters" / "long")
        await wait_until(pilot, lambda: screen.proc is None, timeout=20, what="the trainer to exit")
        # resume from the checkpoint: the same run directory goes on past where it stopped
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.run_status == "running" and screen.follower.step > stopped_at,
                         timeout=60, what="the resumed run to make progress")
        assert screen.query_one("#loss-plot").series["train"][0][0] == 1  # the curve kept its start
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: screen.run_status == "stopped" and screen.proc is None,
                         timeout=60, what="the second stop")



async def test_dpo_run_plots_reward_accuracy_and_margin(tui_env, tiny_model_dir):
    app = create_app(runs_root="adapters", model=str(tiny_model_dir))
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        screen.query_one("#f-kind").focus()
        await pilot.press("enter", "down", "enter")  # SFT -> DPO
        assert screen.query_one("#f-kind").value == "dpo"
        await paste_into(pilot, "#f-data", str(SAMPLES / "dpo" / "train.jsonl"))
        await paste_into(pilot, "#f-valid", str(SAMPLES / "dpo" / "valid.jsonl"))
        await type_into(pilot, "#f-iters", "2")
        await type_into(pilot, "#f-batch_size", "2")
        await type_into(pilot, "#f-eval_every", "1")
        await type_into(pilot, "#f-report_every", "1")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: screen.run_status == "finished" and screen.proc is None, timeout=90,
                         what="the DPO run to finish")
        await pilot.pause(0.5)
        dpo = screen.query_one("#dpo-plot", CurvePlot)
        assert dpo.display
        assert {"reward acc", "margin", "val reward acc", "val margin"} <= set(dpo.series)
        assert dpo.series["reward acc"][0] == [1, 2] and dpo.series["val margin"][0] == [0, 1, 2]
        assert "acc " in str(screen.query_one("#run-summary").render())


async def test_plan_shows_the_prediction_for_the_form(tui_env, tiny_model_dir, monkeypatch):
    from localtune import backend
    from localtune.config import TrainConfig
    from localtune.plan import plan

    monkeypatch.setattr(backend, "matmul_gflops", lambda: 50.0)  # fixed: the same speed as the plan below
    data = str(SAMPLES / "sft" / "train.jsonl")
    app = create_app(runs_root="adapters", model=str(tiny_model_dir))
    async with app.run_test(size=(120, 36)) as pilot:
        await paste_into(pilot, "#f-data", data)
        await type_into(pilot, "#f-batch_size", "2")
        await pilot.press("ctrl+p")
        screen = app.screen
        line = screen.query_one("#plan")
        await wait_until(pilot, lambda: "tokens/s" in str(line.render()), timeout=60, what="the plan")
        text = str(line.render())
        assert not screen.query_one("#error").display
    expected = plan(TrainConfig(model=str(tiny_model_dir), data=data, batch_size=2), gflops=50.0)
    assert f"peak {expected['peak_memory_gb']:.2f} GB" in text
    assert f"~{expected['tokens_per_sec']:,.0f} tokens/s" in text
    assert f"largest batch at this length: {expected['max_batch_size']}" in text
    assert f"longest max seq len at batch 2: {expected['max_seq_len']}" in text


async def test_plan_errors_are_shown_and_the_app_keeps_running(tui_env, tiny_model_dir, monkeypatch):
    from localtune import backend

    monkeypatch.setattr(backend, "matmul_gflops", lambda: 50.0)  # no measuring: the errors are the point
    app = create_app(runs_root="adapters", model=str(tiny_model_dir))
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        error, line = screen.query_one("#error"), screen.query_one("#plan")

        async def plan_error() -> str:
            await pilot.press("ctrl+p")
            await wait_for_workers(app)
            await wait_until(pilot, lambda: error.display, timeout=10, what="the error")
            assert not line.display  # no prediction left over
            return str(error.render())

        assert "training data" in await plan_error()  # no data
        await paste_into(pilot, "#f-data", "data/missing.jsonl")
        assert "no such file" in await plan_error()  # fails in the worker
        await paste_into(pilot, "#f-data", str(SAMPLES / "dpo" / "train.jsonl"))
        assert "preference pairs" in await plan_error()  # SFT kind, preference data
        screen.query_one("#f-kind").focus()
        await pilot.press("enter", "down", "enter")  # SFT -> DPO
        assert "SFT runs only" in await plan_error()
        await pilot.press("f2")  # the app is alive and switches screens
        assert type(app.screen).__name__ == "RunsScreen"
