"""What an export starts from: a run directory (ours, or an adapter dir written by mlx_lm lora),
the base model it was trained on, and the two loaded together."""

from __future__ import annotations

from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx

from localtune.errors import ModelError, RunError
from localtune.lora import (ADAPTER_FILE, CONFIG_FILE, LoraSpec, load_adapter, read_adapter_file,
                            read_adapter_spec, read_adapter_spec_json)
from localtune.models.load import check_model_dir, check_model_weights
from localtune.runs import read_run

# Files of a model directory that an export rewrites instead of copying.
WEIGHT_FILES = ("*.safetensors", "model.safetensors.index.json", "config.json", "localtune_import.json")


def adapter_dir(run: str | Path) -> Path:
    """The run directory, checked to hold an adapter (adapter_config.json + adapters.safetensors)."""
    run = Path(run)
    if not (run / CONFIG_FILE).is_file() or not (run / ADAPTER_FILE).is_file():
        raise RunError(f"{run}: no adapter here (needs {CONFIG_FILE} and {ADAPTER_FILE}); "
                       "is it a finished run directory?")
    return run


def run_info(run: Path) -> dict:
    """The run's record; {} for an mlx_lm adapter dir (it has none). A record that is there but
    unreadable is an error: guessing the base from nothing would export onto the wrong one."""
    info = read_run(run)
    if info.problem:
        raise RunError(f"{info.problem}; restore it from a backup, or give the base with --model")
    return info.record


def base_model_path(run: str | Path, model: str | None = None) -> Path:
    """The base model a run was trained on: --model if given, else what the run's record (ours)
    or adapter_config.json (mlx_lm's "model") recorded."""
    from localtune.models import resolve_model

    run = adapter_dir(run)
    if model:
        return resolve_model(model)
    info = read_run(run)
    if info.problem:  # guessing the base without the record could export onto the wrong one
        raise RunError(f"{info.problem}; restore it from a backup, or give the base with --model")
    recorded = info.resolve(info.record.get("model_path"))
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    cfg_model = info.resolve(info.config.get("model"))
    if info.record:
        return resolve_model(cfg_model)  # None means the default model, as training did
    mlx_lm_model = read_adapter_spec_json(run).get("model")
    if mlx_lm_model:
        return resolve_model(mlx_lm_model)
    raise RunError(f"{run}: cannot tell which base model this adapter belongs to; give --model")


def base_model_id(run: str | Path, base: Path) -> str:
    """A name for the base in exported metadata: the hub id the run used, else the local path."""
    spec = (run_info(Path(run)).get("config") or {}).get("model")
    if spec and "/" in spec and not Path(spec).expanduser().exists():
        return spec
    if spec is None and run_info(Path(run)):
        from localtune.models.resolve import DEFAULT_REPO

        return DEFAULT_REPO
    return str(base)


def load_tuned(run: str | Path, model: str | None = None):
    """(model with the adapter attached, tokenizer, LoraSpec, base path); dtypes as stored."""
    from mlx_lm.utils import load

    run = adapter_dir(run)
    base = base_model_path(run, model)
    check_model_dir(base)
    check_model_weights(base)
    try:
        m, tokenizer = load(str(base))
    except (FileNotFoundError, ValueError, KeyError, OSError, RuntimeError) as e:
        raise ModelError(f"cannot load model {base}: {e}") from e
    spec: LoraSpec = load_adapter(m, run)
    mx.eval(m.parameters())
    return m, tokenizer, spec, base


def read_adapter(run: str | Path) -> tuple[LoraSpec, dict[str, mx.array]]:
    run = adapter_dir(run)
    return read_adapter_spec(run), read_adapter_file(run / ADAPTER_FILE)
