"""Upload an export to the Hugging Face Hub (create_repo + upload_folder) with a model card."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from localtune.errors import LocaltuneError
from localtune.fsutil import atomic_write_text
from localtune.train.reporting import LOSS_PNG, write_loss_png


def prepare_folder(run: Path, export: Path, folder: Path, fmt: str, base_name: str) -> Path:
    """Put README.md and loss.png next to the exported files in `folder`."""
    from localtune.export.card import model_card
    from localtune.runs import read_metrics

    plot = write_loss_png(read_metrics(run), folder / LOSS_PNG)
    atomic_write_text(folder / "README.md", model_card(run, fmt, base_name, has_plot=plot is not None))
    return folder


def push_export(run: str | Path, export: str | Path, repo_id: str, *, private: bool = False,
                fmt: str | None = None, base_name: str | None = None, token: str | None = None) -> str:
    """Upload `export` (a directory, or a .gguf file) with its card to `repo_id`; returns the URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from localtune.export.source import base_model_id, base_model_path

    run, export = Path(run), Path(export)
    fmt = fmt or ("gguf" if export.suffix == ".gguf" else
                  "peft" if (export / "adapter_model.safetensors").exists() else "fused")
    base_name = base_name or base_model_id(run, base_model_path(run))
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="localtune-push-") as tmp:
        folder = export
        if export.is_file():  # a GGUF: upload it beside its card
            folder = Path(tmp)
            shutil.copy2(export, folder / export.name)
        prepare_folder(run, export, folder, fmt, base_name)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                              commit_message=f"localtune export of {run.name} ({fmt})")
        except HfHubHTTPError as e:
            raise LocaltuneError(f"upload to {repo_id} failed: {e}") from None
        except (OSError, *_transport_errors()) as e:  # offline, DNS, refused connection
            raise LocaltuneError(f"cannot reach the Hugging Face Hub to upload {repo_id}: {e}") from None
    return str(url)


def _transport_errors() -> tuple:
    """Connection errors of huggingface_hub's HTTP client (httpx, or httpx2 in hub 2.x): not OSErrors."""
    errors = []
    for name in ("httpx", "httpx2"):
        try:
            errors.append(__import__(name).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)
