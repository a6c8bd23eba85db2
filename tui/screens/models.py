"""Models: what is on this machine (localtune's models dir and the HF cache) with size,
quantization and architecture; import a GGUF, quantize a copy, download a hub id with progress.
Every job runs in a thread worker that posts progress messages."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Header, Input, ProgressBar, Select, Static

from tui.base import BaseScreen
from tui.messages import ModelJobDone, ModelJobProgress, ModelsListed

COLUMNS = (("name", 44), ("size", 10), ("quantization", 14), ("architecture", 14), ("source", 8))


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

    def __init__(self) -> None:
        super().__init__()
        self.models: list[dict] = []
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="models-body"):
            yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
            with Horizontal(classes="bar"):
                yield Input(placeholder="path/to/model.gguf", id="gguf-path", compact=True)
                yield Button("Import GGUF", id="import_gguf", compact=True)
            with Horizontal(classes="bar"):
                yield Select([("4-bit", 4), ("8-bit", 8)], value=4, allow_blank=False, id="quant-bits", compact=True)
                yield Button("Quantize selected (copy)", id="quantize", compact=True)
            with Horizontal(classes="bar"):
                yield Input(placeholder="hub id, e.g. HuggingFaceTB/SmolLM2-135M-Instruct", id="hub-id", compact=True)
                yield Button("Download", id="download", compact=True)
            yield ProgressBar(total=1, show_eta=False, id="job-progress")
            yield Static("", id="job-status")
            yield Static("", id="error", classes="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
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
        getattr(self, f"action_{event.button.id}")()

    def _begin(self, text: str) -> bool:
        if self.busy:
            self.show_error("a model job is running; wait for it")
            return False
        self.busy = True
        self.clear_error()
        self.query_one("#job-status", Static).update(text)
        self.query_one(ProgressBar).update(total=None, progress=0)
        return True

    def action_import_gguf(self) -> None:
        gguf = self.query_one("#gguf-path", Input).value.strip()
        if not gguf:
            self.show_error("type the path of a .gguf file")
        elif self._begin(f"importing {gguf} ..."):
            self.run_job("import", gguf)

    def action_quantize(self) -> None:
        table = self.query_one(DataTable)
        if not self.models:
            self.show_error("no model to quantize")
            return
        model = self.models[table.cursor_row]
        bits = int(self.query_one("#quant-bits", Select).value)
        if self._begin(f"quantizing {model['name']} to {bits}-bit ..."):
            self.run_job("quantize", model["path"], bits)

    def action_download(self) -> None:
        repo = self.query_one("#hub-id", Input).value.strip()
        if not repo:
            self.show_error("type a hub id like owner/name")
        elif self._begin(f"downloading {repo} ..."):
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
        self.query_one(ProgressBar).update(total=1, progress=1)
        self.query_one("#job-status", Static).update(msg.text)
        self.action_refresh()

    def worker_failed(self, worker) -> None:
        if worker.group == "model-job":
            self.busy = False
            self.query_one("#job-status", Static).update("failed (see the error above)")
