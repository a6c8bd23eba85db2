"""The Train form, built from tui.train_modes: kind, run name, each mode's common fields, an
"advanced" section, and the YAML file. Fields of other modes are hidden and never sent.
Empty fields are left to the engine's defaults (their placeholder says which).

The advanced section's ~40 widgets are built when it is first opened (they would double the
app's start-up time); until then their values live in `pending`, as config values."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Collapsible, Input, Label, Select

from tui.train_modes import MODES, FieldInfo, as_text, field_infos, mode_for, mode_of_run, parse, shown_default

RELABELLED = {key for m in MODES.values() for key, _ in m.labels}  # fields a mode names its own way
from tui.widgets.pickers import pick_into

NOT_FROM_CONFIG = ("out",)  # a cloned config gets a new run directory: the run name decides it


class TrainForm(VerticalScroll, can_focus=False):  # tab goes to the fields; they scroll into view
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.infos = field_infos()
        self.extra: dict = {}  # keys of a loaded config that have no field (sent as they are)
        self.pending: dict = {}  # advanced fields not built yet: key -> config value
        self.advanced_built = False

    def compose(self) -> ComposeResult:
        yield self._row("kind", Select([(m.label, k) for k, m in MODES.items()], value="sft",
                                       allow_blank=False, id="f-kind", compact=True))
        yield self._row("run name", Input(placeholder="kind-date-time", id="f-name", compact=True))
        common = [i for i in self.infos.values() if not i.spec.advanced]
        advanced = [i for i in self.infos.values() if i.spec.advanced]
        for info in common:
            yield self._field(info)
        self.advanced = advanced
        with Collapsible(title="advanced (grad accum, pack, LoRA, ...)", id="f-advanced"):
            yield Vertical(id="f-advanced-body")
        yield self._row("YAML file", Input(placeholder="config.yaml (ctrl+o load, ctrl+y save)", id="f-yaml",
                                           compact=True), picker="file", key="yaml")

    def _row(self, label: str, widget, picker: str | None = None, key: str | None = None,
             classes: str = "") -> Horizontal:
        parts = [Label(label, classes="field-label", id=f"l-{key}" if key else None), widget]
        if picker:
            parts.append(Button("…", id=f"pick-{key}", classes="pick", compact=True,
                                tooltip=f"pick ({picker})"))
        return Horizontal(*parts, classes=f"field {classes}".strip())

    def _field(self, info: FieldInfo) -> Horizontal:
        modes = " ".join(f"mode-{k}" for k, m in MODES.items() if info.spec in m.fields)
        wid = f"f-{info.key}"
        if info.type in ("bool", "choice"):
            options = ([("on", True), ("off", False)] if info.type == "bool"
                       else [(str(c), c) for c in info.choices])
            widget = Select(options, value=info.default, allow_blank=False, id=wid, compact=True)
        else:
            widget = Input(placeholder=shown_default(info), id=wid, compact=True, tooltip=info.help or None)
        return self._row(info.spec.label, widget, info.spec.picker, info.key, modes)

    def on_mount(self) -> None:
        self.show_mode()

    # -- reading ---------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.query_one("#f-kind", Select).value)

    @property
    def mode(self):
        return MODES[self.kind]

    @property
    def run_name(self) -> str:
        return self.query_one("#f-name", Input).value.strip()

    @property
    def yaml_path(self) -> str:
        return self.query_one("#f-yaml", Input).value.strip()

    def current_infos(self) -> list[FieldInfo]:
        return [self.infos[f.key] for f in self.mode.fields]

    def values(self) -> dict:
        """The current mode's config values as typed; raises ValueError naming a bad field.
        Empty text fields and lists/switches at their default are left out (engine default)."""
        out = {}
        for info in self.current_infos():
            if self._unbuilt(info.key):
                value = self.pending.get(info.key)
                # as the built field would send it: a switch/choice only when not the default
                if value is not None and (info.type not in ("bool", "choice") or value != info.default):
                    out[info.key] = list(value) if isinstance(value, tuple) else value
                continue
            widget = self.query_one(f"#f-{info.key}")
            if isinstance(widget, Select):
                if widget.value != info.default:
                    out[info.key] = widget.value
            elif widget.value.strip():
                out[info.key] = parse(info, widget.value)
        return out

    def all_values(self) -> dict:
        """The form plus the loaded config's keys without a field that this mode takes."""
        keys = self.mode.keys()
        return {**{k: v for k, v in self.extra.items() if k in keys}, **self.values(), **dict(self.mode.fixed)}

    # -- writing ---------------------------------------------------------------------------
    def _unbuilt(self, key: str) -> bool:
        return not self.advanced_built and key in self.infos and self.infos[key].spec.advanced

    def set_value(self, key: str, value) -> None:
        if self._unbuilt(key):
            if value is None:
                self.pending.pop(key, None)
            else:
                self.pending[key] = value
            return
        widget = self.query_one(f"#f-{key}")
        if isinstance(widget, Select):
            widget.value = self.infos[key].default if value is None else value
        else:
            widget.value = as_text(self.infos[key], value) if key in self.infos else ("" if value is None else str(value))

    def set_kind(self, kind: str) -> None:
        self.query_one("#f-kind", Select).value = kind
        self.show_mode(kind)

    def reset(self) -> None:
        """Every field back to empty / its default; nothing kept from a previous config."""
        self.extra = {}
        for info in self.infos.values():
            self.set_value(info.key, None)

    def fill(self, values: dict, kind: str | None = None) -> str:
        """Replace the form with a config mapping (a loaded YAML, a run's config): every other
        field resets, so nothing of the previous config (an `adapter:`, say) stays behind.
        The kind is `kind` (a run's: online DPO is "dpo" with online: true), or the one whose
        config takes all the keys. Returns the form's kind."""
        values = {k: v for k, v in values.items() if k not in NOT_FROM_CONFIG}
        kind = mode_of_run(kind, values) if kind else mode_for(values, self.kind)
        values = {k: v for k, v in values.items() if k not in dict(MODES[kind].fixed)}  # the kind says them
        self.reset()
        self.set_kind(kind)
        for key, value in values.items():
            if key in self.infos:
                if self.infos[key].spec in MODES[kind].fields:
                    self.set_value(key, value)
                # else: another mode's field (a DPO run's config lists pack: false): not this mode's
            elif value is not None:
                self.extra[key] = value
        return kind

    async def build_advanced(self) -> None:
        """Mount the advanced fields (first opening), with the values kept for them."""
        if self.advanced_built:
            return
        await self.query_one("#f-advanced-body").mount_all([self._field(info) for info in self.advanced])
        self.advanced_built = True
        for key, value in self.pending.items():
            self.set_value(key, value)
        self.pending = {}
        self.show_mode()

    async def on_collapsible_expanded(self, event: Collapsible.Expanded) -> None:
        if event.collapsible.id == "f-advanced":
            await self.build_advanced()

    # -- events ----------------------------------------------------------------------------
    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "f-kind":
            self.show_mode(str(event.value))

    def show_mode(self, kind: str | None = None) -> None:
        kind = kind or self.kind
        for row in self.query(".field"):
            modes = [c for c in row.classes if c.startswith("mode-")]
            row.display = not modes or f"mode-{kind}" in modes
        for key in RELABELLED:  # e.g. GRPO's "prompts" is the others' "train data"
            for label in self.query(f"#l-{key}").results(Label):
                label.update(MODES[kind].label_of(self.infos[key].spec))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        bid = event.button.id or ""
        if not bid.startswith("pick-"):
            return
        event.stop()
        key = bid.removeprefix("pick-")
        picker = "file" if key == "yaml" else self.infos[key].spec.picker
        pick_into(self.screen, picker, self.query_one(f"#f-{key}", Input))
