"""Runs -> `v`: a run's evaluations (RUN/eval/*/, written by localtune's own writer) and the answers
side by side: the run's beside the base of the same evaluation, or beside the run marked for
comparison."""

from __future__ import annotations

import pytest
from conftest import write_fake_run
from textual.widgets import DataTable, Label, Static
from tui_helpers import wait_until

from localtune.data.prompts import PromptRow
from localtune.eval import Answer, ModelEval, write_results
from localtune.generate import Completion
from localtune.runs import RunDir, layout
from tui.app import create_app
from tui.screens.run_evals import RunEvalsScreen, side_by_side

PROMPTS = ["Name a planet.", "Say hi."]


def write_eval(run, name: str, answers: dict[str, list[str]], *, step: int | None = None, loops=()):
    """An evaluation folder of `run`: each model answers PROMPTS (a model named after the run has
    the run as its adapter, as `localtune eval --adapter RUN` writes it)."""
    evals = []
    for model, texts in answers.items():
        rows = [PromptRow(f"p:{i}", [{"role": "user", "content": p}], "p.txt", i, "prompts")
                for i, p in enumerate(PROMPTS)]
        done = [Answer(model, r, Completion(t, [1] * len(t.split()), "length" if t in loops else "stop", 3),
                       t in loops, checks={"greets": t.startswith("Aye!")}) for r, t in zip(rows, texts)]
        evals.append(ModelEval(model, done, None if model == "base" else str(run)))
    out = RunDir(run).eval_dir(name)
    out.mkdir(parents=True)
    summary, _ = write_results(out, evals, {"step": step} if step is not None else {})
    if step is not None:  # made during training, before the others (the screen lists them by time)
        summary.write_text(summary.read_text().replace('"created": "', '"created": "0', 1))


async def open_evals(pilot, table, run: str) -> RunEvalsScreen:
    """Highlight `run` in the Runs table and press v; the evaluations screen it opens."""
    table.move_cursor(row=next(i for i in range(table.row_count) if table.get_row_at(i)[0] == run))
    await pilot.pause()
    await pilot.press("a")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, RunEvalsScreen), what="the evaluations screen")
    return pilot.app.screen


@pytest.mark.asyncio
async def test_runs_screen_shows_evaluations_and_answers_side_by_side(tui_env):
    root = tui_env / "adapters"
    a = write_fake_run(root, "sft-a")
    b = write_fake_run(root, "dpo-b", kind="dpo")
    write_eval(a, layout.checkpoint_name(10), {"step 10": ["Aye! Mars.", "hi hi hi hi"]}, step=10,
               loops=("hi hi hi hi",))
    write_eval(a, "20990101-000000", {"base": ["Mars is a planet.", "Hello!"], "sft-a": ["Aye! Venus.", "Aye! Hi."]})
    write_eval(b, "20990102-000000", {"base": ["Mars is a planet.", "Hello!"], "dpo-b": ["Aye! Earth.", "Aye! Hey."]})

    app = create_app(start="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, what="two runs listed")
        table.focus()
        screen = await open_evals(pilot, table, "sft-a")
        evals = screen.query_one("#evals-table", DataTable)
        assert evals.row_count == 2
        listed = [evals.get_row_at(i) for i in range(2)]
        assert [r[0] for r in listed] == [layout.checkpoint_name(10), "20990101-000000"]
        assert listed[0][1:3] == ["10", "step 10"] and listed[0][5] == "0.50"  # one of two answers loops
        assert listed[1][2] == "sft-a" and listed[1][6] == "1.00"  # the run's model, not the base
        # the newest evaluation: the run's answers beside the base's, prompt by prompt
        title = str(screen.query_one("#answers-title", Label).render())
        assert "sft-a · 20990101-000000 · sft-a" in title and "· base" in title
        texts = [str(w.render()) for w in screen.query(".answer").results(Static)]
        assert len(texts) == 4 and "Aye! Venus." in texts[0] and "Mars is a planet." in texts[1]
        # the evaluation made during training: one model only, its loop marked
        evals.focus()
        await pilot.press("up")
        await wait_until(pilot, lambda: screen.shown.name == layout.checkpoint_name(10), what="the step-10 eval")
        texts = [str(w.render()) for w in screen.query(".answer").results(Static)]
        assert len(texts) == 2 and "[loops]" in texts[1] and "✗ greets" in texts[1]
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, RunEvalsScreen), what="back to Runs")

        # compare: mark sft-a, go to dpo-b, `v`: dpo-b's answers beside sft-a's newest
        await pilot.press("m")
        screen = await open_evals(pilot, table, "dpo-b")
        title = str(screen.query_one("#answers-title", Label).render())
        assert "dpo-b · 20990102-000000 · dpo-b" in title and "sft-a · 20990101-000000 · sft-a" in title
        texts = [str(w.render()) for w in screen.query(".answer").results(Static)]
        assert texts[0].endswith("Aye! Earth.") and texts[1].endswith("Aye! Venus.")
        assert texts[2].endswith("Aye! Hey.") and texts[3].endswith("Aye! Hi.")


def test_side_by_side_matches_prompts_and_keeps_the_unmatched():
    left = [{"prompt": "a", "key": 1, "response": "A1"}, {"prompt": "b", "key": 2, "response": "B1"}]
    right = [{"prompt": "b", "key": 9, "response": "B2"}, {"prompt": "c", "key": 3, "response": "C2"}]
    rows = side_by_side(left, right)
    assert [(p, x and x["response"], y and y["response"]) for p, x, y in rows] == [
        ("a", "A1", None), ("b", "B1", "B2"), ("c", None, "C2")]
