"""Every --schedule drives a real optimizer update (a constant schedule once returned a float,
which mlx's optimizers cannot .astype)."""

import localtune  # noqa: F401
import mlx.core as mx
import mlx.optimizers as optim
import pytest

from localtune.train.schedule import build_schedule


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
@pytest.mark.parametrize("warmup", [0, 3])
def test_schedule_updates_an_adamw(kind, warmup):
    opt = optim.AdamW(learning_rate=build_schedule(1e-2, 10, warmup, kind), weight_decay=0.0)
    params = {"w": mx.ones((3,))}
    opt.init(params)
    for _ in range(4):
        params = opt.apply_gradients({"w": mx.ones((3,))}, params)
    mx.eval(params)
    assert (params["w"] < 1).all().item()
    if kind == "constant" and warmup == 0:
        assert abs(opt.learning_rate.item() - 1e-2) < 1e-9
