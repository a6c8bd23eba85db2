"""What the pickers offer: models, runs and files, as (label, value) pairs. Every value is what
the matching text field accepts typed (a model spec for localtune.models.resolve_model, a run
directory, a path), so picking and typing are the same thing. No Textual here."""

from __future__ import annotations

from pathlib import Path

from tui.render import relative

DEFAULT_MODEL = "default"  # resolve_model's name for SmolLM2-135M-Instruct
MODEL_HINT = "default, a name from Models (F5), a folder, a .gguf or a hub id"
DATA_SUFFIXES = (".jsonl", ".json", ".yaml", ".yml", ".parquet", ".csv", ".gguf")


def model_choices() -> list[tuple[str, str]]:
    """The one way models are named: "default", then models on this machine by the name
    resolve_model takes (a localtune model by its folder name, a hub-cache model by its id)."""
    from localtune.models import list_models
    from localtune.models.resolve import DEFAULT_NAME

    out = [(f"default  ({DEFAULT_NAME}, bundled)", DEFAULT_MODEL)]
    for m in list_models():
        detail = ", ".join(str(x) for x in (m.get("source"), m.get("quantization"), m.get("model_type")) if x)
        out.append((f"{m['name']}  ({detail})", m["name"]))
    return out


def run_choices(root: str | Path, *, with_adapter: bool = True) -> list[tuple[str, str]]:
    """Runs under root, newest first: those with a saved adapter (what "start from run" and
    chat take), labelled with kind and status."""
    from localtune.runs import has_adapter, list_runs

    out = []
    for run in list_runs(root):
        if with_adapter and not has_adapter(run["path"]):
            continue
        out.append((f"{run['name']}  ({run.get('kind', '?')}, {run.get('status', '?')})", relative(run["path"])))
    return out
