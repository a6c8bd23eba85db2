"""The policy's own answers, sampled and rewarded: where the batches of online RL (GRPO, RLOO,
online DPO) come from.

`RolloutSampler.sample(items, n, seed)` answers each prompt row n times with the model as it is now
(adapter on, dropout off), all answers decoded together with a KV cache (generate.generate_batch),
then scores every answer with the reward sources (rewards/). A training stream calls it in next():
the loop calls next() outside the gradient, so this is plain inference.

Exact resume: a batch's sampling seed is a pure function of the run's seed and the batch's place in
the data order (`rollout_seed(seed, epoch, index, rank)`); with the checkpoint's weights the same
batch draws the same answers, and rule rewards are deterministic.

Truncated answers (no end of turn within --max-completion) follow --truncated:
- penalize (default): the answer's reward minus --truncation-penalty: the policy learns to finish
  within the budget, which is what keeps answers ending (IFEval's checks alone often pass a
  rambling, cut-off answer);
- mask: not trained on (DAPO's overlong filtering): no pressure either way;
- keep: scored as it is (TRL's default).
Empty answers (the end of turn first) are ordinary answers: the reward judges them, and the loss
trains the end-of-turn token like any other.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from localtune import events
from localtune.rewards import row_where, score_all


def rollout_seed(seed: int, epoch: int, index: int, rank: int = 0) -> int:
    """The sampling seed of one batch: a pure function of where the batch is in the data order."""
    digest = hashlib.sha256(f"localtune-rollout:{seed}:{epoch}:{index}:{rank}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


@dataclass
class Rollout:
    """One sampled answer. `answer_ids`: its tokens and, when it ended, its end-of-turn token(s)
    (what the loss reads). `reward`: the weighted total after the truncation rule; None = not
    trained on (no source had a verdict, or masked as truncated)."""

    item: int  # index of the prompt row in the stream
    answer_ids: list[int]
    text: str
    ended: bool
    scores: dict  # source name -> score or None
    reward: float | None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Rollout":
        return cls(**d)


def load_prompts(ctx, cfg, sources):
    """The prompt rows of ctx.files["train"] and their token ids. Rows whose prompt leaves no room
    for --max-completion within --max-seq-len are dropped (reported); reward sources check the rows
    before anything is generated."""
    from localtune.data.prompts import read_prompt_set
    from localtune.errors import DataError
    from localtune.generate import encode_prompt

    path = ctx.files["train"]
    found, skipped = read_prompt_set(path, on_event=ctx.emit, why="training reads every row")
    for problem in skipped:  # rows a dataset reader passes over, reported as SFT reports them
        ctx.emit(events.DataProblem("train", str(problem)).to_dict())
    rows, ids = [], []
    room = cfg.max_seq_len - cfg.max_completion
    for row in found:
        tokens = encode_prompt(ctx.tokenizer, row.messages)
        if len(tokens) > room:
            ctx.emit(events.DataProblem("train", f"{row.source}:{row.line}: prompt of {len(tokens)} tokens leaves "
                                        f"no room for --max-completion {cfg.max_completion} within --max-seq-len "
                                        f"{cfg.max_seq_len}; skipped").to_dict())
            continue
        rows.append(row)
        ids.append(tokens)
    if not rows:
        raise DataError(f"{path}: no prompt fits --max-seq-len {cfg.max_seq_len} with --max-completion "
                        f"{cfg.max_completion}")
    ctx.emit(events.Data("train", str(path), "prompts", len(found), len(rows), dropped=len(found) - len(rows),
                         tokens=sum(map(len, ids))).to_dict())
    for source in sources:
        if hasattr(source, "check_rows"):
            source.check_rows(rows)
    return rows, ids


class RolloutSampler:
    """Answers prompt rows with the model being trained and rewards the answers (module doc)."""

    def __init__(self, model, tokenizer, rows, prompt_ids, sources, cfg, emit=events.ignore, phase=None):
        self.model, self.tokenizer = model, tokenizer
        self.rows, self.prompt_ids, self.sources, self.cfg = rows, prompt_ids, sources, cfg
        self.emit = emit
        self.phase = phase or events.PhaseReporter(events.ignore)
        self.told: set[str] = set()  # sources already reported for a missing verdict

    def sample(self, items: list[int], n: int, seed: int) -> tuple[list[Rollout], dict]:
        """n answers to each prompt row in `items` (item-major), rewarded; and the batch's stats."""
        from localtune.generate import generate_batch
        from localtune.lora import eval_mode

        cfg = self.cfg
        t0 = time.perf_counter()
        total = len(items) * n
        progress = self.phase.counter("generating", total)
        with eval_mode(self.model):  # dropout off; every module's own mode back afterwards
            answers = generate_batch(self.model, self.tokenizer, [self.prompt_ids[i] for i in items],
                                     cfg.sampling(seed), n=n, batch_size=cfg.generate_batch_size or total,
                                     on_progress=lambda done, _: progress(done))
        t1 = time.perf_counter()
        self.phase("scoring")
        rows = [self.rows[items[c.prompt_index]] for c in answers]
        scores = score_all(self.sources, rows, [r.prompt for r in rows], [c.text for c in answers])
        self._tell_missing(scores, rows)
        rollouts = []
        for k, (c, row) in enumerate(zip(answers, rows)):
            reward = scores.total[k]
            if not c.ended and reward is not None:
                if cfg.truncated == "mask":
                    reward = None
                elif cfg.truncated == "penalize":
                    reward -= cfg.truncation_penalty
            rollouts.append(Rollout(items[c.prompt_index], list(c.token_ids) + list(c.stop_ids), c.text, c.ended,
                                    {name: v[k] for name, v in scores.by_source.items()}, reward))
        self.phase("training")
        decoded = sum(len(c.token_ids) + len(c.stop_ids) for c in answers)
        stats = rollout_stats(rollouts, n, [s.name for s in self.sources])
        stats.update(generate_seconds=t1 - t0, score_seconds=time.perf_counter() - t1,
                     decode_tokens_per_sec=decoded / max(t1 - t0, 1e-9))
        return rollouts, stats

    def _tell_missing(self, scores, rows) -> None:
        for source in self.sources:
            if source.name in self.told:
                continue
            k = next((i for i, v in enumerate(scores.by_source[source.name]) if v is None), None)
            if k is not None:
                self.told.add(source.name)
                self.emit(events.Notice(
                    f"reward {source.spec} gave no verdict (None or NaN) on the answer to the prompt at "
                    f"{row_where(rows[k])}; an answer no source scores is not trained on (metric "
                    "reward_missing: the share of such answers)").to_dict())


def rollout_stats(rollouts: list[Rollout], n: int, names: list[str]) -> dict[str, float]:
    """The numbers a batch of rollouts reports: mean reward (total and per source, over answers
    with a verdict), the reward's spread inside each prompt's group, answer length, the share that
    ended, the share without a reward."""
    totals = np.array([np.nan if r.reward is None else r.reward for r in rollouts], np.float64)
    groups = totals.reshape(-1, n)
    spreads = [float(np.std(g[~np.isnan(g)])) for g in groups if (~np.isnan(g)).sum() >= 2]
    out = {
        "reward_mean": _mean(totals),
        "reward_std": float(np.mean(spreads)) if spreads else 0.0,
        "answer_tokens": float(np.mean([len(r.answer_ids) for r in rollouts])),
        "ended": float(np.mean([r.ended for r in rollouts])),
        "reward_missing": float(np.mean(np.isnan(totals))),
    }
    for name in names:
        out[f"reward_{name}"] = _mean(np.array([np.nan if r.scores[name] is None else r.scores[name]
                                                for r in rollouts], np.float64))
    return out


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else 0.0


def rollout_metrics(names: list[str]):
    """The Metric declarations of the rollout stats (a task adds its own: kl, clip_fraction, ...)."""
    from localtune.events import Metric

    # Per source even with one: the total differs from it by the truncation penalty.
    per_source = tuple(Metric(f"reward_{n}", f"reward {n}", plot="reward", fmt=".3f", card=True, final=True)
                       for n in names)
    return (Metric("reward_mean", "reward", plot="reward", fmt=".3f", summary=True, card=True, final=True),
            *per_source,
            Metric("reward_std", "reward std in group", plot="reward", fmt=".3f"),
            Metric("answer_tokens", "answer tokens", fmt=".1f", show="{value} tokens/answer", summary=True),
            # "sampled": the summary line of a run with --eval-file also shows its greedy eval's "ended"
            Metric("ended", "sampled ended", fmt=".2f", summary=True, card=True, final=True),
            Metric("reward_missing", "no reward", fmt=".2f"),
            Metric("generate_seconds", "generating s", fmt=".1f"),
            Metric("decode_tokens_per_sec", "decode tok/s", fmt=".0f"))



def open_rewards(ctx):
    """The reward sources of ctx.cfg.reward, and the fields they add to the run's record: the specs
    and the hash of each file they read (a model source's weights too: `source.files`). A resumed
    run refuses any that changed since it started: a changed reward function or reward model
    would be another run (and code no longer the one given)."""
    from localtune.rewards import open_sources, parse_specs
    from localtune.rewards.python_fn import file_hash
    from localtune.runs import RunDir
    from localtune.train.provenance import ResumeRefused

    specs = parse_specs(ctx.cfg.reward)
    record = RunDir(ctx.run_dir).read()
    sources = open_sources(specs, model=ctx.model, tokenizer=ctx.tokenizer, model_path=record.get("model_path"),
                           on_event=ctx.emit)
    files = {s.path: file_hash(s.path) for s in specs if s.path is not None and Path(s.path).is_file()}
    for source in sources:
        files.update(getattr(source, "files", {}))
    if ctx.resuming:
        saved = record.get("reward_files") or {}
        changed = sorted(p for p, h in saved.items() if files.get(p, h) != h or p not in files)
        if changed:
            raise ResumeRefused(f"{ctx.run_dir}: the reward file(s) {', '.join(changed)} changed (or are gone) since "
                                "this run started; resuming would train toward another reward: restore them, or "
                                "start a new run")
    return sources, {"rewards": [s.text for s in specs], "reward_files": files}
