"""The smaller defects: Datasets (model names, stats kept on a model error, histogram range,
split that asks and counts), Models (a failed job stops its bar and says where to look),
plots (integer ticks, a lone validation point, the legend off the curves), labels, help,
screenshots and `localtune --screen`."""

from __future__ import annotations

import shutil

import pytest
from conftest import write_fake_run
from textual.widgets import Input, Label, ProgressBar
from tui_helpers import paste_into, wait_for_workers, wait_until

from localtune.runs import RunDir
from tui import create_app
from tui.widgets.curve_plot import CurvePlot, HistogramPlot

pytestmark = pytest.mark.asyncio
SCREENS = ("train", "runs", "datasets", "chat", "models")


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


async def open_dataset(pilot, app, model: str = "", path: str = "data/bad_rows.jsonl"):
    screen = app.screen
    screen.loaded = None
    await paste_into(pilot, "#ds-model", model) if model else None
    await paste_into(pilot, "#ds-path", path)
    await pilot.press("enter")
    await wait_for_workers(app)
    await wait_until(pilot, lambda: screen.loaded is not None, what="the dataset")
    return screen


async def test_datasets_takes_a_model_name_and_keeps_stats_on_a_bad_one(tui_env, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tui_env / "models" / "tiny-llama")
    app = create_app(start="datasets")
    async with app.run_test(size=(120, 36)) as pilot:
        # a name as the model picker lists it (localtune's models dir)
        screen = await open_dataset(pilot, app, model="tiny-llama")
        assert screen.loaded.lengths and not screen.query_one("#error").display
        # a name no model field takes: the stats stay, the error says what names work
        screen = await open_dataset(pilot, app, model="SmolLM2-135M")
        assert "rows: 12" in text_of(screen, "#ds-info") and "problems: 3" in text_of(screen, "#ds-info")
        assert screen.query_one("#error").display
        error = text_of(screen, "#error")
        assert "SmolLM2-135M" in error and "default" in error and "--" not in error


async def test_histogram_range_comes_from_the_data(tui_env, tiny_model_dir):
    app = create_app(start="datasets")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_dataset(pilot, app, model=str(tiny_model_dir))
        hist = screen.query_one(HistogramPlot)
        longest = max(hist.lengths)
        assert longest < 2048 and hist.x_range == (min(hist.lengths), longest)  # not stretched to 2048
        lines = hist.render().plain.splitlines()
        bottom = next(i for i, ln in enumerate(lines) if "└" in ln)
        labels = [int(t) for t in lines[bottom + 1].split()]
        assert labels == hist.ticks and all(t <= longest for t in labels)  # whole, in range, not cut
        assert "max length 2048: none over" in "\n".join(lines)
        assert [int(t) for t in (ln.split("┤")[0] for ln in lines if "┤" in ln)]  # whole-number counts


async def test_split_asks_before_replacing_and_shows_counts(tui_env):
    app = create_app(start="datasets")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_dataset(pilot, app)
        await pilot.press("ctrl+s")
        await wait_for_workers(app)
        await wait_until(pilot, lambda: "split written" in text_of(screen, "#ds-info"), what="the split")
        out = tui_env / "data" / "bad_rows-split"
        n_train = len((out / "train.jsonl").read_text().splitlines())
        n_valid = len((out / "valid.jsonl").read_text().splitlines())
        assert f"({n_train} rows)" in text_of(screen, "#ds-info") and f"({n_valid} rows)" in text_of(screen, "#ds-info")
        (out / "train.jsonl").write_text("mine\n")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", what="the question")
        await pilot.press("n")
        await pilot.pause()
        assert (out / "train.jsonl").read_text() == "mine\n"  # not overwritten
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", what="the question")
        await pilot.press("y")
        await wait_for_workers(app)
        await wait_until(pilot, lambda: (out / "train.jsonl").read_text() != "mine\n", what="the new split")


async def test_failed_import_stops_the_bar_and_points_below(tui_env):
    app = create_app(start="models")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        bad = tui_env / "broken.gguf"
        bad.write_bytes(b"not a gguf")
        await paste_into(pilot, "#gguf-path", str(bad))
        await pilot.press("ctrl+g")
        await wait_for_workers(app)
        await wait_until(pilot, lambda: not screen.busy, what="the import to fail")
        bar = screen.query_one(ProgressBar)
        assert not bar.display and bar.total is not None  # no indeterminate animation left
        status = text_of(screen, "#job-status")
        assert "below" in status and "above" not in status and "--" not in status
        assert screen.query_one("#error").display and "--" not in text_of(screen, "#error")
        # the error line is below the status line
        assert screen.query_one("#error").region.y > screen.query_one("#job-status").region.y


async def test_plots_integer_ticks_single_point_and_legend_below(tui_env):
    run = write_fake_run(tui_env / "adapters", "short", steps=3)
    # one validation point only (the fake run validates every 5 steps): add one at step 3
    RunDir(run).append_metric({"event": "val", "step": 3, "val_loss": 2.5})
    app = create_app(run=str(run))
    async with app.run_test(size=(120, 36)) as pilot:
        plot = app.screen.query_one("#loss-plot", CurvePlot)
        await wait_until(pilot, lambda: plot.point_count == 4, what="the curves")
        await pilot.pause()
        lines = plot.render().plain.splitlines()
        assert "●" in "\n".join(lines)  # the single validation point is drawn as a full cell
        axis = next(ln for ln in lines if ln.strip().startswith("1") and "2" in ln and "3" in ln)
        assert "." not in axis  # steps 1 2 3, no 1.5
        assert "train" in lines[-1] and "valid" in lines[-1]  # the legend: a line of its own
        assert not any("train" in ln for ln in lines[:-1])  # not over the curves


def footer_laid_out(screen) -> bool:
    keys = list(screen.query("FooterKey"))
    return bool(keys) and all(k.region.width > 0 for k in keys)


async def test_every_screen_at_80x24_labels_footer_and_help(tui_env):
    """One visit per screen (each costs seconds on a busy machine): every field has a real label
    (not only placeholder text), the footer's keys fit 80 columns, and ? lists the screen's keys."""
    # a stopped run with an adapter: every one of Runs' keys applies to it
    write_fake_run(tui_env / "adapters", "sft-a", status="stopped")
    RunDir(tui_env / "adapters" / "sft-a").adapter_path.write_bytes(b"")
    app = create_app()
    async with app.run_test(size=(80, 24)) as pilot:
        for name in SCREENS:
            await pilot.press(f"f{SCREENS.index(name) + 1}")
            await wait_until(pilot, lambda: app.current_mode == name, what=name)
            # the footer is rebuilt when a screen's keys change (Runs: once its table has loaded);
            # measure it once every key has been laid out
            await wait_until(pilot, lambda: footer_laid_out(app.screen), timeout=10, what=f"{name}'s footer")
            screen = app.screen
            for field in screen.query(Input):
                labels = [w for w in field.parent.children if isinstance(w, Label)]
                assert labels, f"{name}: #{field.id} is labelled only by its placeholder"
            keys = list(screen.query("FooterKey"))
            assert keys and max(k.region.right for k in keys) <= 80, name
            assert all(k.region.width > 0 for k in keys), name
            app.set_focus(None)  # "?" types into a focused field
            await pilot.press("question_mark")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help")
            text = app.screen.plain_text(width=400)  # one line per key
            for binding in screen.BINDINGS:
                assert (binding.tooltip or binding.description) in text, (name, binding.key)
            assert "Screenshot" in text and "Quit" in text
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, what="help closed")


async def test_screenshot_key_saves_an_svg_and_says_where(tui_env):
    app = create_app(start="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f12")
        await pilot.pause()
        shots = list((tui_env / "screenshots").glob("localtune-runs-*.svg"))
        assert len(shots) == 1 and shots[0].read_text().startswith("<svg")
        assert any(f"screenshots/{shots[0].name}" in str(n.message) for n in app._notifications)
