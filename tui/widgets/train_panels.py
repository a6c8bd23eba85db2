"""The Train screen's two halves: the form (kind, model, data, common hyper-parameters, YAML in
and out) and the followed run (title, error, progress with ETA, numbers, curves, log tail)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Log, ProgressBar, Select, Static

from localtune.runs import latest_good_checkpoint
from tui.follow import LOSS_SERIES, RunFollower
from tui.render import relative
from tui.widgets.curve_plot import CurvePlot


def last_checkpoint(run_dir: Path) -> str | None:
    """The newest checkpoint a resume would start from."""
    found = latest_good_checkpoint(run_dir)
    return found.name if found else None


class RunView(Vertical):
    def compose(self) -> ComposeResult:
        yield Label("no run attached: start one, or pick one in Runs (F2)", id="run-title")
        yield Static("", id="run-error", classes="error")
        yield ProgressBar(total=1, show_eta=False, id="run-progress")
        yield Static("", id="run-summary")
        with Horizontal(id="run-plots"):
            yield CurvePlot("loss", id="loss-plot")
            yield CurvePlot("DPO reward accuracy / margin", "value", id="dpo-plot")
        yield Log(id="run-log", max_lines=300)

    def on_mount(self) -> None:
        self.query_one("#dpo-plot").display = False
        self.query_one("#run-error").display = False

    def clear(self) -> None:
        self.query_one("#run-log", Log).clear()
        self.query_one("#loss-plot", CurvePlot).set_series({})
        self.query_one("#dpo-plot", CurvePlot).set_series({})

    def show(self, f: RunFollower, extra_error: str = "") -> None:
        status = f.status
        self.query_one("#run-title", Label).update(
            f"run {relative(f.path)}  [{f.info.get('kind', '?')}]  status: {status}")
        error = f.info.get("error") or extra_error
        err = self.query_one("#run-error", Static)
        if error and status in ("failed", "interrupted"):
            ckpt = last_checkpoint(f.path)
            kept = f"\nlast checkpoint kept: {ckpt}" if ckpt else ""
            err.update(f"error: {error}{kept}")
            err.display = True
        else:
            err.display = False
        bar = self.query_one("#run-progress", ProgressBar)
        if f.iters:
            bar.update(total=f.iters, progress=min(f.step, f.iters))
        self.query_one("#run-summary", Static).update(f.summary())
        self.query_one("#loss-plot", CurvePlot).set_series(
            {n: f.series[n] for n in LOSS_SERIES if n in f.series})
        dpo = self.query_one("#dpo-plot", CurvePlot)
        dpo.display = f.is_dpo
        title = "DPO reward accuracy / margin" if f.info.get("kind") == "dpo" else "reward"
        if title != dpo.title:
            dpo.title = title
            dpo.replot()
        dpo.set_series({n: f.series[n] for n in f.reward_series if n in f.series})
        if f.new_log:
            self.query_one("#run-log", Log).write_lines(f.new_log)


# (config key, label, type, default shown)
FIELDS = [
    ("model", "model", str, ""),
    ("data", "train data", str, ""),
    ("valid", "valid data", str, ""),
    ("iters", "iters", int, ""),
    ("batch_size", "batch size", int, "4"),
    ("lr", "learning rate", float, "1e-4"),
    ("lora_rank", "LoRA rank", int, "8"),
    ("max_seq_len", "max seq len", int, "2048"),
    ("eval_every", "eval every", int, "100"),
    ("report_every", "report every", int, "10"),
]
KINDS = [("SFT", "sft"), ("DPO", "dpo")]


class TrainForm(VerticalScroll):
    def compose(self) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label("kind", classes="field-label")
            yield Select(KINDS, value="sft", allow_blank=False, id="f-kind", compact=True)
        with Horizontal(classes="field"):
            yield Label("run name", classes="field-label")
            yield Input(placeholder="(default: kind-date-time)", id="f-name", compact=True)
        for key, label, _, default in FIELDS:
            with Horizontal(classes="field"):
                yield Label(label, classes="field-label")
                yield Input(value=default, id=f"f-{key}", compact=True,
                            placeholder="default" if key != "model" else "(default: SmolLM2-135M)")
        with Horizontal(classes="field"):
            yield Label("YAML file", classes="field-label")
            yield Input(placeholder="config.yaml (ctrl+o / ctrl+y)", id="f-yaml", compact=True)

    @property
    def kind(self) -> str:
        return str(self.query_one("#f-kind", Select).value)

    @property
    def run_name(self) -> str:
        return self.query_one("#f-name", Input).value.strip()

    @property
    def yaml_path(self) -> str:
        return self.query_one("#f-yaml", Input).value.strip()

    def values(self) -> dict:
        """Config values as typed; raises ValueError naming the field that does not parse."""
        out = {}
        for key, label, typ, _ in FIELDS:
            text = self.query_one(f"#f-{key}", Input).value.strip()
            if not text:
                continue
            try:
                out[key] = typ(text)
            except ValueError:
                raise ValueError(f"{label}: {text!r} is not a valid {typ.__name__}") from None
        return out

    def set_value(self, key: str, value) -> None:
        self.query_one(f"#f-{key}", Input).value = "" if value is None else str(value)

    def fill(self, values: dict) -> None:
        """Fill from a config mapping (a loaded YAML); keys without a field are kept aside."""
        self.extra = {k: v for k, v in values.items() if k not in {f[0] for f in FIELDS}}
        for key, *_ in FIELDS:
            if key in values:
                self.set_value(key, values[key])

    def all_values(self) -> dict:
        """The form plus the YAML options it has no field for (kept from the loaded file)."""
        return {**getattr(self, "extra", {}), **self.values()}
