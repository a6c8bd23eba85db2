"""The events the engine emits, and the metrics they carry: names and fields in one place.

On the wire an event is a plain JSON object `{"event": NAME, ...fields}`: what `on_event(dict)`
callbacks receive and what the run's metrics log holds, one per line. Emitters build the typed
classes below and send `.to_dict()`; readers (the CLI progress, the TUI follower, the run list, the
model card) turn dicts back into classes with `parse(d)` and dispatch on the class.

Metrics: every number a loss reports becomes a field of the `train` event (and, prefixed `val_`,
of the `val` event). How a metric is shown (its label, which plot, its format, where it appears)
is one `Metric` in METRICS. A training mode may declare more (`TrainingTask.metrics`): they are
stored in the run's record, so a reader in another process shows them without importing the mode.
"""

from __future__ import annotations

import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Callable, ClassVar, Iterable

OnEvent = Callable[[dict], None]


def ignore(event: dict) -> None:
    """The default on_event: nobody listens."""


# --- metrics ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """How one number of the train/val events is shown.

    key: the event field ("val_reward_accuracy"). label: its short name in plots, the TUI summary
    and the CLI progress ("val reward acc"). plot: the plot it is drawn on ("loss", "reward") or
    None. fmt: the number format. show: the text template (label and formatted value).
    summary: in the one-line summaries (CLI progress, TUI). card: in the model card's results.
    final: `list_runs` reports its last value as `final_<key>`. better: "lower" or "higher" when one
    direction is better (what --keep-best compares), None when neither is (answer length).
    """

    key: str
    label: str
    plot: str | None = None
    fmt: str = ".4f"
    show: str = "{label} {value}"
    summary: bool = False
    card: bool = False
    final: bool = False
    better: str | None = None

    def text(self, value) -> str:
        return self.show.format(label=self.label, value=format(value, self.fmt))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Metric | None":
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError:  # a malformed declaration in an old or edited record: ignore it
            return None


PLOTS = {"loss": "loss", "reward": "reward accuracy / margin",
         "answers": "answers (eval during training)"}  # plot name -> title

METRICS: tuple[Metric, ...] = (
    Metric("train_loss", "train", plot="loss", summary=True, card=True, final=True, better="lower"),
    Metric("val_loss", "valid", plot="loss", summary=True, card=True, final=True, better="lower"),
    Metric("tokens_per_sec", "tok/s", fmt=".0f", show="{value} tok/s", summary=True),
    Metric("peak_memory_gb", "peak", fmt=".2f", show="peak {value} GB", summary=True),
    # Preference runs (DPO; a reward model reports the same): implicit reward of chosen vs rejected.
    # In the summaries "acc": short, as the CLI and TUI have always said it (a DPO summary line fits
    # an 80-column terminal); the plots name the series in full.
    Metric("reward_accuracy", "reward acc", plot="reward", fmt=".3f", show="acc {value}", summary=True),
    Metric("val_reward_accuracy", "val reward acc", plot="reward", fmt=".3f", card=True, better="higher"),
    Metric("reward_margin", "margin", plot="reward", fmt=".3f", summary=True),
    Metric("val_reward_margin", "val margin", plot="reward", fmt=".3f", better="higher"),
    Metric("margin", "margin", plot="reward", fmt=".3f"),  # older/alternative spellings
    Metric("val_margin", "val margin", plot="reward", fmt=".3f"),
    Metric("reward_chosen", "reward chosen", fmt=".3f"),
    Metric("reward_rejected", "reward rejected", fmt=".3f"),
    Metric("logp_drift", "logp drift", fmt=".3f"),
)


def metric_set(extra: Iterable[Metric | dict] = ()) -> dict[str, Metric]:
    """key -> Metric: the built-in ones, then a run's own declarations (which win)."""
    out = {m.key: m for m in METRICS}
    for m in extra:
        m = Metric.from_dict(m) if isinstance(m, dict) else m
        if m is not None:
            out[m.key] = m
    return out


def plot_labels(plot: str, metrics: dict[str, Metric] | None = None) -> tuple[str, ...]:
    """The series names drawn on one plot, in registry order (labels may repeat across keys)."""
    metrics = metrics or metric_set()
    return tuple(dict.fromkeys(m.label for m in metrics.values() if m.plot == plot))


def summary_text(values: dict, metrics: dict[str, Metric] | None = None) -> str:
    """The summary metrics present in `values`, in registry order, as 'label value' pieces."""
    metrics = metrics or metric_set()
    return "  ".join(m.text(values[k]) for k, m in metrics.items()
                     if m.summary and isinstance(values.get(k), (int, float)))


# --- events -------------------------------------------------------------------------------------

_REGISTRY: dict[str, type["Event"]] = {}


@dataclass(frozen=True)
class Event:
    """Base of every event. Class flags say where the session sends it besides on_event:
    `recorded`: appended to the run's metrics log (followers read it); `logged`: a line in train.log."""

    name: ClassVar[str] = ""
    recorded: ClassVar[bool] = False
    logged: ClassVar[bool] = False
    keep_none: ClassVar[bool] = False  # write None fields as null (else they are left out)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.name:
            _REGISTRY[cls.name] = cls

    def to_dict(self) -> dict:
        out = {"event": self.name}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and not self.keep_none:
                continue
            out[f.name] = dict(value) if isinstance(value, dict) else value
        return out

    @classmethod
    def from_dict(cls, d: dict):
        """Tolerant: missing fields take their defaults (None when a required one is missing)."""
        kw = {}
        for f in fields(cls):
            if f.name in d:
                kw[f.name] = d[f.name]
            elif f.default is MISSING and f.default_factory is MISSING:
                kw[f.name] = None
        return cls(**kw)


def parse(d: dict) -> Event | None:
    """A dict (one metrics line, one on_event call) as its typed event; None if the name is unknown."""
    cls = _REGISTRY.get(d.get("event")) if isinstance(d, dict) else None
    return cls.from_dict(d) if cls else None


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


# Stages of a run, in the order a run goes through them. Emitted at each change (and, for
# counted ones, as the count moves: at most about once a second).
PHASES = {
    "loading_model": "loading model",
    "preparing_data": "preparing data",
    "scoring_reference": "scoring reference",
    "training": "training",
    "generating": "generating answers",  # online RL: the policy answers the batch's prompts (n/N answers)
    "scoring": "scoring answers",  # online RL: the reward sources judge them
    "evaluating": "evaluating",
    "saving": "saving",
    "stopping": "stopping",
}


@dataclass(frozen=True)
class Phase(Event):
    name: ClassVar[str] = "phase"
    recorded: ClassVar[bool] = True
    keep_none: ClassVar[bool] = True
    phase: str
    done: int | None = None
    total: int | None = None
    time: float = 0.0

    def text(self) -> str:
        label = PHASES.get(self.phase, str(self.phase))
        return f"{label} {self.done}/{self.total}" if self.total else label


@dataclass(frozen=True)
class Model(Event):
    name: ClassVar[str] = "model"
    logged: ClassVar[bool] = True
    path: str


@dataclass(frozen=True)
class Download(Event):
    """Model or dataset download: its stages (start, done, resolved, convert), a cached hit, and
    per-file progress (desc, done/total in unit)."""

    name: ClassVar[str] = "download"
    repo: str
    repo_type: str | None = None
    stage: str | None = None
    path: str | None = None
    cached: bool | None = None
    split: str | None = None
    desc: str | None = None
    done: int | None = None
    total: int | None = None
    unit: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Import(Event):
    name: ClassVar[str] = "import"
    stage: str
    path: str | None = None
    tensors: int | None = None
    done: int | None = None
    total: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class Data(Event):
    """A data file read: rows in it, rows usable after checks and --max-seq-len, tokens kept."""

    name: ClassVar[str] = "data"
    logged: ClassVar[bool] = True
    file: str  # its role: "train" or "valid"
    path: str
    format: str
    rows: int
    usable: int
    problems: int = 0
    truncated: int = 0
    dropped: int = 0
    identical: int = 0  # preference pairs whose chosen and rejected became the same when cut
    tokens: int = 0


@dataclass(frozen=True)
class DataProblem(Event):
    name: ClassVar[str] = "data_problem"
    logged: ClassVar[bool] = True
    file: str
    message: str


@dataclass(frozen=True)
class Reference(Event):
    """DPO reference log-probs of a file: computed, loaded from this run, or reused from a sibling."""

    name: ClassVar[str] = "reference"
    logged: ClassVar[bool] = True
    file: str
    status: str
    path: str
    pairs: int
    key: str
    seconds: float


@dataclass(frozen=True)
class Start(Event):
    """The loop is about to start (step > 0 on resume). `metrics`: the mode's own Metric
    declarations, so a live display can show them."""

    name: ClassVar[str] = "start"
    run: str
    iters: int
    step: int
    batches_per_epoch: int
    trainable_params: int
    total_params: int
    weight_unit: str = "tokens"
    metrics: list | None = None


@dataclass(frozen=True)
class Train(Event):
    """A training report: the window's mean loss and metrics since the last report.

    trained_tokens counts target tokens (those the loss reads) in every mode; weight_total sums the
    loss weights, in weight_unit (tokens for SFT, pairs for DPO)."""

    name: ClassVar[str] = "train"
    recorded: ClassVar[bool] = True
    keep_none: ClassVar[bool] = True  # a non-finite loss is written as null, not left out
    step: int
    train_loss: float | None
    lr: float = 0.0
    tokens_per_sec: float = 0.0
    trained_tokens: int = 0
    tokens: int = 0
    weight_total: float | None = None
    weight_unit: str | None = None
    peak_memory_gb: float = 0.0
    elapsed: float = 0.0
    time: float = 0.0
    metrics: dict = field(default_factory=dict)  # a mode's own numbers (reward_accuracy, ...)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.update(out.pop("metrics"))  # flat on the wire: {"reward_accuracy": 0.8, ...}
        return out

    @classmethod
    def from_dict(cls, d: dict):
        return _with_metrics(cls, d)

    def values(self) -> dict:
        """Every number of the report by metric key (for the registry)."""
        return _numbers(self)


@dataclass(frozen=True)
class Val(Event):
    """A validation pass: loss and metrics (each prefixed val_) over the validation batches."""

    name: ClassVar[str] = "val"
    recorded: ClassVar[bool] = True
    keep_none: ClassVar[bool] = True
    step: int
    val_loss: float | None
    val_time: float = 0.0
    metrics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.update(out.pop("metrics"))
        return out

    @classmethod
    def from_dict(cls, d: dict):
        return _with_metrics(cls, d)

    def values(self) -> dict:
        return _numbers(self)


def _with_metrics(cls, d: dict):
    """The event's own fields from d, and every other number in d as its metrics."""
    own = {f.name for f in fields(cls)} | {"event"}
    base = Event.from_dict.__func__(cls, {k: v for k, v in d.items() if k != "metrics"})
    extra = {k: v for k, v in d.items()
             if k not in own and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return _replace(base, metrics=extra)


def _replace(ev, **changes):
    from dataclasses import replace

    return replace(ev, **changes)


def _numbers(ev) -> dict:
    out = {f.name: getattr(ev, f.name) for f in fields(ev) if f.name != "metrics"}
    out.update(ev.metrics)
    return {k: v for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


@dataclass(frozen=True)
class Skipped(Event):
    """A step whose loss or gradient was not finite, skipped (--skip-nonfinite)."""

    name: ClassVar[str] = "skipped"
    recorded: ClassVar[bool] = True
    step: int
    reason: str


@dataclass(frozen=True)
class Checkpoint(Event):
    name: ClassVar[str] = "checkpoint"
    logged: ClassVar[bool] = True
    step: int
    path: str


@dataclass(frozen=True)
class UnusableCheckpoint(Event):
    """On resume: a checkpoint that is torn or incomplete, passed over for an older one."""

    name: ClassVar[str] = "unusable_checkpoint"
    logged: ClassVar[bool] = True
    path: str
    reason: str


@dataclass(frozen=True)
class Resumed(Event):
    name: ClassVar[str] = "resumed"
    logged: ClassVar[bool] = True
    step: int
    checkpoint: str


@dataclass(frozen=True)
class Notice(Event):
    """Something the user should know that is not an error (shown, and written to the log)."""

    name: ClassVar[str] = "notice"
    logged: ClassVar[bool] = True
    message: str


@dataclass(frozen=True)
class Warn(Event):
    """Something that may make the result wrong but does not stop the command (an adapter trained on
    another base, preference pairs that lost their difference): shown as `warning:`, and logged."""

    name: ClassVar[str] = "warning"
    logged: ClassVar[bool] = True
    message: str


@dataclass(frozen=True)
class RewardModelOpened(Event):
    """A reward run opened for scoring (reward/model.py): `shared` when it scores inside the
    caller's own model (its adapter and head swapped in for each call, the caller's put back), else
    it loaded its own copy of the base `model`; `message` says which and why."""

    name: ClassVar[str] = "reward_model"
    logged: ClassVar[bool] = True
    run: str
    model: str
    shared: bool
    message: str
    source: str | None = None  # the directory its weights come from (a checkpoint while the run trains)


@dataclass(frozen=True)
class EvalProgress(Event):
    """A generation-based evaluation (localtune eval, eval during training): `stage` "model" before a
    model answers `rows` prompts, "generate" as answers finish (done/total), "done" with its
    `seconds` and headline `numbers` (prompt_strict ... loops, mean_tokens)."""

    name: ClassVar[str] = "eval"
    stage: str
    model: str
    adapter: str | None = None
    rows: int | None = None
    done: int | None = None
    total: int | None = None
    seconds: float | None = None
    numbers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EarlyStop(Event):
    """--patience ran out: `evals` evaluations in a row without a better `metric` than the best,
    `best` at `best_step` (the checkpoint that becomes the run's adapter)."""

    name: ClassVar[str] = "early_stop"
    recorded: ClassVar[bool] = True
    logged: ClassVar[bool] = True
    step: int
    metric: str
    evals: int
    best_step: int | None = None
    best: float | None = None
    only_if: str | None = None  # --keep-best-if's conditions, when given

    def text(self) -> str:
        if self.only_if and self.best_step is None:
            return (f"stopping early at step {self.step}: none of the last {self.evals} evaluations met "
                    f"{self.only_if} (--keep-best-if)")
        among = f" among the evaluations with {self.only_if}" if self.only_if else ""
        return (f"stopping early at step {self.step}: {self.metric} has not improved{among} for {self.evals} "
                f"evaluations (best {_num(self.best)} at step {self.best_step})")


@dataclass(frozen=True)
class BestCheckpoint(Event):
    """--keep-best at the end of a run: the run's adapter is the checkpoint of `step`, whose `metric`
    was `value` (the best of the run's evaluations, of those that met `only_if` when given).
    `last_step` is the step training ended at."""

    name: ClassVar[str] = "best_checkpoint"
    recorded: ClassVar[bool] = True
    logged: ClassVar[bool] = True
    step: int | None
    metric: str
    value: float | None
    last_step: int
    path: str | None = None
    only_if: str | None = None  # --keep-best-if's conditions, when given

    def text(self) -> str:
        if self.step is None:
            which = f"met {self.only_if}" if self.only_if else "gave a value"
            return f"--keep-best {self.metric}: no evaluation {which}; the adapter is the last step's"
        among = f" among the evaluations with {self.only_if}" if self.only_if else ""
        return (f"best checkpoint: step {self.step} ({self.metric} {_num(self.value)}{among}); "
                f"the run's adapter is that step's (training ended at step {self.last_step})")


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"


@dataclass(frozen=True)
class FeedbackProgress(Event):
    """A feedback job (localtune.feedback): `stage` is "sample" (candidate answers), "judge" (pairwise
    verdicts, counted in forward passes of the judge: two per pair), "critique" or "revise"
    (critique-revise generations); "start" before a stage with its `total`, "progress" as it moves
    (done/total), "done" with its `seconds`. `model` names the model at work."""

    name: ClassVar[str] = "feedback"
    stage: str
    step: str = "progress"  # "start" | "progress" | "done"
    done: int | None = None
    total: int | None = None
    model: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class Stopped(Event):
    name: ClassVar[str] = "stopped"
    logged: ClassVar[bool] = True
    step: int


@dataclass(frozen=True)
class Done(Event):
    name: ClassVar[str] = "done"
    status: str
    run: str
    step: int


# --- phases -------------------------------------------------------------------------------------

class PhaseReporter:
    """Emits `phase` events: at every change of phase, and for counted phases as the count moves,
    at most once per `interval` seconds (plus the last count), so the metrics log stays small."""

    def __init__(self, on_event: OnEvent, interval: float = 1.0, clock: Callable[[], float] = time.time):
        self.on_event, self.interval, self.clock = on_event, interval, clock
        self.current: tuple[str, int | None] | None = None  # (phase, total) last sent
        self.last_sent = float("-inf")

    def __call__(self, phase: str, done: int | None = None, total: int | None = None) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        now = self.clock()
        if (phase, total) == self.current:  # the same stage (and count): throttle the count
            if total is None or (now - self.last_sent < self.interval and done != total):
                return
        self.current, self.last_sent = (phase, total), now
        self.on_event(Phase(phase, done, total, now).to_dict())

    def counter(self, phase: str, total: int) -> Callable[[int], None]:
        """A `progress(done)` callback for a counted phase; reports 0/total right away."""
        self(phase, 0, total)
        return lambda done: self(phase, done, total)
