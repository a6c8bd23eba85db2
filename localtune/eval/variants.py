"""Side by side from one loaded model: the base (adapters off) and each run's adapter in turn.

Adapters of the same shape only swap weights; another shape (rank, layers, targets, DoRA) is attached
after the previous one is taken off. Every run must have been trained on the model that is loaded
(the run record's model_path); a folder that is not a run (an mlx_lm adapter folder) is checked by its weights'
names and shapes when they load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localtune.errors import RunError
from localtune.lora import (ADAPTER_FILE, detach_lora, load_adapter, load_adapter_weights, read_adapter_spec,
                            set_adapter_enabled)

BASE = "base"


@dataclass(frozen=True)
class Variant:
    """A model to evaluate: `adapter` None is the base model (adapters off)."""

    name: str
    adapter: Path | None = None


def trained_on(run_dir) -> str | None:
    """The base model a run was trained on (its record's model_path), None when it does not say."""
    from localtune.runs import RunDir, read_run

    if not RunDir(run_dir).exists():
        return None
    info = read_run(run_dir)
    path = info.resolve(info.record.get("model_path"))
    return str(path) if path else None


def model_for_runs(adapters: list) -> str | None:
    """The model to load for these runs: the first run's base (None: the default model)."""
    return next((m for m in (trained_on(a) for a in adapters) if m), None)


def check_shared_base(model_path, adapters: list) -> None:
    """RunError naming the run when one was trained on another model than `model_path`."""
    here = Path(model_path).expanduser().resolve()
    for a in adapters:
        base = trained_on(a)
        if base is not None and Path(base).expanduser().resolve() != here:
            raise RunError(f"{a} was trained on {base}, not on the evaluated model {here}: a side-by-side "
                           f"eval compares adapters of one base model; evaluate this run on its own "
                           f"(--model {base} --adapter {a})")


def variants_for(adapters: list, *, include_base: bool = True) -> list[Variant]:
    """The base (unless include_base is False) and one Variant per adapter directory, named after it
    (a clash of names adds the parent folder, then a number)."""
    out = [Variant(BASE)] if include_base else []
    taken = {v.name for v in out}
    for a in adapters:
        path = Path(a)
        if not (path / ADAPTER_FILE).is_file():
            raise RunError(f"{path}: no {ADAPTER_FILE} here (is it a run directory?)")
        name = path.resolve().name
        if name in taken:
            name = f"{path.resolve().parent.name}/{name}"
        base, k = name, 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        taken.add(name)
        out.append(Variant(name, path))
    return out


class AdapterSwitch:
    """Puts one loaded model in the state of each Variant in turn."""

    def __init__(self, model):
        self.model = model
        self.spec = None  # the shape of the adapter layers now attached

    def activate(self, variant: Variant) -> None:
        if variant.adapter is None:
            set_adapter_enabled(self.model, False)
            return
        spec = read_adapter_spec(variant.adapter)
        if spec == self.spec:
            load_adapter_weights(self.model, Path(variant.adapter) / ADAPTER_FILE)
        else:
            detach_lora(self.model)
            self.spec = None
            load_adapter(self.model, variant.adapter)
            self.spec = spec
        set_adapter_enabled(self.model, True)
