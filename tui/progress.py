"""What a run is doing and how long it has left, from its metrics log events. Pure Python (no
Textual, no files, no clock of its own) so every number is reproducible from a list of events.

The engine appends `{"event": "phase", "phase": NAME, "done": int|None, "total": int|None,
"time": unix_seconds}` when it changes phase (and as a phase with a count progresses); `train`
events carry `step`, `elapsed` (seconds spent in steps) and `time`; `val` events carry `val_time`.
The ETA adds up what is left of every kind of work, each at the rate this run has shown:
reference scoring per pair, training per step, evaluation per validation batch (or per whole
evaluation), checkpointing per save. When some part has no rate yet the ETA is a lower bound and
says so ("ETA >1:05") rather than pretending.

It reads the event dicts, not localtune.events classes: whether a train event carries `elapsed` at
all decides how steps are timed, and a class fills an absent field with its default (0.0)."""

from __future__ import annotations

from dataclasses import dataclass

from localtune.events import PHASES  # phase name -> its words (the engine's list of phases)


def format_duration(seconds: float | None) -> str:
    """h:mm:ss or m:ss; "--" when unknown."""
    if seconds is None:
        return "--"
    seconds = int(round(max(0.0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class Phase:
    """A phase as followed so far: the latest `phase` event's count, and when the phase began."""

    name: str
    started: float | None  # time of its first event
    done: int | None
    total: int | None
    time: float | None  # time of its latest event

    def describe(self) -> str:
        word = PHASES.get(self.name, self.name.replace("_", " "))
        if self.done is not None and self.total and self.name != "training":  # steps are shown anyway
            return f"{word} {self.done}/{self.total}"
        return word


@dataclass(frozen=True)
class Plan:
    """What the run is set to do (from the run record): the ETA needs to know what is still to come."""
    iters: int | None
    eval_every: int = 0
    save_every: int = 0
    has_valid: bool = False


def points(start: int, end: int, every: int, *, last: int | None = None) -> list[int]:
    """Steps in [start, end] that are multiples of `every` (> 0), plus `last` when in range."""
    out = set(range(((start + every - 1) // every) * every, end + 1, every)) if every > 0 else set()
    if last is not None and start <= last <= end:
        out.add(last)
    return sorted(out)


class RunProgress:
    def __init__(self) -> None:
        self.phase: Phase | None = None
        self.step = 0
        self._rate: dict[str, list[float]] = {}  # phase -> [seconds, units] while counting up
        self._durations: dict[str, list[float]] = {}  # phase -> [seconds, instances] of finished ones
        self._train: list[tuple[int, float]] = []  # (step, elapsed or time) of train events
        self._train_by_time = False  # no `elapsed` in the events: wall time between reports
        self.val_times: list[float] = []  # seconds per whole evaluation
        self.val_batches: int | None = None  # validation batches per evaluation (evaluating's total)
        self.last_eval_step: int | None = None
        self.last_save_step: int | None = None

    # -- reading events -----------------------------------------------------------------------
    def add(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "phase":
            self._phase(event)
        elif kind == "train":
            self._train_event(event)
        elif kind == "val":
            self.last_eval_step = int(event.get("step", 0) or 0)
            if isinstance(event.get("val_time"), (int, float)):
                self.val_times.append(float(event["val_time"]))

    def _phase(self, event: dict) -> None:
        name = str(event.get("phase"))
        t = _num(event.get("time"))
        done, total = _int(event.get("done")), _int(event.get("total"))
        p = self.phase
        if p is not None and p.name == name:
            if t is not None and p.time is not None and done is not None and p.done is not None \
                    and done > p.done:
                acc = self._rate.setdefault(name, [0.0, 0.0])
                acc[0] += t - p.time
                acc[1] += done - p.done
            p.done, p.total, p.time = done, total, t
        else:
            self._end_phase(t)
            self.phase = Phase(name, t, done, total, t)
        if name == "training" and done is not None:
            self.step = max(self.step, done)
        elif name == "evaluating":
            if total:
                self.val_batches = total
            self.last_eval_step = self.step
        elif name == "saving":
            self.last_save_step = self.step

    def _end_phase(self, t: float | None) -> None:
        p = self.phase
        if p is not None and p.started is not None and t is not None:
            acc = self._durations.setdefault(p.name, [0.0, 0.0])
            acc[0] += max(0.0, t - p.started)
            acc[1] += 1

    def _train_event(self, event: dict) -> None:
        step = int(event.get("step", 0) or 0)
        self.step = max(self.step, step)
        if isinstance(event.get("elapsed"), (int, float)):
            self._train.append((step, float(event["elapsed"])))
        elif isinstance(event.get("time"), (int, float)):
            self._train_by_time = True
            self._train.append((step, float(event["time"])))
        # A report means the steps run again (an engine may not say "training" after an eval).
        if self.phase is None or self.phase.name not in ("training", "stopping"):
            self._end_phase(_num(event.get("time")))
            self.phase = Phase("training", _num(event.get("time")), step, None, _num(event.get("time")))

    # -- rates --------------------------------------------------------------------------------
    def seconds_per_step(self) -> float | None:
        if not self._train:
            return None
        (s0, v0), (s1, v1) = self._train[0], self._train[-1]
        if s1 > s0:
            return (v1 - v0) / (s1 - s0)
        if not self._train_by_time and s1 > 0:
            return v1 / s1  # elapsed is the time of all steps so far
        return None

    def seconds_per_unit(self, phase: str) -> float | None:
        seconds, units = self._rate.get(phase, (0.0, 0.0))
        return seconds / units if units else None

    def seconds_per_eval(self) -> float | None:
        per_batch = self.seconds_per_unit("evaluating")
        if per_batch is not None and self.val_batches:
            return per_batch * self.val_batches
        return sum(self.val_times) / len(self.val_times) if self.val_times else None

    def seconds_per_batch_of_eval(self) -> float | None:
        per_batch = self.seconds_per_unit("evaluating")
        if per_batch is None and self.val_times and self.val_batches:
            per_batch = sum(self.val_times) / len(self.val_times) / self.val_batches
        return per_batch

    def seconds_per_save(self) -> float | None:
        seconds, n = self._durations.get("saving", (0.0, 0.0))
        return seconds / n if n else None

    # -- what is left ---------------------------------------------------------------------------
    def remaining(self, plan: Plan, now: float | None = None) -> tuple[float | None, bool]:
        """(seconds left, complete). complete is False when some work still has no rate: the
        seconds are then a lower bound. (None, False) when nothing can be said yet."""
        left, complete, known = 0.0, True, False
        p = self.phase
        name = p.name if p else None
        if name == "stopping":
            return None, False
        if name in ("loading_model", "preparing_data") or (name is None and self.step == 0):
            complete = False  # what comes before training has no rate yet
        if p is not None and name in ("scoring_reference", "evaluating") and p.total:
            rate = (self.seconds_per_unit(name) if name == "scoring_reference"
                    else self.seconds_per_batch_of_eval())
            if rate is None:
                complete = False
            else:
                left += max(0, p.total - (p.done or 0)) * rate
                known = True
        if name == "scoring_reference":
            complete = False  # a validation set may be scored next, and training has no rate yet
        if name == "saving":
            per_save = self.seconds_per_save()
            if per_save is None or now is None or p.started is None:
                complete = False
            else:
                left += max(0.0, per_save - (now - p.started))
                known = True
        if not plan.iters:
            return (left if known else None), False
        per_step = self.seconds_per_step()
        steps_left = max(0, plan.iters - self.step)
        if steps_left:
            if per_step is None:
                complete = False
            else:
                left += steps_left * per_step
                known = True
        evals = self.evals_to_come(plan)
        if evals:
            per_eval = self.seconds_per_eval()
            if per_eval is None:
                complete = False
            else:
                left += evals * per_eval
                known = True
        per_save = self.seconds_per_save()
        if per_save is not None:
            left += self.saves_to_come(plan) * per_save
        if steps_left == 0 and not evals and name != "saving":
            known = True  # only the end of the run is left (display: "finishing")
        return (left if known else None), complete

    def evals_to_come(self, plan: Plan) -> int:
        """Evaluations not yet started: every eval_every steps, after the last step, and of the
        untrained model when the run starts from step 0."""
        if not plan.has_valid or not plan.iters:
            return 0
        at = points(max(self.step, 1), plan.iters, plan.eval_every, last=plan.iters)
        if self.step == 0:
            at.insert(0, 0)
        done = -1 if self.last_eval_step is None else self.last_eval_step
        return sum(s > done for s in at)

    def saves_to_come(self, plan: Plan) -> int:
        if not plan.iters:
            return 0
        at = points(max(self.step, 1), plan.iters, plan.save_every, last=plan.iters)
        done = 0 if self.last_save_step is None else self.last_save_step
        return sum(s > done for s in at)

    def fraction(self, plan: Plan, finished: bool) -> float:
        """Share of the whole run done: by time where every part has a rate, else by steps;
        never 1.0 before the run says it has finished."""
        if finished:
            return 1.0
        if not plan.iters:
            return 0.0
        steps = min(self.step, plan.iters) / plan.iters
        left, complete = self.remaining(plan)
        per_step, per_eval = self.seconds_per_step(), self.seconds_per_eval()
        if complete and left is not None and per_step is not None:
            spent = min(self.step, plan.iters) * per_step + len(self.val_times) * (per_eval or 0.0)
            if spent + left > 0:
                return min(0.99, spent / (spent + left))
        return min(0.99, steps)


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
