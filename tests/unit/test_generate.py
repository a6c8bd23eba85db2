"""localtune.generate: sampling settings, batched decoding == one-at-a-time decoding, n answers,
reproducible draws, stop handling, eval mode with LoRA attached."""

import json
import math

import localtune  # noqa: F401
import mlx.core as mx
import pytest
from mlx_lm.generate import generate as mlx_generate

from localtune.errors import LocaltuneError
from localtune.generate import (Sampling, StreamStats, _marker_prefix, _trim_stop, encode_prompt,
                                generate_batch, stream_answer)
from localtune.lora import LoraSpec, attach_lora
from localtune.models import load_model

PROMPTS = [[{"role": "user", "content": c}] for c in
           ("hi", "echo apple river", "a much longer prompt about ships and stars and the sea at night", "x",
            "what is two plus two?", "Tell me a story about a navigator.")]


@pytest.fixture(scope="module")
def varied_model_dir(tmp_path_factory):
    """A tiny model whose answers differ from prompt to prompt: tests/tiny's embeddings make a tied
    head that repeats its input token, so they are scaled down (flatter next-token distributions)."""
    from tiny import make_tiny_model_dir

    path = make_tiny_model_dir(tmp_path_factory.mktemp("varied") / "model")
    weights = mx.load(str(path / "model.safetensors"))
    weights["model.embed_tokens.weight"] = weights["model.embed_tokens.weight"] * 0.1
    mx.save_safetensors(str(path / "model.safetensors"), weights, metadata={"format": "mlx"})
    return path


@pytest.fixture(scope="module")
def model_tok(varied_model_dir):
    return load_model(varied_model_dir)


# -- Sampling ----------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value,message", [
    ("max_tokens", 0, "--max-tokens 0: must be at least 1"),
    ("max_tokens", -5, "--max-tokens -5: must be at least 1"),
    ("max_tokens", 2.5, "--max-tokens 2.5: must be a whole number"),
    ("temperature", -0.1, "--temperature -0.1: must be >= 0"),
    ("temperature", math.nan, "--temperature nan: must be a finite number"),
    ("temperature", math.inf, "--temperature inf: must be a finite number"),
    ("top_p", 0.0, "--top-p 0.0: must be in (0, 1]"),
    ("top_p", 1.5, "--top-p 1.5: must be in (0, 1]"),
    ("top_p", math.nan, "--top-p nan: must be a finite number"),
    ("top_k", -1, "--top-k -1: must be >= 0"),
    ("min_p", 1.5, "--min-p 1.5: must be in [0, 1]"),
    ("repetition_penalty", 0.0, "--repetition-penalty 0.0: must be > 0"),
    ("repetition_context_size", 0, "--repetition-context-size 0: must be at least 1"),
    ("seed", -1, "--seed -1: must be in [0, 2**63)"),
])
def test_bad_sampling_settings_are_clear_errors(field, value, message):
    with pytest.raises(LocaltuneError) as e:
        Sampling(**{field: value}).validate()
    assert message in str(e.value)


def test_good_sampling_settings_pass():
    s = Sampling(temperature=0.7, top_p=0.9, top_k=40, min_p=0.05, repetition_penalty=1.1, max_tokens=1, seed=3)
    assert s.validate() is s


def test_generation_config_defaults_follow_hugging_face(tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 20.0, "repetition_penalty": 1.05,
         "max_new_tokens": 512, "eos_token_id": 2}))
    s = Sampling.from_generation_config(tmp_path, top_p=None, max_tokens=64)
    assert (s.temperature, s.top_p, s.top_k, s.repetition_penalty, s.max_tokens) == (0.6, 0.95, 20, 1.05, 64)
    # Without do_sample Hugging Face decodes greedily: the sampling filters are not taken.
    (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": 0.6, "repetition_penalty": 1.2}))
    s = Sampling.from_generation_config(tmp_path)
    assert (s.temperature, s.repetition_penalty) == (0.0, 1.2)
    assert Sampling.from_generation_config(tmp_path / "missing") == Sampling()


def test_unreadable_generation_config_names_the_file(tmp_path):
    (tmp_path / "generation_config.json").write_text("{oops")
    with pytest.raises(LocaltuneError, match="generation_config.json: unreadable"):
        Sampling.from_generation_config(tmp_path)


# -- decoding ----------------------------------------------------------------------------------
def test_greedy_batched_equals_one_at_a_time_and_mlx_lm(model_tok):
    model, tok = model_tok
    s = Sampling(max_tokens=24)
    batched = generate_batch(model, tok, PROMPTS, s, batch_size=4)  # 6 prompts: slots are refilled
    assert len({c.text for c in batched}) > 3  # the answers differ, so agreeing below means something
    for prompt, c in zip(PROMPTS, batched):
        alone = generate_batch(model, tok, [prompt], s, batch_size=1)[0]
        assert c.token_ids == alone.token_ids
        assert c.text == mlx_generate(model, tok, encode_prompt(tok, prompt), max_tokens=24)
        assert c.finish_reason == "length" and len(c.token_ids) == 24
        assert c.prompt_tokens == len(encode_prompt(tok, prompt))
    assert "".join(stream_answer(model, tok, PROMPTS[1], s)) == batched[1].text


def test_n_answers_per_prompt_are_prompt_major_and_reproducible(model_tok):
    model, tok = model_tok
    s = Sampling(temperature=1.0, top_p=0.95, top_k=50, max_tokens=12, seed=7)
    first = generate_batch(model, tok, PROMPTS[:3], s, n=4)
    assert [(c.prompt_index, c.sample) for c in first] == [(i, j) for i in range(3) for j in range(4)]
    assert len({c.text for c in first[:4]}) > 1  # one prompt's samples differ
    again = generate_batch(model, tok, PROMPTS[:3], s, n=4)
    assert [c.token_ids for c in again] == [c.token_ids for c in first]
    other = generate_batch(model, tok, PROMPTS[:3], Sampling(**{**s.to_dict(), "seed": 8}), n=4)
    assert [c.token_ids for c in other] != [c.token_ids for c in first]


def test_generation_leaves_the_global_random_stream_alone(model_tok):
    model, tok = model_tok
    mx.random.seed(123)
    expected = mx.random.uniform(shape=(4,))
    mx.random.seed(123)
    generate_batch(model, tok, PROMPTS[:2], Sampling(temperature=1.0, max_tokens=6))
    assert mx.array_equal(mx.random.uniform(shape=(4,)), expected)


def test_logprobs_and_repetition_penalty(model_tok):
    model, tok = model_tok
    plain = generate_batch(model, tok, PROMPTS[:3], Sampling(max_tokens=16), return_logprobs=True)
    for c in plain:
        assert len(c.logprobs) == len(c.token_ids) and all(lp <= 0 for lp in c.logprobs)
    penalised = generate_batch(model, tok, PROMPTS[:3], Sampling(max_tokens=16, repetition_penalty=3.0))
    assert [c.token_ids for c in penalised] != [c.token_ids for c in plain]


def test_an_end_of_turn_token_stops_the_answer_and_is_not_in_it(model_tok):
    model, tok = model_tok
    free = generate_batch(model, tok, [PROMPTS[1]], Sampling(max_tokens=24))[0]
    k = next(i for i, t in enumerate(free.token_ids) if t != free.token_ids[0])
    stop_id = free.token_ids[k]
    saved = set(tok.eos_token_ids)
    tok.eos_token_ids = saved | {stop_id}
    try:
        stopped = generate_batch(model, tok, [PROMPTS[1]], Sampling(max_tokens=24))[0]
    finally:
        tok.eos_token_ids = saved
    assert stopped.finish_reason == "stop" and stopped.ended
    assert stopped.token_ids == free.token_ids[:k]
    assert stopped.text == tok.decode(free.token_ids[:k])


def test_several_token_stop_markers_are_trimmed():
    assert _trim_stop([5, 6, 7, 8], [[2], [7, 8]]) == [5, 6]
    assert _trim_stop([5, 6, 2], [[2], [7, 8]]) == [5, 6]
    assert _trim_stop([5, 6], [[2], [7, 8]]) == [5, 6]
    assert _marker_prefix("Aye! <|im", "<|im_end|>") == 4
    assert _marker_prefix("Aye!", "<|im_end|>") == 0


def test_token_id_prompts_and_bad_prompts(model_tok):
    model, tok = model_tok
    ids = encode_prompt(tok, PROMPTS[0])
    by_ids = generate_batch(model, tok, [ids], Sampling(max_tokens=8))[0]
    assert by_ids.token_ids == generate_batch(model, tok, [PROMPTS[0]], Sampling(max_tokens=8))[0].token_ids
    with pytest.raises(LocaltuneError, match="prompt must be"):
        generate_batch(model, tok, [[]], Sampling(max_tokens=8))
    with pytest.raises(LocaltuneError, match="n must be"):
        generate_batch(model, tok, PROMPTS[:1], Sampling(max_tokens=8), n=0)
    assert generate_batch(model, tok, [], Sampling(max_tokens=8)) == []


def test_decoding_gives_back_each_modules_own_mode_not_the_roots(varied_model_dir):
    # As a training run has it: mlx_lm loads the model in eval mode and attach_lora adds layers in
    # train mode, so the root says "eval" while LoRA dropout is on. Decoding in the middle of the run
    # (eval during training, GRPO rollouts) used to restore only the root's flag, which left every
    # dropout off for the rest of the run: --lora-dropout silently did nothing after the first eval.
    model, tok = load_model(varied_model_dir)
    attach_lora(model, LoraSpec(rank=4, alpha=8, dropout=0.5, layers=-1))
    dropouts = [m for _, m in model.named_modules() if type(m).__name__ == "Dropout"]
    assert dropouts and not model.training and all(d.training for d in dropouts)
    generate_batch(model, tok, PROMPTS[:2], Sampling(max_tokens=4))
    assert not model.training and all(d.training for d in dropouts)
    "".join(stream_answer(model, tok, PROMPTS[0], Sampling(max_tokens=4)))
    assert not model.training and all(d.training for d in dropouts)


def test_lora_dropout_is_off_while_decoding_and_the_mode_comes_back(varied_model_dir):
    model, tok = load_model(varied_model_dir)
    attach_lora(model, LoraSpec(rank=4, alpha=8, dropout=0.5, layers=-1))
    from mlx.utils import tree_flatten

    mx.random.seed(0)
    model.load_weights([(k, mx.random.normal(v.shape) * 0.5) for k, v in tree_flatten(model.trainable_parameters())
                        if k.endswith("lora_b")], strict=False)
    model.train()
    s = Sampling(max_tokens=16)
    a = generate_batch(model, tok, PROMPTS[:3], s)
    b = generate_batch(model, tok, PROMPTS[:3], s)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]  # dropout would make greedy answers vary
    assert model.training  # a training loop gets its mode back
    stats = StreamStats()
    text = "".join(stream_answer(model, tok, PROMPTS[0], s, stats))
    assert text == a[0].text and stats.tokens == 16 and model.training
