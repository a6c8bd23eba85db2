"""Training configuration: built-in defaults -> YAML file -> command-line flags, layered once
into a frozen dataclass. Each field's help text lives next to it and feeds the CLI's --help."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from localtune.errors import LocaltuneError
from localtune.lora import ALL_LINEAR, LoraSpec
from localtune.runs.info import PATH_KEYS


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    # what to train
    model: str | None = _f(None, "model dir, .gguf file, or Hugging Face repo id (default: SmolLM2-135M-Instruct)")
    data: str | None = _f(None, "training data file (JSONL or JSON array) or Hugging Face dataset id (owner/name[:split])")
    valid: str | None = _f(None, "validation data file, or a dataset id (its validation/test split)")
    out: str | None = _f(None, "run directory (default: adapters/<kind>-<time>)")
    adapter: str | None = _f(None, "start from this run's adapter (e.g. SFT before DPO)")
    format: str | None = _f(None, "data format: messages, alpaca, prompt_completion, text, sharegpt (default: detect)")
    columns: str | None = _f(None, "map dataset columns to the expected keys, e.g. question=instruction,answer=output")
    train_on_prompt: bool = _f(False, "train on every token, not only the assistant turns")
    # schedule
    iters: int | None = _f(None, "optimizer steps (default: one epoch)")
    epochs: float | None = _f(None, "epochs over the data, used when --iters is not given")
    batch_size: int = _f(4, "examples per micro-batch")
    grad_accum: int = _f(1, "micro-batches per optimizer step")
    lr: float = _f(1e-4, "peak learning rate")
    warmup: int = _f(0, "linear warm-up steps")
    schedule: str = _f("cosine", "learning-rate schedule after warm-up", choices=("cosine", "linear", "constant"))
    weight_decay: float = _f(0.0, "AdamW weight decay")
    grad_clip: float | None = _f(None, "clip the global gradient norm to this value")
    weight_by_tokens: bool = _f(True, "SFT: weight each step by its target tokens, so every token counts the same "
                                    "over an epoch (off: every batch's mean counts the same, as mlx_lm)")
    unlikelihood: float = _f(0.0, "SFT: weight of an unlikelihood term that pushes down tokens the answer has "
                                  "already used where they are not next (Welleck et al. 2020; against "
                                  "answers that loop; 0 = off)")
    answer_start_weight: float = _f(1.0, "SFT: weight of each answer's first --answer-start-tokens tokens in the "
                                         "loss (they decide a format such as lowercase or quotes; 1 = off)")
    answer_start_tokens: int = _f(3, "SFT: how many of each answer's first tokens --answer-start-weight weights")
    # adapter
    lora_rank: int = _f(8, "LoRA rank r")
    lora_alpha: float = _f(16.0, "LoRA alpha; the update is scaled by alpha / rank")
    lora_dropout: float = _f(0.0, "dropout on the LoRA input")
    lora_layers: int = _f(16, "adapt the last N transformer blocks (-1: all)")
    lora_targets: tuple[str, ...] = _f(ALL_LINEAR, "module names inside a block to adapt", nargs="+")
    dora: bool = _f(False, "DoRA: learn a per-row magnitude as well")
    # sequence and memory
    max_seq_len: int = _f(2048, "tokens per example; longer rows are handled per --overlong")
    overlong: str = _f("truncate", "what to do with rows over --max-seq-len", choices=("truncate", "drop"))
    pack: bool = _f(False, "pack several rows into each --max-seq-len sequence (attention stays within "
                           "each row; --batch-size then counts packed sequences)")
    grad_checkpoint: bool = _f(False, "recompute activations in the backward pass (less memory, ~30%% slower)")
    # bookkeeping
    seed: int = _f(0, "seed for data order, adapter init and dropout")
    eval_every: int = _f(100, "validate every N steps (0: only at the end)")
    val_batches: int = _f(-1, "validation batches per evaluation (-1: the whole set)")
    save_every: int = _f(100, "checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = _f(3, "checkpoints to keep (the newest)")
    report_every: int = _f(10, "log training loss every N steps")
    skip_nonfinite: bool = _f(False, "skip a batch whose loss or gradient is NaN/Inf instead of stopping")
    report_to: str | None = _f(None, "also log metrics to tensorboard and/or wandb (comma-separated; off by default)")
    # judging the answers during training (the evaluation of `localtune eval`, at each eval point)
    eval_file: str | None = _f(None, "prompts the model answers at each eval point (--eval-every): IFEval rows, "
                                     "a prompts file (one a line) or chat rows (their last answer removed); "
                                     "logs eval_* metrics (ended, loops, IFEval, checks) and RUN/eval/step-N/")
    eval_checks: str | None = _f(None, "your own checks (YAML, as `localtune eval --checks`) for --eval-file's "
                                       "answers: eval_check_<name> and eval_checks_passed")
    eval_max_tokens: int = _f(128, "most tokens per answer in --eval-file's evaluation")
    eval_temperature: float = _f(0.0, "sampling temperature of --eval-file's answers (0 = greedy)")
    keep_best: str | None = _f(None, "the run's final adapter is the checkpoint with the best value of this "
                                     "metric: val_loss, val_reward_accuracy, or an eval_* metric (eval_checks_passed, "
                                     "eval_loops, eval_prompt_strict ...); checkpoints are saved at every eval "
                                     "point and the best one is never pruned")
    patience: int | None = _f(None, "with --keep-best: stop early after this many evaluations in a row "
                                    "without a better value")
    keep_best_if: str | None = _f(None, "with --keep-best: only evaluations that meet these conditions are "
                                        "candidates, e.g. 'eval_ended>=0.95' or 'eval_ended>=0.95,eval_loops<=0.1' "
                                        "(the best accuracy among checkpoints whose answers still end)")

    def __post_init__(self):
        problems = self.mode_problems()
        if problems:
            raise LocaltuneError("bad configuration: " + "; ".join(problems))

    def mode_problems(self) -> list[str]:
        """The checks run on construction: the shared options' ranges, eval during training and
        keep-best. A mode's config extends this (calling super(), so configs that combine modes,
        e.g. online DPO, run every check)."""
        return problems(self) + eval_problems(self)

    def lora_spec(self) -> LoraSpec:
        return LoraSpec(
            rank=self.lora_rank,
            alpha=self.lora_alpha,
            dropout=self.lora_dropout,
            layers=self.lora_layers,
            targets=tuple(self.lora_targets),
            dora=self.dora,
        )

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def with_absolute_paths(self) -> "TrainConfig":
        """Local paths made absolute (the run's record must not depend on the directory it was
        started from); hub ids and the default model stay as given."""
        changes = {k: local_path(getattr(self, k)) for k in PATH_FIELDS}
        changes["out"] = os.path.abspath(os.path.expanduser(self.out)) if self.out else self.out
        return self.replace(**changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["lora_targets"] = list(self.lora_targets)
        return d


FIELDS = {f.name: f for f in fields(TrainConfig)}
PATH_FIELDS = PATH_KEYS  # options that may name local files (the run's record keeps them absolute)


def local_path(value: str | None) -> str | None:
    """An existing local path as an absolute one; anything else (a hub id, None) unchanged."""
    if not value or not Path(value).expanduser().exists():
        return value
    return os.path.abspath(os.path.expanduser(value))


def _coerce(name: str, value, where: str):
    """Check a YAML value against the field's type; ints are accepted for floats."""
    f = FIELDS[name]
    default = f.default
    if value is None:
        return None
    if name == "lora_targets":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise LocaltuneError(f"{where}: {name} must be a list of module names")
        return tuple(value)
    t = f.type if isinstance(f.type, str) else str(f.type)
    if isinstance(default, bool) or t.startswith("bool"):
        ok = isinstance(value, bool)
    elif isinstance(default, float) or t.startswith("float"):
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int) or t.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
        if not ok and isinstance(value, (int, float)) and name in ("model",):
            value, ok = str(value), True
    if not ok:
        raise LocaltuneError(f"{where}: {name} has the wrong type ({type(value).__name__}: {value!r})")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise LocaltuneError(f"{where}: {name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def read_yaml(path: str | Path, *, extra_keys: tuple[str, ...] = ()) -> dict:
    """Read a config YAML; unknown keys and wrong types are errors naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise LocaltuneError(f"{path}: config file not found") from None
    except UnicodeDecodeError as e:
        raise LocaltuneError(f"{path}: not a text (UTF-8) YAML file ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "1"
        raise LocaltuneError(f"{path}:{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LocaltuneError(f"{path}:1: a config must be a mapping of option: value")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if node is not None else {}
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        where = f"{path}:{lines.get(key, 1)}"
        if name in extra_keys:
            out[name] = value
            continue
        if name not in FIELDS:
            raise LocaltuneError(f"{where}: unknown option {key!r}")
        out[name] = _coerce(name, value, where)
    return out


def build_config(
    yaml_path: str | Path | None = None, overrides: dict | None = None, cls=TrainConfig
) -> TrainConfig:
    """Layer built-in defaults, then the YAML file, then explicit overrides (flags given)."""
    values: dict = {}
    if yaml_path:
        extra = tuple(f.name for f in fields(cls) if f.name not in FIELDS)
        values.update(read_yaml(yaml_path, extra_keys=extra))
    for k, v in (overrides or {}).items():
        if v is not None:
            values[k] = tuple(v) if k == "lora_targets" else v
    try:
        return cls(**values)  # __post_init__ range-checks every option
    except TypeError as e:
        raise LocaltuneError(f"bad configuration: {e}") from None


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# (field, test, what it must be): every numeric option, checked when a config is built (flags,
# YAML or a resume's overrides alike), so nothing nonsensical reaches a run.
RULES = (
    ("batch_size", lambda v: _num(v) and v >= 1, ">= 1"),
    ("grad_accum", lambda v: _num(v) and v >= 1, ">= 1"),
    ("lr", lambda v: _num(v) and v > 0, "a finite number > 0"),
    ("warmup", lambda v: _num(v) and v >= 0, ">= 0"),
    ("iters", lambda v: v is None or (_num(v) and v >= 1), ">= 1"),
    ("epochs", lambda v: v is None or (_num(v) and v > 0), "a finite number > 0"),
    ("weight_decay", lambda v: _num(v) and v >= 0, "a finite number >= 0"),
    ("grad_clip", lambda v: v is None or (_num(v) and v > 0), "a finite number > 0 (leave it out for no clipping)"),
    ("lora_rank", lambda v: _num(v) and v >= 1, ">= 1"),
    ("lora_alpha", lambda v: _num(v) and v > 0, "a finite number > 0 (the update is scaled by alpha / rank; "
                                                "0 would train nothing)"),
    ("unlikelihood", lambda v: _num(v) and v >= 0, "a finite number >= 0 (0 = off)"),
    ("answer_start_weight", lambda v: _num(v) and v > 0, "a finite number > 0 (1 = off)"),
    ("answer_start_tokens", lambda v: _num(v) and v >= 1, ">= 1"),
    ("lora_dropout", lambda v: _num(v) and 0 <= v < 1, "in [0, 1)"),
    ("lora_layers", lambda v: _num(v) and (v == -1 or v >= 1), "-1 (all blocks) or the number of last blocks "
                                                              "to adapt, >= 1"),
    ("max_seq_len", lambda v: _num(v) and v >= 8, ">= 8"),
    ("seed", lambda v: _num(v) and 0 <= v < 2**32, "in [0, 2^32)"),
    ("eval_every", lambda v: _num(v) and v >= 0, ">= 0 (0: only at the end)"),
    ("val_batches", lambda v: _num(v) and (v == -1 or v >= 1), "-1 (the whole set) or >= 1"),
    ("save_every", lambda v: _num(v) and v >= 0, ">= 0 (0: only at the end)"),
    ("keep_checkpoints", lambda v: _num(v) and v >= 1, ">= 1"),
    ("report_every", lambda v: _num(v) and v >= 1, ">= 1"),
)


def problems(cfg: TrainConfig) -> list[str]:
    """What is out of range in `cfg`, one phrase per option (empty when all is well)."""
    out = []
    for name, ok, what in RULES:
        value = getattr(cfg, name)
        if not ok(value):
            out.append(f"{name} must be {what} (got {value!r})")
    return out


def check_mode_fields(cfg, names) -> list[str]:
    """Type-check a mode's own config fields (`names`), converting in place what YAML or a run's
    record gives in another spelling (a float written "1e-4", a list for a tuple). YAML values of
    these fields bypass _coerce (it only knows TrainConfig's fields), so a mode's mode_problems()
    calls this. Returns the problems, as "name must be ..." phrases."""
    problems = []
    for f in fields(cfg):
        if f.name not in names:
            continue
        value, default = getattr(cfg, f.name), f.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                problems.append(f"{f.name} must be true or false (got {value!r})")
            continue
        if isinstance(default, float):
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    pass
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{f.name} must be a number (got {value!r})")
                continue
            value = float(value)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{f.name} must be a whole number (got {value!r})")
                continue
        elif isinstance(default, tuple):
            value = (value,) if isinstance(value, str) else value
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                problems.append(f"{f.name} must be a list of strings (got {value!r})")
                continue
            value = tuple(value)
        if f.metadata.get("choices") and value not in f.metadata["choices"]:
            problems.append(f"{f.name} must be one of {', '.join(f.metadata['choices'])} (got {value!r})")
            continue
        object.__setattr__(cfg, f.name, value)
    return problems


def eval_problems(cfg: TrainConfig) -> list[str]:
    """What is wrong with the eval-during-training and keep-best options (their names as flags)."""
    from localtune.train.keep_best import conditions_problem, metric_problem

    out = []
    if cfg.eval_checks and not cfg.eval_file:
        out.append("eval_checks needs eval_file (the prompts whose answers it checks)")
    if cfg.eval_max_tokens < 1:
        out.append("eval_max_tokens must be >= 1")
    if not cfg.eval_temperature >= 0:
        out.append("eval_temperature must be >= 0 (0 = greedy)")
    if cfg.patience is not None and cfg.patience < 1:
        out.append("patience must be >= 1 (evaluations without a better value before stopping)")
    if cfg.patience is not None and not cfg.keep_best:
        out.append("patience needs keep_best (the metric whose progress it watches)")
    if cfg.keep_best:
        problem = metric_problem(cfg.keep_best, valid=bool(cfg.valid), eval_file=bool(cfg.eval_file),
                                 eval_checks=bool(cfg.eval_checks))
        if problem:
            out.append(problem)
    if cfg.keep_best_if is not None and not cfg.keep_best:
        out.append("keep_best_if needs keep_best (the metric compared among the evaluations that meet it)")
    elif cfg.keep_best_if is not None:
        problem = conditions_problem(cfg.keep_best_if, valid=bool(cfg.valid), eval_file=bool(cfg.eval_file),
                                     eval_checks=bool(cfg.eval_checks))
        if problem:
            out.append(problem)
    return out


def pair_mode_problems(cfg, mode: str) -> list[str]:
    """SFT options that do not apply to a mode trained on preference pairs (DPO, reward models)."""
    problems = []
    if cfg.train_on_prompt:
        problems.append(f"train_on_prompt does not apply to {mode} (the loss is on the responses)")
    if cfg.pack:
        problems.append(f"pack applies to SFT only ({mode} batches chosen and rejected side by side)")
    if cfg.unlikelihood:
        problems.append(f"unlikelihood applies to SFT only ({mode} has a loss of its own)")
    if cfg.answer_start_weight != 1.0:
        problems.append(f"answer_start_weight applies to SFT only ({mode} has a loss of its own)")
    if cfg.format is not None:
        problems.append(f"format does not apply to {mode} (preference files are detected by their keys)")
    return problems
