"""Models: what is on this machine (localtune's models dir and the HF cache) with size,
quantization and architecture; import a GGUF, quantize a copy, download a hub id with progress.
Every job runs in a thread worker that posts progress messages."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Input, Label, ProgressBar, Select, Static

from tui.base import BaseScreen
from tui.messages import ModelJobDone, ModelJobProgress, ModelsListed
from tui.widgets.nav_bar import NavBar
from tui.widgets.pickers import pick_into

COLUMNS = (("name", 34), ("size", 9), ("quant", 8), ("arch", 10), ("source", 6))
# what to do after a failed job, in this screen's words (the engine's hints name CLI flags)
RETRY = {"import": "check the .gguf path in the GGUF file field",
         "quantize": "pick another model in the list",
         "download": "check the hub id, or connect and retry; a .gguf file can be imported instead"}


def human_size(n: int | None) -> str:
    if not n:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class ModelsScreen(BaseScreen):
    BINDINGS = [
        Binding("ctrl+r", "refresh", "Refresh", priority=True),
        Binding("ctrl+g", "import_gguf", "Import GGUF", priority=True),
        Binding("ctrl+n", "quantize", "Quantize copy", priority=True),
        Binding("ctrl+l", "download", "Download", priority=True),
    ]

    HELP = ("The names in the list are what model fields take everywhere (Train, Datasets, Chat), "
            "besides 'default', a folder, a .gguf file or a hub id.",)

    def __init__(self) -> None:
        super().__init__()
        self.models: list[dict] = []
        self.busy = False
        self.job = ""

    def compose(self) -> ComposeResult:
        yield NavBar()
        with Vertical(id="models-body"):
            yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
            with Horizontal(classes="field"):
                yield Label("GGUF file", classes="field-label")
                yield Input(placeholder="path/to/model.gguf", id="gguf-path", compact=True)
                yield Button("…", id="pick-gguf", classes="pick", compact=True)
                yield Button("Import", id="import_gguf", compact=True)
            with Horizontal(classes="field"):
                yield Label("quantize", classes="field-label")
                yield Select([("4-bit", 4), ("8-bit", 8)], value=4, allow_blank=False, id="quant-bits", compact=True)
                yield Button("Quantize selected (copy)", id="quantize", compact=True)
            with Horizontal(classes="field"):
                yield Label("hub id", classes="field-label")
                yield Input(placeholder="e.g. HuggingFaceTB/SmolLM2-135M-Instruct", id="hub-id", compact=True)
                yield Button("Download", id="download", compact=True)
            yield ProgressBar(total=1, show_eta=False, id="job-progress")
            yield Static("", id="job-status", markup=False)
            yield Static("", id="error", classes="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one(ProgressBar).display = False
        table = self.query_one(DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width)
        self.action_refresh()

    def action_refresh(self) -> None:
        self.list_models()

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-list")
    def list_models(self) -> None:
        from localtune.models import list_models

        self.post_message(ModelsListed(list_models()))

    def on_models_listed(self, msg: ModelsListed) -> None:
        self.models = msg.models
        table = self.query_one(DataTable)
        table.clear()
        for m in self.models:
            table.add_row(m["name"], human_size(m.get("size_bytes")), m.get("quantization", "?"),
                          m.get("model_type", "?"), m.get("source", "local"), key=m["path"])
        if not self.models:
            from localtune.models import models_dir

            self.query_one("#job-status", Static).update(
                f"no models yet in {models_dir().name}/ or the HF cache: import a GGUF or download one")

    # -- jobs ------------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "pick-gguf":
            pick_into(self, "file", self.query_one("#gguf-path", Input))
        else:
            getattr(self, f"action_{event.button.id}")()

    def _begin(self, job: str, text: str) -> bool:
        if self.busy:
            self.show_error("a model job is running; wait for it")
            return False
        self.busy, self.job = True, job
        self.clear_error()
        self.query_one("#job-status", Static).update(text)
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)  # indeterminate until the first progress report
        bar.display = True
        return True

    def action_import_gguf(self) -> None:
        gguf = self.query_one("#gguf-path", Input).value.strip()
        if not gguf:
            self.show_error("type the path of a .gguf file")
        elif self._begin("import", f"importing {gguf} ..."):
            self.run_job("import", gguf)

    def action_quantize(self) -> None:
        table = self.query_one(DataTable)
        if not self.models:
            self.show_error("no model to quantize")
            return
        model = self.models[table.cursor_row]
        bits = int(self.query_one("#quant-bits", Select).value)
        if self._begin("quantize", f"quantizing {model['name']} to {bits}-bit ..."):
            self.run_job("quantize", model["path"], bits)

    def action_download(self) -> None:
        repo = self.query_one("#hub-id", Input).value.strip()
        if not repo:
            self.show_error("type a hub id like owner/name")
        elif self._begin("download", f"downloading {repo} ..."):
            self.run_job("download", repo)

    @work(thread=True, exclusive=True, exit_on_error=False, group="model-job")
    def run_job(self, kind: str, source: str, bits: int = 4) -> None:
        from localtune import models

        def progress(event: dict) -> None:
            if event.get("event") == "download" and event.get("total"):
                self.post_message(ModelJobProgress(f"{event.get('desc') or source}", event.get("done"),
                                                   event.get("total")))

        dst_root = models.models_dir()
        if kind == "import":
            out = models.import_gguf(source, dst_root / Path(source).stem, on_event=progress)
        elif kind == "quantize":
            out = models.quantize_model_dir(source, dst_root / f"{Path(source).name}-{bits}bit", bits=bits)
        else:
            out = models.download_model(source, on_event=progress)
        self.post_message(ModelJobDone(f"{kind} done: {out}"))

    def on_model_job_progress(self, msg: ModelJobProgress) -> None:
        self.query_one(ProgressBar).update(total=msg.total, progress=msg.done or 0)
        self.query_one("#job-status", Static).update(msg.text)

    def on_model_job_done(self, msg: ModelJobDone) -> None:
        self.busy = False
        self.query_one(ProgressBar).display = False
        self.query_one("#job-status", Static).update(msg.text)
        self.action_refresh()

    def worker_failed(self, worker) -> None:
        if worker.group == "model-job":
            self.busy = False
            bar = self.query_one(ProgressBar)
            bar.update(total=1, progress=0)  # stops the indeterminate animation
            bar.display = False
            self.query_one("#job-status", Static).update(
                f"{self.job} failed (the error is just below): {RETRY.get(self.job, 'try again')}")
