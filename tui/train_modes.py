"""The Train form as data: each training mode is a row of this table (its CLI command, its config
class, the fields it shows). A new mode is one more Mode here (SFT, DPO, reward model, GRPO and
online DPO are); the form widget, YAML loading and the "DPO from this run" / "clone" actions need
no change.

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
    type: str | None = None  # instead of the config's type: "rewards" (reward specs, see parse)


@dataclass(frozen=True)
class Mode:
    kind: str  # the form's name of the mode (and of its runs: default_run_name)
    label: str
    config: str  # "module:Class" of its config dataclass
    fields: tuple[FieldSpec, ...]
    command: str = ""  # `localtune train COMMAND` (default: kind)
    fixed: tuple[tuple[str, object], ...] = ()  # options the mode always sends (online DPO: online: true)
    # key -> what to say when the form leaves it empty (Start refuses; the engine would fail later)
    required: tuple[tuple[str, str], ...] = (("data", "give the training data file (train data, … picks one)"),)
    labels: tuple[tuple[str, str], ...] = ()  # key -> this mode's label of a shared field (data: "prompts")
    # a key of this mode alone, written with its default into a saved YAML that would otherwise
    # read as another kind (a reward config with only common options would load as SFT)
    marker: str | None = None

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

    def label_of(self, spec: FieldSpec) -> str:
        return dict(self.labels).get(spec.key, spec.label)

    @property
    def train_command(self) -> str:
        return self.command or self.kind


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
    ("pack", "pack rows"), ("weight_by_tokens", "weight by tokens"), ("unlikelihood", "unlikelihood"),
    ("answer_start_weight", "answer start weight"), ("answer_start_tokens", "answer start tokens"),
    ("train_on_prompt", "train on prompt"),
    ("format", "data format"), ("columns", "columns"),
))
NOT_ON_ANSWERS = {"valid", "overlong", "val_batches"}  # training on the model's own answers: no data rows
DPO_ONLY = (
    FieldSpec("beta", "beta"), FieldSpec("loss", "DPO loss"), FieldSpec("ref", "reference"),
    FieldSpec("label_smoothing", "label smoothing", advanced=True),
    FieldSpec("orpo_lambda", "ORPO lambda", advanced=True),
    FieldSpec("simpo_gamma", "SimPO gamma", advanced=True),
)

REWARD_ONLY = (
    FieldSpec("margin", "margin"),
    FieldSpec("center_rewards", "center rewards", advanced=True),
)
# Training on the model's own answers (GRPO, online DPO): the reward sources, the answer length,
# and (advanced) how answers are sampled and what happens to a cut-off one
ROLLOUT = (FieldSpec("reward", "rewards", type="rewards"), FieldSpec("max_completion", "max answer len")) + tuple(
    FieldSpec(key, label, advanced=True) for key, label in (
        ("temperature", "temperature"), ("top_p", "top p"), ("top_k", "top k"), ("min_p", "min p"),
        ("repetition_penalty", "repeat penalty"), ("truncated", "cut-off answers"),
        ("truncation_penalty", "cut-off penalty"), ("generate_batch_size", "generate batch"),
        ("micro_batch", "answers / pass")))
GRPO_ONLY = (
    FieldSpec("algo", "algorithm"), FieldSpec("group_size", "group size"), FieldSpec("kl_beta", "KL beta"),
    FieldSpec("clip_epsilon", "clip epsilon", advanced=True),
    FieldSpec("updates_per_batch", "updates / batch", advanced=True),
)
ON_ANSWERS = tuple(f for f in COMMON + ADVANCED if f.key not in NOT_ON_ANSWERS)
REWARD_HELP = ("ifeval, checks:FILE.yaml, length:MIN-MAX, python:FILE.py:FUNCTION, reward-model:RUN, "
               "judge:policy|MODEL, each optionally :WEIGHT")
NEEDS_PROMPTS_AND_REWARDS = (
    ("data", "give the prompts file (prompts, … picks one): the rows the model answers"),
    ("reward", f"give at least one reward source (rewards: {REWARD_HELP})"))

MODES = {
    "sft": Mode("sft", "SFT", "localtune.config:TrainConfig", COMMON + ADVANCED + SFT_ONLY),
    "dpo": Mode("dpo", "DPO", "localtune.config_dpo:DPOConfig", COMMON + DPO_ONLY + ADVANCED, marker="beta"),
    "reward": Mode("reward", "reward model", "localtune.config_reward:RewardConfig",
                   COMMON + REWARD_ONLY + ADVANCED, marker="margin"),
    # (before online DPO: a file with only prompts and rewards is a GRPO config)
    "grpo": Mode("grpo", "GRPO (online RL)", "localtune.config_grpo:GRPOConfig", ON_ANSWERS + ROLLOUT + GRPO_ONLY,
                 labels=(("data", "prompts"),), required=NEEDS_PROMPTS_AND_REWARDS),
    # `train dpo --online`: pairs of the model's own answers, labelled by the rewards (no --ref: the
    # reference is scored on each new pair)
    "dpo-online": Mode("dpo-online", "online DPO", "localtune.config_dpo:OnlineDPOConfig",
                       ON_ANSWERS + ROLLOUT + tuple(f for f in DPO_ONLY if f.key != "ref"), command="dpo",
                       fixed=(("online", True),), labels=(("data", "prompts"),), required=NEEDS_PROMPTS_AND_REWARDS),
}


def mode_of_run(kind: str, config: dict) -> str:
    """The form's mode of a run (its record's kind and config): an online DPO run is kind "dpo"
    with `online: true`."""
    for mode in MODES.values():
        if mode.fixed and mode.train_command == kind and all(config.get(k) == v for k, v in mode.fixed):
            return mode.kind
    return kind


@dataclass(frozen=True)
class FieldInfo:
    """A field as the form builds it: FieldSpec plus what the config class says about it."""
    spec: FieldSpec
    type: str  # "str" | "int" | "float" | "bool" | "list" | "choice" | "rewards"
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
            out[spec.key] = FieldInfo(spec, spec.type or _type_of(f), default, tuple(f.metadata.get("choices", ())),
                                      f.metadata.get("help", ""))
    return out


def shown_default(info: FieldInfo) -> str:
    """The placeholder of an empty field: what the engine does without it."""
    if info.key == "model":
        return "default (SmolLM2-135M-Instruct)"
    if info.key == "adapter":
        return "none: a fresh LoRA adapter"
    if info.type == "rewards":
        return "e.g. ifeval, length:20-120 (comma-separated)"
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
    if info.type == "rewards":
        return reward_specs(info, text)
    return text


def reward_specs(info: FieldInfo, text: str) -> list[str]:
    """Reward sources typed as `ifeval, python:my rewards.py:score:0.5` (commas or new lines
    between them: a path may hold spaces), checked by the engine's own --reward parser, so a bad
    spec is a message naming the field and the spec before anything starts."""
    from localtune.errors import LocaltuneError
    from localtune.rewards import parse_specs

    specs = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    try:
        parse_specs(specs)
    except LocaltuneError as e:  # "--reward X: ..." names the CLI flag; here the field is the place
        raise ValueError(f"{info.spec.label}: {str(e).removeprefix('--reward').lstrip(': ')}") from None
    return specs


def as_text(info: FieldInfo, value) -> str:
    if value is None:
        return ""
    if info.type == "rewards" and isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
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
    if unknown:
        raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")
    takers = {key: [m.label for m in MODES.values() if key in m.accepts()] for key in sorted(values)}
    parts = [f"{key} ({', '.join(labels)})" for key, labels in takers.items() if len(labels) < len(MODES)]
    raise ValueError(f"these options belong to different kinds of training: {'; '.join(parts)}")


def missing(kind: str, values: dict) -> list[str]:
    """What the mode needs that the form leaves empty (a run without it would fail once started)."""
    return [why for key, why in MODES[kind].required if not values.get(key)]


def savable(kind: str, values: dict) -> dict:
    """The values as a YAML file of this kind: when its keys alone would read as another kind
    (a reward-model config with only common options reads as SFT), the mode's marker key goes
    in with its default value, so loading the file switches the form back to this kind."""
    marker = MODES[kind].marker
    if marker is None or marker in values or mode_for(values, "sft") == kind:
        return values
    return {**values, marker: field_infos()[marker].default}


def yaml_keys_of_all_modes() -> tuple[str, ...]:
    """Keys any mode's config takes beyond TrainConfig (read_yaml's extra_keys)."""
    from localtune.config import FIELDS

    return tuple(sorted(set().union(*(m.keys() for m in MODES.values())) - set(FIELDS)))
