"""`python -m localtune` with bench-only changes that make one part of its SFT recipe behave like
mlx_lm.lora 0.32.2's, to find which difference moves the answers (bench/quality_vs_mlx_lm.py,
bench/NOTES.md). Not options of localtune: the ones that did not help stay here.

    BENCH_PATCHES=mixed,lastturn python bench/localtune_patched.py train sft ...

- mixed: batches of randomly mixed lengths (mlx_lm's length sort does not group lengths), instead
  of length buckets.
- lastturn: train only the last assistant turn of a chat (mlx_lm --mask-prompt), not every turn.
- afterend: also train what mlx_lm trains after the end-of-turn marker: the template's newline
  after it, and (its mask's off-by-one) the padding token, id 0, after the row.
- warmup0: mlx_lm's warm-up: linear from 0 to lr over `warmup` steps (step 0 has lr 0), the decay
  starting one step later.
"""

from __future__ import annotations

import os
import sys

import localtune  # noqa: F401
import numpy as np


def _runs(mask: list[bool]) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    out, start = [], None
    for i, m in enumerate(mask + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    return out


def patch_tokenize(last_turn: bool, after_end: bool) -> None:
    from localtune.data.template import TokenizedExample
    from localtune.train import prepare

    original = prepare.tokenize_example

    def tokenize_example(example, tokenizer, *, train_on_prompt=False):
        t = original(example, tokenizer, train_on_prompt=train_on_prompt)
        if train_on_prompt or example.messages is None:
            return t
        ids, mask = list(t.ids), list(t.mask)
        runs = _runs(mask)
        if last_turn and runs:
            mask = [False] * len(mask)
            for i in range(*runs[-1]):
                mask[i] = True
            runs = runs[-1:]
        if after_end:
            newline = tokenizer.encode("\n", add_special_tokens=False)
            for _, end in runs:
                if end < len(ids) and [ids[end]] == newline:
                    mask[end] = True
            ids.append(0)  # mlx_lm pads with 0 and its mask reaches one token past the row
            mask.append(True)
        return TokenizedExample(ids, mask, t.source, t.line)

    prepare.tokenize_example = tokenize_example


def patch_mixed() -> None:
    from localtune.data import batching

    def epoch_order(lengths, batch_size, seed, epoch):
        rng = np.random.default_rng([seed, epoch])
        perm = [int(i) for i in rng.permutation(len(lengths))]
        return [perm[j: j + batch_size] for j in range(0, len(perm), batch_size)]

    batching.epoch_order = epoch_order


def patch_warmup0() -> None:
    import mlx.optimizers as optim

    from localtune.train import schedule, session

    original = schedule.build_schedule

    def build_schedule(lr, iters, warmup=0, kind="cosine"):
        if warmup <= 0:
            return original(lr, iters, warmup, kind)
        decay = original(lr, iters - warmup, 0, kind)  # over iters - warmup steps, as the bench's peer config
        return optim.join_schedules([optim.linear_schedule(0.0, lr, warmup), decay], [warmup + 1])

    session.build_schedule = build_schedule


def main():
    patches = [p for p in os.environ.get("BENCH_PATCHES", "").split(",") if p]
    unknown = set(patches) - {"mixed", "lastturn", "afterend", "warmup0"}
    if unknown:
        raise SystemExit(f"unknown BENCH_PATCHES: {sorted(unknown)}")
    if "lastturn" in patches or "afterend" in patches:
        patch_tokenize("lastturn" in patches, "afterend" in patches)
    if "mixed" in patches:
        patch_mixed()
    if "warmup0" in patches:
        patch_warmup0()
    from localtune.cli import main as cli_main

    sys.argv = ["localtune", *sys.argv[1:]]
    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
