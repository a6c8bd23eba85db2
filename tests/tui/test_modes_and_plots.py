"""Pure parts: the mode -> fields table, model/picker names, plot ticks, CLI error wording."""

from __future__ import annotations

import pytest

from tui.render import without_cli_hints
from tui.train_modes import MODES, field_infos, mode_for, shown_default
from tui.widgets.curve_plot import integer_ticks


def test_every_mode_field_is_an_option_of_its_config():
    for mode in MODES.values():
        keys = mode.keys()
        assert all(f.key in keys for f in mode.fields), mode.kind
    infos = field_infos()
    assert infos["loss"].type == "choice" and "simpo" in infos["loss"].choices
    assert infos["pack"].type == "bool" and infos["iters"].type == "int" and infos["lora_targets"].type == "list"


def test_a_config_with_dpo_keys_is_a_dpo_config():
    assert mode_for({"data": "x", "beta": 0.2}, "sft") == "dpo"
    assert mode_for({"data": "x"}, "dpo") == "dpo"  # the current mode takes it: it stays
    assert mode_for({"data": "x", "pack": True}, "dpo") == "sft"


def test_the_suggested_model_name_is_one_resolve_model_takes():
    # The form suggests "default (SmolLM2-135M-Instruct)": both words name the bundled default,
    # and the field sends nothing when empty. (It used to suggest "SmolLM2-135M", which no
    # model field accepted.)
    from localtune.models.resolve import DEFAULT_NAME

    suggestion = shown_default(field_infos()["model"])
    assert suggestion.split()[0] == "default" and DEFAULT_NAME in suggestion


def test_integer_ticks_fit_and_are_whole_steps():
    assert integer_ticks(1, 3, 80) == [1, 2, 3]
    ticks = integer_ticks(0, 1000, 40)
    assert all(isinstance(t, int) for t in ticks) and len(ticks) <= 4 and ticks[0] == 0
    assert integer_ticks(5, 5, 40) == [5]


def test_cli_hints_are_dropped_from_messages():
    msg = ("cannot download a/b: offline (HF_HUB_OFFLINE is set); put a model directory or a .gguf "
           "path in --model, or connect and retry")
    assert without_cli_hints(msg) == "cannot download a/b: offline (HF_HUB_OFFLINE is set)"
    assert without_cli_hints("plain message") == "plain message"


def test_reward_and_grpo_configs_are_recognised_and_saved_as_their_kind():
    from tui.train_modes import MODES, missing, savable

    assert mode_for({"data": "x", "reward": ["ifeval"], "group_size": 4}, "sft") == "grpo"
    assert mode_for({"data": "x", "margin": 0.5}, "dpo") == "reward"
    assert mode_for({"data": "x", "temperature": 0.7}, "sft") == "grpo"  # a sampling knob: GRPO's
    # a reward-model config with only common options would read as SFT: the marker goes in
    assert savable("reward", {"data": "x"}) == {"data": "x", "margin": 0.0}
    assert savable("dpo", {"data": "x"}) == {"data": "x", "beta": 0.1}
    assert savable("sft", {"data": "x"}) == {"data": "x"}
    assert mode_for(savable("reward", {"data": "x"}), "sft") == "reward"
    assert missing("grpo", {"data": "p.jsonl"}) and not missing("grpo", {"data": "p.jsonl", "reward": ["ifeval"]})
    assert {f.key for f in MODES["grpo"].fields} & {"valid", "pack", "overlong", "format"} == set()
    with pytest.raises(ValueError, match="valid"):  # GRPO has no validation set: no kind takes both
        mode_for({"reward": ["ifeval"], "valid": "v.jsonl"}, "sft")


def test_reward_specs_are_split_on_commas_and_checked_by_the_engine():
    from tui.train_modes import as_text, parse

    info = field_infos()["reward"]
    assert parse(info, "ifeval,  python:my rewards.py:score:0.5\nlength:5-50") == [
        "ifeval", "python:my rewards.py:score:0.5", "length:5-50"]
    assert as_text(info, ["ifeval", "length:5-50"]) == "ifeval, length:5-50"
    with pytest.raises(ValueError, match=r"^rewards: python:r.py:2x: '2x' is not a Python function name"):
        parse(info, "python:r.py:2x")


def test_a_legend_too_wide_for_its_plot_wraps_and_names_every_curve():
    from tui.widgets.curve_plot import CurvePlot

    plot = CurvePlot("loss")
    plot.series = {"sft-demo train": ([1], [1.0]), "sft-demo valid": ([1], [1.0]), "dpo-demo train": ([1], [1.0])}
    lines = plot.legend(36).plain.split("\n")
    assert lines == ["━ sft-demo train  ━ sft-demo valid", "━ dpo-demo train"]
