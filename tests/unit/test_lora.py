"""LoRA/DoRA layers: exact no-op at start, only adapter weights train, fuse and disable are exact,
and the saved adapter loads in mlx_lm unchanged."""

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.utils import load

from localtune.lora import (
    LoraSpec,
    adapter_layers,
    adapter_weights,
    attach_lora,
    fuse_lora,
    load_adapter,
    save_adapter,
    set_adapter_enabled,
)

TOKENS = mx.array([[1, 87, 85, 71, 84, 201, 74, 75, 2, 201, 60, 61]])


def _perturb(model, seed=1):
    """Give every adapter a non-zero B (and DoRA magnitude) so the adapter changes outputs."""
    mx.random.seed(seed)
    for layer in adapter_layers(model):
        layer.lora_b = mx.random.normal(layer.lora_b.shape) * 0.2
        if "m" in layer:
            layer.m = layer.m * (1 + 0.1 * mx.random.normal(layer.m.shape))
    mx.eval(model.parameters())


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("dora", [False, True])
def test_attach_is_exact_noop_and_only_adapters_train(tiny_model_dir, tiny_q4_model_dir, quantized, dora):
    model, _ = load(str(tiny_q4_model_dir if quantized else tiny_model_dir))
    base = model(TOKENS)
    wrapped = attach_lora(model, LoraSpec(rank=4, layers=-1, dora=dora))
    assert len(wrapped) == 2 * 7
    after = model(TOKENS)
    if dora:  # the row-norm division is a float round trip, not bit-exact
        np.testing.assert_allclose(np.array(after), np.array(base), atol=1e-5)
    else:
        assert mx.array_equal(after, base)
    names = [k for k, _ in tree_flatten(model.trainable_parameters())]
    leaves = {k.rsplit(".", 1)[-1] for k in names}
    assert leaves == ({"lora_a", "lora_b", "m"} if dora else {"lora_a", "lora_b"})


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("dora", [False, True])
def test_disable_gives_base_and_fuse_keeps_logits(tiny_model_dir, tiny_q4_model_dir, quantized, dora):
    model, _ = load(str(tiny_q4_model_dir if quantized else tiny_model_dir))
    base = model(TOKENS)
    attach_lora(model, LoraSpec(rank=4, layers=-1, dora=dora))
    _perturb(model)
    tuned = model(TOKENS)
    assert not np.allclose(np.array(tuned), np.array(base), atol=1e-3), "adapter should change logits"
    set_adapter_enabled(model, False)
    assert mx.array_equal(model(TOKENS), base)
    set_adapter_enabled(model, True)
    fuse_lora(model, dequantize=True)
    assert not adapter_layers(model)
    np.testing.assert_allclose(np.array(model(TOKENS)), np.array(tuned), atol=2e-4)


def test_adapter_loads_in_mlx_lm_with_same_logits(tiny_model_dir, tmp_path):
    model, _ = load(str(tiny_model_dir))
    spec = LoraSpec(rank=4, alpha=8, layers=1, targets=("self_attn.q_proj", "mlp.down_proj"))
    attach_lora(model, spec)
    _perturb(model)
    ours = model(TOKENS)
    save_adapter(model, tmp_path, spec)

    theirs, _ = load(str(tiny_model_dir), adapter_path=str(tmp_path))
    np.testing.assert_allclose(np.array(theirs(TOKENS)), np.array(ours), atol=1e-6)
    assert set(adapter_weights(model)) == set(mx.load(str(tmp_path / "adapters.safetensors")))

    again, _ = load(str(tiny_model_dir))
    loaded = load_adapter(again, tmp_path)
    assert loaded == spec
    np.testing.assert_allclose(np.array(again(TOKENS)), np.array(ours), atol=1e-6)


def test_adapter_for_another_model_is_refused(tiny_model_dir, tmp_path):
    from tiny import make_tiny_model_dir

    from localtune.errors import RunError

    model, _ = load(str(tiny_model_dir))
    attach_lora(model, LoraSpec(rank=4, layers=-1))
    save_adapter(model, tmp_path / "run", LoraSpec(rank=4, layers=-1))
    other, _ = load(str(make_tiny_model_dir(tmp_path / "wide", hidden=96)))
    with pytest.raises(RunError, match="another base"):
        load_adapter(other, tmp_path / "run")


def test_unknown_target_is_a_clear_error(tiny_model_dir):
    from localtune.errors import RunError

    model, _ = load(str(tiny_model_dir))
    with pytest.raises(RunError, match="attn.query"):
        attach_lora(model, LoraSpec(targets=("attn.query",)))
