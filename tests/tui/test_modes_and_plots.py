"""Pure parts: the mode -> fields table, model/picker names, plot ticks, CLI error wording."""

from __future__ import annotations

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
