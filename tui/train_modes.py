"""The Train form as data: each training mode is a row of this table (its CLI command, its config
class, the fields it shows). A new mode (reward model, GRPO) is one more Mode here; the form
widget, YAML loading and the "DPO from this run" / "clone" actions need no change.

A field's type, default, choices and help come from the engine's config dataclass, so the form
shows what `localtune train` would do with an empty field."""

from __future__ import annotations

import importlib
from dataclasses import MISSING, dataclass, fields
from functools import cache

FILE, MODEL, RUN = "file", "model", "run"  # picker kinds


@dataclass(frozen=True)
class FieldSpec:
    key: str  # the config key (a YAML key, a --flag with _ for -)
    label: str
    picker: str | None = None
    advanced: bool = False


@dataclass(frozen=True)
class Mode:
    kind: str  # `localtune train KIND`
    label: str
    config: str  # "module:Class" of its config dataclass
    fields: tuple[FieldSpec, ...]

    @property
    def config_class(self):
        module, name = self.config.split(":")
        return getattr(importlib.import_module(module), name)

    def keys(self) -> set[str]:
        return {f.name for f in fields(self.config_class)}

    def accepts(self) -> set[str]:
        """Keys a config of this mode may hold: its fields, and its config's options that no
        mode shows (e.g. `out`). An SFT-only field (pack) in a file means the file is SFT."""
        shown = {f.key for m in MODES.values() for f in m.fields}
        return {f.key for f in self.fields} | (self.keys() - shown)


# What every mode trains with (in form order); "advanced" fields sit in a collapsed section.
COMMON = (
    FieldSpec("model", "model", MODEL),
    FieldSpec("data", "train data", FILE),
    FieldSpec("valid", "valid data", FILE),
    FieldSpec("adapter", "start from run", RUN),
    FieldSpec("iters", "iters"),
    FieldSpec("batch_size", "batch size"),
    FieldSpec("lr", "learning rate"),
    FieldSpec("lora_rank", "LoRA rank"),
    FieldSpec("max_seq_len", "max seq len"),
    FieldSpec("eval_every", "eval every"),
    FieldSpec("report_every", "report every"),
)
ADVANCED = tuple(FieldSpec(key, label, advanced=True) for key, label in (
    ("epochs", "epochs"), ("grad_accum", "grad accum"), ("warmup", "warmup steps"),
    ("schedule", "lr schedule"), ("weight_decay", "weight decay"), ("grad_clip", "grad clip"),
    ("lora_alpha", "LoRA alpha"), ("lora_dropout", "LoRA dropout"), ("lora_layers", "LoRA layers"),
    ("lora_targets", "LoRA targets"), ("dora", "DoRA"), ("overlong", "overlong rows"),
    ("grad_checkpoint", "grad checkpoint"), ("val_batches", "val batches"), ("save_every", "save every"),
    ("keep_checkpoints", "keep ckpts"), ("seed", "seed"), ("skip_nonfinite", "skip NaN steps"),
    ("report_to", "report to"),
))
SFT_ONLY = tuple(FieldSpec(key, label, advanced=True) for key, label in (
    ("pack", "pack rows"), ("weight_by_tokens", "weight by tokens"), ("train_on_prompt", "train on prompt"),
    ("format", "data format"), ("columns", "columns"),
))
DPO_ONLY = (
    FieldSpec("beta", "beta"), FieldSpec("loss", "DPO loss"), FieldSpec("ref", "reference"),
    FieldSpec("label_smoothing", "label smoothing", advanced=True),
    FieldSpec("orpo_lambda", "ORPO lambda", advanced=True),
    FieldSpec("simpo_gamma", "SimPO gamma", advanced=True),
)

MODES = {
    "sft": Mode("sft", "SFT", "localtune.config:TrainConfig", COMMON + ADVANCED + SFT_ONLY),
    "dpo": Mode("dpo", "DPO", "localtune.config_dpo:DPOConfig", COMMON + DPO_ONLY + ADVANCED),
}


@dataclass(frozen=True)
class FieldInfo:
    """A field as the form builds it: FieldSpec plus what the config class says about it."""
    spec: FieldSpec
    type: str  # "str" | "int" | "float" | "bool" | "list" | "choice"
    default: object
    choices: tuple = ()
    help: str = ""

    @property
    def key(self) -> str:
        return self.spec.key


def _type_of(f) -> str:
    if f.metadata.get("choices"):
        return "choice"
    t = str(f.type)
    for name in ("bool", "int", "float"):
        if t.startswith(name):
            return name
    return "list" if t.startswith("tuple") else "str"


@cache
def field_infos() -> dict[str, FieldInfo]:
    """Every field of every mode, once (a key shared by modes is one field of the form)."""
    out: dict[str, FieldInfo] = {}
    for mode in MODES.values():
        by_name = {f.name: f for f in fields(mode.config_class)}
        for spec in mode.fields:
            if spec.key in out:
                continue
            f = by_name[spec.key]
            default = None if f.default is MISSING else f.default
            out[spec.key] = FieldInfo(spec, _type_of(f), default, tuple(f.metadata.get("choices", ())),
                                      f.metadata.get("help", ""))
    return out


def shown_default(info: FieldInfo) -> str:
    """The placeholder of an empty field: what the engine does without it."""
    if info.key == "model":
        return "default (SmolLM2-135M-Instruct)"
    if info.key == "adapter":
        return "none: a fresh LoRA adapter"
    if info.default is None or info.default == "":
        return {"iters": "one epoch", "valid": "none", "data": "a file (pick …)"}.get(info.key, "none")
    if info.type == "list":
        return " ".join(info.default)
    return f"{info.default:g}" if isinstance(info.default, float) else str(info.default)


def parse(info: FieldInfo, text: str):
    """A typed field's text as its config value; ValueError names the field."""
    text = text.strip()
    try:
        if info.type == "int":
            return int(text)
        if info.type == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"{info.spec.label}: {text!r} is not a valid {info.type}") from None
    if info.type == "list":
        return [part for part in text.replace(",", " ").split() if part]
    return text


def as_text(info: FieldInfo, value) -> str:
    if value is None:
        return ""
    if info.type == "list" and isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def mode_for(values: dict, current: str) -> str:
    """The mode a config's keys belong to: the current one when it takes every key, else the
    first that does (a YAML with `beta:` is a DPO config)."""
    order = [current, *[k for k in MODES if k != current]]
    for kind in order:
        if set(values) <= MODES[kind].accepts():
            return kind
    unknown = set(values) - set().union(*(m.keys() for m in MODES.values()))
    raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")


def yaml_keys_of_all_modes() -> tuple[str, ...]:
    """Keys any mode's config takes beyond TrainConfig (read_yaml's extra_keys)."""
    from localtune.config import FIELDS

    return tuple(sorted(set().union(*(m.keys() for m in MODES.values())) - set(FIELDS)))
