"""The Train form's reward-model and GRPO modes (issues 13, 15): the fields each kind shows, the
command and YAML the form produces (read back by the CLI's own parser, nothing trained), reward
specs checked by the engine's parser, saved YAML that loads back as its kind, Runs 'n' on such
runs, and a GRPO run's reward curves on Runs and Train."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import GRPO_REWARDS, write_fake_run
from textual.widgets import Label
from tui_helpers import paste_into, wait_until

from localtune.cli import build_parser
from localtune.cli.train_cmd import overrides_from
from localtune.config import build_config
from tui import create_app, process
from tui.widgets.train_form import TrainForm

pytestmark = pytest.mark.asyncio


class Spawned:
    """Stands in for process._spawn: records the trainer's command line, starts nothing."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, args, run_dir, cwd):
        self.calls.append(list(args))
        return None  # the screen keeps no process: nothing runs


@pytest.fixture
def spawned(monkeypatch):
    fake = Spawned()
    monkeypatch.setattr(process, "_spawn", fake)
    return fake


def shown(app, key: str) -> bool:
    return app.screen.query_one(f"#f-{key}").parent.display


def error_text(app) -> str:
    box = app.screen.query_one("#error")
    return str(box.render()) if box.display else ""


def cli_config(args: list[str], cls):
    """What `localtune ARGS` would train: the CLI's parser, then the config it builds (as execute())."""
    parsed = build_parser().parse_args(args)
    return build_config(parsed.config, overrides_from(parsed, cls), cls=cls)


async def set_kind(pilot, form: TrainForm, kind: str) -> None:
    form.set_kind(kind)
    await pilot.pause()


async def fill_in(pilot, form: TrainForm, kind: str, fields: dict[str, str]) -> None:
    """Pick the kind, then paste each field's text as a person would."""
    await set_kind(pilot, form, kind)
    for key, text in fields.items():
        await paste_into(pilot, f"#f-{key}", text)


async def press_and_wait(pilot, key: str) -> None:
    await pilot.press(key)
    await pilot.pause()


async def clone_the_run(pilot, app) -> TrainForm:
    """Runs 'n' on the only run: the Train screen's form, filled with its config."""
    await wait_until(pilot, lambda: app.screen.query_one("#runs-table").row_count == 1, what="runs")
    app.screen.query_one("#runs-table").focus()
    await pilot.press("n")
    await wait_until(pilot, lambda: type(app.screen).__name__ == "TrainScreen", what="train screen")
    await pilot.pause()
    return app.screen.query_one(TrainForm)


async def save_then_load_from_sft(pilot, form: TrainForm, name: str) -> None:
    """ctrl+y saves the form as `name`; switched to SFT, ctrl+o loads it back."""
    await paste_into(pilot, "#f-yaml", name)
    await press_and_wait(pilot, "ctrl+y")
    await set_kind(pilot, form, "sft")
    await press_and_wait(pilot, "ctrl+o")


async def test_each_kind_shows_its_own_fields(tui_env):
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        form = app.screen.query_one(TrainForm)
        kinds = [str(v) for _, v in app.screen.query_one("#f-kind")._options]
        assert {"sft", "dpo", "reward", "grpo"} <= set(kinds)
        await set_kind(pilot, form, "grpo")
        assert all(shown(app, k) for k in ("reward", "algo", "group_size", "max_completion", "kl_beta", "data"))
        assert not any(shown(app, k) for k in ("valid", "beta", "margin"))  # no validation rows in GRPO
        assert str(app.screen.query_one("#l-data", Label).render()) == "prompts"
        await set_kind(pilot, form, "reward")
        assert shown(app, "margin") and shown(app, "valid") and not shown(app, "reward")
        assert not shown(app, "beta") and not shown(app, "group_size")
        assert str(app.screen.query_one("#l-data", Label).render()) == "train data"
        # the advanced section holds the sampling knobs, for GRPO only
        app.screen.query_one("#f-advanced").collapsed = False
        await wait_until(pilot, lambda: form.advanced_built, what="the advanced fields")
        assert shown(app, "center_rewards") and not shown(app, "temperature")
        await set_kind(pilot, form, "grpo")
        assert shown(app, "temperature") and shown(app, "truncated") and shown(app, "updates_per_batch")
        assert not shown(app, "pack") and not shown(app, "overlong") and not shown(app, "center_rewards")


async def test_grpo_form_to_command_and_back(tui_env, spawned):
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        form = app.screen.query_one(TrainForm)
        await fill_in(pilot, form, "grpo", {
            "name": "grpo-try", "data": "data/prompts.jsonl", "group_size": "4", "kl_beta": "0", "iters": "30",
            "reward": "ifeval, length:20-120:0.5, python:my rewards.py:score"})
        app.screen.query_one("#f-algo").value = "rloo"
        await press_and_wait(pilot, "ctrl+s")
        assert error_text(app) == ""
        config = Path("adapters", "grpo-try", "tui-config.yaml")  # the runs root as given, from the cwd
        assert spawned.calls == [["train", "grpo", "--config", str(config)]]
        text = config.read_text()
        assert text.startswith("# localtune train grpo --config")
        assert yaml.safe_load(text) == {
            "data": "data/prompts.jsonl", "iters": 30, "reward": ["ifeval", "length:20-120:0.5",
                                                                 "python:my rewards.py:score"],
            "algo": "rloo", "group_size": 4, "kl_beta": 0.0, "out": str(Path("adapters", "grpo-try"))}
        from localtune.config_grpo import GRPOConfig

        cfg = cli_config(spawned.calls[0], GRPOConfig)  # the CLI reads the form's file as the form meant it
        assert (cfg.algo, cfg.group_size, cfg.kl_beta, cfg.iters) == ("rloo", 4, 0.0, 30)
        assert cfg.reward == ("ifeval", "length:20-120:0.5", "python:my rewards.py:score") and cfg.valid is None
        # saved and loaded again (from another kind): the form is GRPO with the same values
        values = form.all_values()
        await save_then_load_from_sft(pilot, form, "grpo.yaml")
        assert form.kind == "grpo" and form.all_values() == values
        assert app.screen.query_one("#f-reward").value == "ifeval, length:20-120:0.5, python:my rewards.py:score"


async def test_reward_form_to_command_and_back(tui_env, spawned):
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        form = app.screen.query_one(TrainForm)
        await fill_in(pilot, form, "reward", {
            "name": "rm-try", "data": "samples/dpo/train.jsonl", "valid": "samples/dpo/valid.jsonl",
            "margin": "0.5", "lr": "2e-5"})
        await press_and_wait(pilot, "ctrl+s")
        assert error_text(app) == ""
        config = Path("adapters", "rm-try", "tui-config.yaml")
        assert spawned.calls == [["train", "reward", "--config", str(config)]]
        from localtune.config_reward import RewardConfig

        cfg = cli_config(spawned.calls[0], RewardConfig)
        assert (cfg.margin, cfg.lr, cfg.data, cfg.valid) == (0.5, 2e-5, "samples/dpo/train.jsonl",
                                                              "samples/dpo/valid.jsonl")
        # a reward config with only common options still loads back as a reward model
        form.set_value("margin", None)
        values = form.all_values()
        assert "margin" not in values
        await save_then_load_from_sft(pilot, form, "rm.yaml")
        assert yaml.safe_load(Path("rm.yaml").read_text())["margin"] == 0.0  # the kind's marker
        assert form.kind == "reward" and error_text(app) == ""
        assert form.all_values() == {**values, "margin": 0.0}


@pytest.mark.parametrize("spec, words", [
    ("ifeval, lenght:20-120", ["rewards", "lenght:20-120", "unknown kind 'lenght'"]),
    ("length:120", ["rewards", "length takes MIN-MAX"]),
    ("python:rewards.py", ["rewards", "python needs 2 argument"]),
    ("judge:", ["rewards", "judge needs 1 argument"]),
])
async def test_a_bad_reward_spec_is_a_message_in_the_form(tui_env, spawned, spec, words):
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        form = app.screen.query_one(TrainForm)
        await fill_in(pilot, form, "grpo", {"data": "data/prompts.jsonl", "reward": spec})
        await press_and_wait(pilot, "ctrl+s")
        message = error_text(app)
        assert all(w in message for w in words), message
        assert spawned.calls == [] and list((tui_env / "adapters").iterdir()) == []
        assert app.is_running  # shown, not raised


async def test_grpo_without_reward_or_with_a_bad_value_is_refused_before_starting(tui_env, spawned):
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        form = app.screen.query_one(TrainForm)
        await fill_in(pilot, form, "grpo", {"data": "data/prompts.jsonl"})
        await press_and_wait(pilot, "ctrl+s")
        assert "give at least one reward source" in error_text(app)
        # group size 1: the engine's own check, in the form
        await fill_in(pilot, form, "grpo", {"reward": "ifeval", "group_size": "1"})
        await press_and_wait(pilot, "ctrl+s")
        assert "group_size must be >= 2" in error_text(app)
        assert spawned.calls == [] and list((tui_env / "adapters").iterdir()) == []


@pytest.mark.parametrize("kind", ["grpo", "reward"])
async def test_clone_of_a_grpo_or_reward_run_fills_the_form_with_its_kind(tui_env, kind):
    run = write_fake_run(tui_env / "adapters", f"{kind}-demo", kind=kind)
    if kind == "reward":  # a reward model's record, as `train reward` writes it
        from localtune.runs import RunDir

        info = RunDir(run).read()
        info["config"] = {**info["config"], "margin": 0.25, "valid": "data/valid.jsonl"}
        RunDir(run).write(info)
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        form = await clone_the_run(pilot, app)
        assert form.kind == kind
        values = form.all_values()
        if kind == "grpo":
            assert app.screen.query_one("#f-reward").value == ", ".join(GRPO_REWARDS)
            assert values["reward"] == list(GRPO_REWARDS) and values["data"] == "data/prompts.jsonl"
            assert "valid" not in values and "pack" not in values
            assert shown(app, "reward") and not shown(app, "valid")
        else:
            assert values["margin"] == 0.25 and values["valid"] == "data/valid.jsonl"
            assert shown(app, "margin") and not shown(app, "reward")


async def test_a_grpo_runs_entry_and_train_screen_plot_its_rewards(tui_env):
    write_fake_run(tui_env / "adapters", "grpo-demo", kind="grpo")
    app = create_app(start="runs")
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: app.screen.query_one("#runs-table").row_count == 1, what="runs")
        await wait_until(pilot, lambda: app.screen.selected is not None, what="selection")
        plot = app.screen.query_one("#runs-reward-plot")
        # the run's declared metrics: the total and one curve per source (length:5-50:0.5 -> "length")
        assert plot.display and {"reward", "reward ifeval", "reward length", "reward std in group"} <= set(plot.series)
        xs, ys = plot.series["reward ifeval"]
        assert xs == list(range(1, 21)) and ys[0] == pytest.approx(0.14) and ys[-1] == pytest.approx(0.9)
        app.screen.query_one("#runs-table").focus()
        await pilot.press("enter")  # watch it on the Train screen
        await wait_until(pilot, lambda: type(app.screen).__name__ == "TrainScreen", what="train screen")
        await wait_until(pilot, lambda: app.screen.run_status == "finished", what="attach")
        await pilot.pause()
        reward = app.screen.query_one("#dpo-plot")
        assert reward.display and reward.title == "reward"
        assert set(plot.series) == set(reward.series)
        assert app.screen.query_one("#loss-plot").display


async def test_a_grpo_run_at_80x24_shows_its_reward_plot(tui_env):
    write_fake_run(tui_env / "adapters", "grpo-demo", kind="grpo")
    write_fake_run(tui_env / "adapters", "dpo-demo", kind="dpo")
    app = create_app(run="adapters/grpo-demo")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.run_status == "finished", what="attach")
        await pilot.pause()
        reward, loss = app.screen.query_one("#dpo-plot"), app.screen.query_one("#loss-plot")
        assert reward.display and "reward" in reward.series and not loss.display
        assert reward.size.height >= 5 and reward.size.width >= 70
        app.screen.attach(tui_env / "adapters" / "dpo-demo")  # DPO at 80x24: its loss, as before
        await pilot.pause()
        assert loss.display and not reward.display


async def test_online_dpo_form_runs_train_dpo_online(tui_env, spawned):
    app = create_app(runs_root="adapters")
    async with app.run_test(size=(120, 36)) as pilot:
        form = app.screen.query_one(TrainForm)
        await fill_in(pilot, form, "dpo-online", {"name": "odpo", "data": "data/prompts.jsonl",
                                                  "reward": "length:10-60", "beta": "0.2"})
        assert shown(app, "reward") and shown(app, "beta") and shown(app, "loss")
        assert not any(shown(app, k) for k in ("ref", "valid", "group_size", "algo"))  # --ref does not apply
        await press_and_wait(pilot, "ctrl+s")
        assert error_text(app) == ""
        config = Path("adapters", "odpo", "tui-config.yaml")
        assert spawned.calls == [["train", "dpo", "--config", str(config)]]
        assert yaml.safe_load(config.read_text())["online"] is True
        from localtune.cli.dpo_flags import _online
        from localtune.config_dpo import OnlineDPOConfig

        assert _online(build_parser().parse_args(spawned.calls[0]))  # the CLI takes the online path
        cfg = cli_config(spawned.calls[0], OnlineDPOConfig)
        assert (cfg.online, cfg.reward, cfg.beta) == (True, ("length:10-60",), 0.2)
        values = form.all_values()
        await save_then_load_from_sft(pilot, form, "odpo.yaml")
        assert form.kind == "dpo-online" and form.all_values() == values


async def test_clone_of_an_online_dpo_run_is_online_dpo(tui_env):
    from localtune.config_dpo import OnlineDPOConfig
    from localtune.runs import RunDir

    run = RunDir(write_fake_run(tui_env / "adapters", "dpo-online-demo", kind="dpo"))
    info = run.read()  # what `train dpo --online` records: kind dpo, online: true
    info["config"] = OnlineDPOConfig(data="data/prompts.jsonl", reward=("ifeval",), online=True).to_dict()
    run.write(info)
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        form = await clone_the_run(pilot, app)
        assert form.kind == "dpo-online"
        values = form.all_values()
        assert values["online"] is True and values["reward"] == ["ifeval"] and values["data"] == "data/prompts.jsonl"
        assert "ref" not in values and "valid" not in values
