"""The blocks before the first adapter run once for online RL's two passes: the frozen blocks are
counted right, prefix + suffix is the model's own forward (llama, qwen2, qwen3), the log-probs of a
batch and of its parts are the same with or without the stored prefix, and a GRPO step with a KL
term gives the same reference log-probs, loss and gradients as without it."""

from dataclasses import replace

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_unflatten

from localtune.config_grpo import GRPOConfig
from localtune.data.batching import take_rows
from localtune.lora import LoraSpec, attach_lora
from localtune.train import frozen_prefix
from localtune.train.frozen_prefix import batch_prefix, frozen_blocks, prefix_hidden, suffix_hidden
from localtune.train.grpo import GRPOLoss, assemble
from localtune.train.logits import target_logprobs, target_logprobs_by_rows
from localtune.train.rollouts import Rollout

PROMPTS = [[1, 40, 41, 42, 2], [1, 50, 51, 2]]
ANSWERS = [[60, 61, 62], [63], [64, 65, 66, 67, 68, 69, 70], [71, 72],
           [73, 74, 75, 76, 77], [78, 79], [80], [81, 82, 83, 84, 85, 86, 87, 88, 89]]
REWARDS = [1.0, 0.0, 0.5, 0.2, 0.25, 1.0, 0.0, 0.75]


def tiny(model_type: str, layers: int = 6, seed: int = 0):
    import importlib

    arch = importlib.import_module(f"mlx_lm.models.{model_type}")
    cfg = {"model_type": model_type, "hidden_size": 32, "num_hidden_layers": layers, "intermediate_size": 64,
           "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "vocab_size": 128,
           "rope_theta": 10000.0, "tie_word_embeddings": True, "max_position_embeddings": 512, "head_dim": 8}
    mx.random.seed(seed)
    model = arch.Model(arch.ModelArgs.from_dict(cfg))
    mx.eval(model.parameters())
    return model


def with_adapter(model, layers: int, seed: int = 1):
    attach_lora(model, LoraSpec(rank=4, layers=layers))
    rng = np.random.default_rng(seed)  # B not zero: the adapter changes the answers
    model.update(tree_unflatten([(k, mx.array(rng.normal(0, 0.1, v.shape).astype(np.float32)))
                                 for k, v in tree_flatten(model.trainable_parameters())]))
    mx.eval(model.parameters())
    return model


def test_frozen_blocks_are_the_ones_before_the_first_adapter():
    assert frozen_blocks(tiny("llama")) == 0  # no adapter: nothing to share
    assert frozen_blocks(with_adapter(tiny("llama"), 2)) == 4
    assert frozen_blocks(with_adapter(tiny("llama"), -1)) == 0
    swa = with_adapter(tiny("llama"), 2)
    swa.model.layers[0].use_sliding = True  # a sliding-window block: one mask does not fit all
    assert frozen_blocks(swa) == 0


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "qwen3"])  # mistral loads as llama in mlx_lm
def test_prefix_then_suffix_is_the_models_forward(model_type):
    model = with_adapter(tiny(model_type), 3)
    start = frozen_blocks(model)
    assert start == 3
    ids = mx.array(np.random.default_rng(0).integers(3, 128, (3, 11)).astype(np.int32))
    whole = model.model(ids)
    split = suffix_hidden(model, prefix_hidden(model, ids, start), start)
    np.testing.assert_allclose(np.array(split), np.array(whole), atol=1e-6)


def grpo_batch(model):
    rollouts = [Rollout(k // 4, list(a), "", True, {}, r) for k, (a, r) in enumerate(zip(ANSWERS, REWARDS))]
    return assemble(rollouts, PROMPTS, 4, "grpo")


@pytest.mark.parametrize("fast_math", [True, False])  # cpu_math's head, or the model's own head
def test_log_probs_from_the_prefix_equal_the_full_pass_for_the_batch_and_its_parts(monkeypatch, fast_math):
    from localtune import backend

    monkeypatch.setattr(backend, "fast_cpu_math", lambda: fast_math)
    model = with_adapter(tiny("llama"), 3)
    batch = grpo_batch(model)
    full = np.array(target_logprobs(model, batch, 0.8))
    batch.prefix = batch_prefix(model, batch, rows=3)  # computed in parts of 3 rows
    assert batch.prefix[0] == 3 and batch.prefix[1].shape[:2] == (8, batch.ids.shape[1] - 1)
    np.testing.assert_allclose(np.array(target_logprobs(model, batch, 0.8)), full, atol=1e-5)
    np.testing.assert_allclose(np.array(target_logprobs_by_rows(model, batch, 0.8, 3)), full, atol=1e-5)
    part, index = take_rows(batch, [5, 6])  # a part narrower than the batch slices its prefix
    assert part.prefix[1].shape[1] == part.ids.shape[1] - 1 < batch.ids.shape[1] - 1
    np.testing.assert_allclose(np.array(target_logprobs(model, part, 0.8)), full[index], atol=1e-5)
    batch.prefix = (3, mx.zeros_like(batch.prefix[1]))  # the stored states are what the pass reads
    assert np.abs(np.array(target_logprobs(model, batch, 0.8)) - full).max() > 1e-2


def test_no_prefix_for_packed_batches():
    model = with_adapter(tiny("llama"), 3)
    batch = grpo_batch(model)
    assert batch_prefix(model, batch) is not None
    batch.segments = mx.ones(batch.ids.shape, mx.int32)
    assert batch_prefix(model, batch) is None


def test_a_trained_block_is_not_frozen_even_without_an_adapter():
    model = with_adapter(tiny("llama"), 3)
    model.model.layers[1].unfreeze()  # e.g. a mode that trains a whole block
    assert frozen_blocks(model) == 1


def test_a_grpo_step_with_the_prefix_equals_one_without(monkeypatch):
    from localtune.train.grpo import GRPOStream

    model = with_adapter(tiny("llama"), 3)
    cfg = replace(GRPOConfig(), kl_beta=0.1, micro_batch=3, temperature=0.8)
    stream = GRPOStream.__new__(GRPOStream)  # score() needs only the model and the config
    stream.sampler, stream.cfg, stream.start_weights = type("S", (), {"model": model})(), cfg, None
    loss_fn = GRPOLoss(cfg)

    def step(batch):
        out = []
        for part in batch.split(cfg.micro_batch):
            (loss, n, metrics), grads = nn.value_and_grad(model, loss_fn)(model, part)
            out.append((float(loss), float(metrics["kl"]), {k: np.array(v) for k, v in tree_flatten(grads)}))
        return out

    shared = stream.score(grpo_batch(model))
    assert shared.prefix is not None and shared.prefix[0] == 3
    monkeypatch.setattr(frozen_prefix, "frozen_blocks", lambda model: 0)
    alone = stream.score(grpo_batch(model))
    assert alone.prefix is None
    np.testing.assert_allclose(np.array(shared.ref_logps), np.array(alone.ref_logps), atol=1e-5)
    assert np.abs(np.array(shared.ref_logps) - np.array(target_logprobs(model, alone, 0.8))).max() > 1e-3
    for (l1, kl1, g1), (l2, kl2, g2) in zip(step(shared), step(alone)):
        assert abs(l1 - l2) < 1e-5 and abs(kl1 - kl2) < 1e-5 and kl1 > 0
        for k in g1:
            np.testing.assert_allclose(g1[k], g2[k], atol=1e-5)
