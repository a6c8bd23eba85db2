"""Learning-rate schedules: linear warm-up, then cosine / linear decay or constant."""

from __future__ import annotations

import localtune  # noqa: F401
import mlx.core as mx
import mlx.optimizers as optim


def build_schedule(lr: float, iters: int, warmup: int = 0, kind: str = "cosine"):
    decay_steps = max(iters - warmup, 1)
    if kind == "cosine":
        main = optim.cosine_decay(lr, decay_steps, 0.0)
    elif kind == "linear":
        main = optim.linear_schedule(lr, 0.0, decay_steps)
    elif kind == "constant":
        # An array, not a float: the optimizer casts the rate with .astype on every update.
        main = lambda step: mx.array(lr, mx.float32)  # noqa: E731
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    if warmup <= 0:
        return main
    # Warm-up starts above zero so step 0 is not wasted.
    ramp = optim.linear_schedule(lr / warmup, lr, warmup - 1) if warmup > 1 else (lambda s: lr)
    return optim.join_schedules([ramp, main], [warmup])
