"""Datasets, Runs and Models screens driven with keys."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import write_fake_run
from textual.widgets import DataTable, OptionList
from tui_helpers import paste_into, type_into, wait_for_workers, wait_until

from localtune.runs import RunDir
from tui import create_app, process
from tui.widgets.curve_plot import CurvePlot, HistogramPlot

pytestmark = pytest.mark.asyncio


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


async def test_dataset_row_count_and_planted_bad_row(tui_env, tiny_model_dir):
    from localtune.data import read_dataset

    expected = read_dataset(tui_env / "data" / "bad_rows.jsonl")
    app = create_app(start="datasets")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await paste_into(pilot, "#ds-model", str(tiny_model_dir))
        await type_into(pilot, "#ds-maxlen", "256")
        await type_into(pilot, "#ds-path", "data/bad_rows.jsonl")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.loaded is not None, what="the dataset to load")
        info = text_of(screen, "#ds-info")
        assert f"rows: {expected.n_rows}" in info
        assert f"usable: {len(expected.examples)}" in info and "problems: 3" in info
        problems = screen.query_one("#ds-problems", OptionList)
        labels = [str(problems.get_option_at_index(i).prompt) for i in range(problems.option_count)]
        assert any("bad_rows.jsonl:7:" in p for p in labels), labels
        assert len(screen.query_one(HistogramPlot).lengths) == len(expected.examples)
        # the first row's preview shows trained tokens (the loss mask) from the real template
        preview = screen.query_one("#ds-preview").render()
        assert any("green" in str(span.style) for span in preview.spans)
        # jump to the planted bad row at line 7 with the keyboard
        problems.focus()
        await pilot.press("home", "down", "enter")
        await pilot.pause()
        assert screen.problem_shown == 7
        assert "line 7:" in text_of(screen, "#ds-preview")
        assert screen.query_one("#ds-tabs").active == "tab-rows"


async def test_dataset_split(tui_env):
    app = create_app(start="datasets")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await type_into(pilot, "#ds-path", "data/bad_rows.jsonl")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.loaded is not None, what="the dataset to load")
        await pilot.press("ctrl+s")
        await wait_for_workers(app)
        await pilot.pause()
        out = tui_env / "data" / "bad_rows-split"
        n_train = len((out / "train.jsonl").read_text().splitlines())
        n_valid = len((out / "valid.jsonl").read_text().splitlines())
        assert n_train + n_valid == len(screen.loaded.dsfile.examples) and n_valid >= 1


async def test_runs_list_curves_compare_delete(tui_env):
    write_fake_run(tui_env / "adapters", "sft-a")
    write_fake_run(tui_env / "adapters", "dpo-b", kind="dpo", status="failed", offset=0.4, error="boom")
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        table = screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, what="two runs listed")
        rows = {table.get_row_at(i)[0]: table.get_row_at(i) for i in range(2)}
        assert rows["dpo-b"][1] == "failed" and rows["sft-a"][1] == "finished"
        assert rows["sft-a"][5] == "2m20s"  # duration from run.json times
        plot = screen.query_one("#runs-plot", CurvePlot)
        table.focus()
        await pilot.press("home")
        await pilot.pause()
        first = screen.selected["name"]
        assert plot.point_count == 24  # 20 train + 4 val points
        await pilot.press("m", "down")  # compare the first with the second run
        await pilot.pause()
        assert screen.selected["name"] != first
        assert len(plot.series) == 4 and plot.point_count == 48
        victim = screen.selected["path"]
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(pilot, lambda: table.row_count == 1, what="the run to be deleted")
        assert not os.path.exists(victim)
        assert len(list((tui_env / "adapters").iterdir())) == 1
        assert screen.selected is not None and screen.selected["name"] == first  # the one left


def copy_run(trained_run, root, name: str, *, model: str | None = None):
    """A writable copy of the tiny trained run under root; `model`: pretend it was trained on that."""
    run = shutil.copytree(trained_run, root / name)
    if model is not None:
        record = RunDir(run)
        record.update(model_path=model, config={**record.read()["config"], "model": model})
    return run


async def open_export_dialog(pilot, app):
    table = app.screen.query_one(DataTable)
    await wait_until(pilot, lambda: table.row_count == 1, what="the run listed")
    table.focus()
    await pilot.press("e")
    await wait_until(pilot, lambda: type(app.screen).__name__ == "ExportDialog", what="the export dialog")
    return app.screen


async def test_export_a_tiny_run_as_peft(tui_env, trained_run, monkeypatch):
    import huggingface_hub.constants

    # HF_HUB_OFFLINE is read when huggingface_hub is imported, maybe before tui_env set it
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    run = copy_run(trained_run, tui_env / "adapters", "sft-tiny")
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        dialog = await open_export_dialog(pilot, app)
        await pilot.click("#fmt-gguf")
        await pilot.pause()
        assert dialog.query_one("#export-out").value == str(Path("adapters/sft-tiny/export-gguf.gguf"))
        await pilot.click("#fmt-peft")
        await pilot.pause()
        assert dialog.query_one("#export-out").value == str(Path("adapters/sft-tiny/export-peft"))
        await pilot.click("#export-ok")
        await wait_until(pilot, lambda: app.screen is screen, what="the dialog to close")
        await wait_for_workers(app)
        await pilot.pause()
        out = run / "export-peft"
        assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
        assert "adapters/sft-tiny/export-peft" in text_of(screen, "#runs-status")
        assert not screen.query_one("#error").display and not screen.query_one("#export").disabled
        # again, pushing to the hub: offline, the export is written and the failed upload is shown
        # (an export over an existing one is refused without force: localtune.outputs)
        shutil.rmtree(out)
        dialog = await open_export_dialog(pilot, app)
        await paste_into(pilot, "#export-push", "someone/tiny-export")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is screen, what="the dialog to close")
        await wait_for_workers(app)
        await pilot.pause()
        assert (out / "adapter_model.safetensors").is_file()
        error = text_of(screen, "#error")
        assert screen.query_one("#error").display and "push failed" in error
        assert "offline" in error and "someone/tiny-export" in error


async def test_export_failure_shows_an_error(tui_env, trained_run):
    copy_run(trained_run, tui_env / "adapters", "sft-lost", model=str(tui_env / "models" / "gone"))
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await open_export_dialog(pilot, app)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen is screen, what="the dialog to close")
        await wait_for_workers(app)
        await pilot.pause()
        assert screen.query_one("#error").display
        assert "gone" in text_of(screen, "#error")
        assert not (tui_env / "adapters" / "sft-lost" / "export-peft").exists()
        assert not screen.query_one("#export").disabled  # ready for another try
        await pilot.press("g")  # the app keeps running
        await pilot.pause()
        assert app.is_running and screen.query_one(DataTable).row_count == 1


async def test_runs_watch_attaches_on_train_screen(tui_env):
    write_fake_run(tui_env / "adapters", "dpo-w", kind="dpo")
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, what="run listed")
        app.screen.query_one(DataTable).focus()
        await pilot.press("w")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "TrainScreen", what="train screen")
        screen = app.screen
        # It attaches on its ScreenResume event, a moment after it becomes current.
        await wait_until(pilot, lambda: screen.run_status is not None, what="the run attached")
        assert screen.run_status == "finished"
        dpo = screen.query_one("#dpo-plot", CurvePlot)
        assert dpo.display and set(dpo.series) == {"reward acc", "margin"}
        assert screen.query_one("#loss-plot", CurvePlot).point_count == 24


async def test_models_listed_and_offline_download_fails_clearly(tui_env, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tui_env / "models" / "tiny-llama")
    app = create_app(start="models")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        table = screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 1, what="the model list")
        name, size, quant, arch, source = table.get_row_at(0)
        assert (name, arch, source) == ("tiny-llama", "llama", "local") and size.endswith("KB")
        await type_into(pilot, "#hub-id", "someone/some-model")
        await pilot.press("ctrl+l")
        await wait_for_workers(app)
        await pilot.pause()
        assert screen.query_one("#error").display
        assert "offline" in text_of(screen, "#error")
        assert not screen.busy


async def test_resume_from_runs_starts_the_trainer_and_shows_its_failure(tui_env):
    write_fake_run(tui_env / "adapters", "sft-stopped", status="stopped")
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, what="run listed")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "TrainScreen", what="train screen")
        screen = app.screen
        # The screen resumes the run on its ScreenResume event, a moment after it becomes current.
        await wait_until(pilot, lambda: screen.proc is not None or screen.run_status == "failed",
                         what="a trainer process started with --resume")
        assert (tui_env / "adapters" / "sft-stopped" / process.CONSOLE_NAME).exists()
        await wait_until(pilot, lambda: screen.run_status == "failed" and screen.proc is None, timeout=60,
                         what="the resume to fail (the fake run's model does not exist)")
        assert screen.query_one("#run-error").display
        assert "models/tiny" in str(screen.query_one("#run-error").render())


async def test_quantize_a_copy_of_the_selected_model(tui_env, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tui_env / "models" / "tiny-llama")
    app = create_app(start="models")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        table = screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 1, what="the model list")
        table.focus()
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: table.row_count == 2, timeout=60, what="the quantized copy")
        rows = {table.get_row_at(i)[0]: table.get_row_at(i) for i in range(2)}
        assert rows["tiny-llama-4bit"][2] == "4bit"
        assert "quantize done" in text_of(screen, "#job-status") and not screen.busy
