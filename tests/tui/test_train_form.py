"""The Train form: SFT and DPO fields from one mode table, YAML loading that replaces the whole
form, the advanced section, Start/Stop/Resume only when they make sense, stopping and
re-attaching to a live run."""

from __future__ import annotations

import pytest
import yaml
from conftest import write_fake_run
from textual.widgets import Button, Collapsible
from tui_helpers import SAMPLES, paste_into, wait_until

from localtune.runs import RunDir
from tui import create_app, process
from tui.widgets.train_form import TrainForm

pytestmark = pytest.mark.asyncio


def form_of(app) -> TrainForm:
    return app.screen.query_one(TrainForm)


async def load_yaml(pilot, app, path) -> None:
    await paste_into(pilot, "#f-yaml", str(path))
    await pilot.press("ctrl+o")
    await pilot.pause()


async def test_loading_the_dpo_sample_fills_dpo_fields(tui_env):
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        await load_yaml(pilot, app, SAMPLES / "dpo.yaml")
        form = form_of(app)
        assert not app.screen.query_one("#error").display, app.screen.query_one("#error").render()
        assert form.kind == "dpo"  # it has beta/loss/ref: a DPO config
        assert app.screen.query_one("#f-beta").value == "0.1"
        assert app.screen.query_one("#f-loss").value == "sigmoid"
        assert app.screen.query_one("#f-beta").display and app.screen.query_one("#f-beta").parent.display
        values = form.all_values()
        assert values["data"] == "samples/dpo/train.jsonl" and values["lr"] == 5e-5 and values["warmup"] == 5
        from localtune.config import build_config  # the values build the engine's DPO config
        from localtune.config_dpo import DPOConfig

        path = process.write_config(tui_env / "check.yaml", values)
        assert build_config(path, cls=DPOConfig).beta == 0.1


async def test_loading_a_yaml_resets_values_and_hidden_keys(tui_env):
    dpo = tui_env / "dpo-from-sft.yaml"
    dpo.write_text(yaml.safe_dump({"data": "samples/dpo/train.jsonl", "adapter": "adapters/sft-x",
                                   "beta": 0.3, "warmup": 7, "keep_checkpoints": 9}))
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        form = form_of(app)
        await paste_into(pilot, "#f-iters", "77")  # typed before loading: must not survive it
        await load_yaml(pilot, app, dpo)
        assert form.kind == "dpo" and form.all_values()["adapter"] == "adapters/sft-x"
        assert "iters" not in form.all_values()
        await load_yaml(pilot, app, SAMPLES / "sft.yaml")
        values = form.all_values()
        assert "adapter" not in values and "beta" not in values and "keep_checkpoints" not in values
        assert values["warmup"] == 10 and values["iters"] == 120  # sft.yaml's, not the DPO file's
        app.screen.query_one("#f-advanced").collapsed = False  # built now, with the loaded values
        await wait_until(pilot, lambda: form.advanced_built, what="the advanced fields")
        assert app.screen.query_one("#f-warmup").value == "10" and app.screen.query_one("#f-keep_checkpoints").value == ""
        assert form.all_values() == values
        assert app.screen.query_one("#f-adapter").value == ""
        # switching kind keeps common fields and never sends the other mode's
        await load_yaml(pilot, app, dpo)
        form.set_kind("sft")
        await pilot.pause()
        assert "beta" not in form.all_values() and form.all_values()["adapter"] == "adapters/sft-x"
        assert not app.screen.query_one("#f-beta").parent.display


async def test_advanced_section_holds_pack_weighting_and_accumulation(tui_env):
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        advanced = screen.query_one("#f-advanced", Collapsible)
        form = form_of(app)
        assert advanced.collapsed and not form.advanced_built  # built when first opened
        advanced.collapsed = False
        await wait_until(pilot, lambda: form.advanced_built, what="the advanced fields")
        await pilot.pause()
        for key in ("pack", "weight_by_tokens", "grad_accum", "lora_alpha", "warmup"):
            assert screen.query_one(f"#f-{key}") in advanced.query("*")
        screen.query_one("#f-pack").value = True
        screen.query_one("#f-weight_by_tokens").value = False
        await paste_into(pilot, "#f-grad_accum", "4")
        await paste_into(pilot, "#f-data", "data/bad_rows.jsonl")
        values = form.all_values()
        assert values["pack"] is True and values["weight_by_tokens"] is False and values["grad_accum"] == 4
        cfg = process.train_config(values)
        assert (cfg.pack, cfg.weight_by_tokens, cfg.grad_accum) == (True, False, 4)


async def test_start_stop_resume_only_when_they_make_sense(tui_env):
    root = tui_env / "adapters"
    write_fake_run(root, "done")
    write_fake_run(root, "halted", status="stopped")
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen

        def enabled():
            return tuple(not screen.query_one(f"#{b}", Button).disabled for b in ("start", "stop", "resume"))

        await pilot.pause()
        assert enabled() == (True, False, False)  # nothing attached
        app.watch_run(root / "done")
        await wait_until(pilot, lambda: screen.run_status == "finished", what="attach")
        await pilot.pause()
        assert enabled() == (True, False, False)
        assert not screen.check_action("stop", ()) and not screen.check_action("resume", ())
        app.watch_run(root / "halted")
        await wait_until(pilot, lambda: screen.run_status == "stopped", what="attach")
        await pilot.pause()
        assert enabled() == (True, False, True) and screen.check_action("resume", ())


async def test_stop_says_stopping_at_once(tui_env, stand_in_trainer):
    run = write_fake_run(tui_env / "adapters", "live", status="running", steps=5)
    RunDir(run).update(iters=100)
    stand_in_trainer(run)  # a live trainer busy finishing its step: it ignores SIGTERM
    app = create_app(runs_root="adapters", run=str(run))
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.run_status == "running", what="attach")
        await pilot.pause()
        assert not screen.query_one("#stop", Button).disabled
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert screen.run_status == "stopping"  # before the trainer has written anything
        assert "stopping" in str(screen.query_one("#run-title").render())
        assert str(screen.query_one("#run-activity").render()).startswith("stopping")
        assert screen.query_one("#stop", Button).disabled  # asked once


async def test_reopening_the_app_reattaches_to_a_training_run(tui_env, stand_in_trainer):
    run = write_fake_run(tui_env / "adapters", "older")
    live = write_fake_run(tui_env / "adapters", "live", status="running")
    RunDir(live).update(started=2000.0)  # the newest
    stand_in_trainer(live)  # alive
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.follower is not None, what="re-attach")
        assert screen.follower.path.resolve() == live and screen.run_status == "running"
        assert run.exists()
