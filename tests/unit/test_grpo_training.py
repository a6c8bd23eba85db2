"""GRPO and online DPO end to end on a tiny model whose answers vary: a rule reward ("the answer
contains x") is learned, the KL to the starting policy is 0 at step 0 (from the base and from an SFT
adapter), a killed run resumes to the same rewards (also mid-way through --updates-per-batch), a
raising reward function fails the run naming the function and the row, missing rewards are
reported, truncated answers follow --truncated, online DPO learns, and the CLI runs."""

import json

import localtune  # noqa: F401
import mlx.core as mx
import pytest

from localtune.cli import main
from localtune.config import build_config
from localtune.config_dpo import OnlineDPOConfig
from localtune.config_grpo import GRPOConfig
from localtune.errors import LocaltuneError
from localtune.rewards import RewardError
from localtune.runs import RunDir, read_metrics
from localtune.train.grpo import grpo_task
from localtune.train.online_dpo import online_dpo_task
from localtune.train.provenance import ResumeRefused
from localtune.train.session import run_training

PROMPTS = [{"prompt": "say a", "answer": "a"}, {"prompt": "say b", "answer": "b"}, {"prompt": "tell me"},
           {"prompt": "hello", "answer": "d"}]

REWARDS = '''
def has_x(prompt, completion, row):
    return 1.0 if "x" in completion else 0.0

def constant(prompt, completion, row):
    return 1.0

def not_for_hello(prompt, completion, row):
    return None if prompt == "hello" else (1.0 if "x" in completion else 0.0)

def fails_on_hello(prompt, completion, row):
    if prompt == "hello":
        raise ValueError("no greetings")
    return 0.0
'''


@pytest.fixture()
def rl(tmp_path, flat_model_dir):
    """make(out, fn="has_x", cls=GRPOConfig, **options): GRPO on 4 prompts, 2 per step, 8 answers
    each of at most 16 tokens rewarded by rewards.py's fn, truncated answers kept, a report every step."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    rewards = tmp_path / "rewards.py"
    rewards.write_text(REWARDS)

    def make(out, fn="has_x", cls=GRPOConfig, **kw):
        base = dict(model=str(flat_model_dir), data=str(prompts), out=str(tmp_path / out),
                    reward=(f"python:{rewards}:{fn}",), iters=4, batch_size=2, max_completion=16, lr=2e-2,
                    lora_rank=4, lora_layers=-1, save_every=0, report_every=1, truncated="keep")
        if cls is GRPOConfig:
            base["group_size"] = 8
        return build_config(None, {**base, **kw}, cls=cls)

    make.rewards = rewards
    return make


def train_events(run):
    return [m for m in read_metrics(run) if m.get("event") == "train"]


def test_grpo_learns_a_rule_reward_and_shows_it_everywhere(rl):
    # A small KL weight: at this learning rate Adam turns even a small KL gradient into full-size
    # steps once every answer earns the same reward (the policy gradient is 0), and 0.04 undoes it.
    # lr 1e-2, not the fixture's 2e-2: at 2e-2 the reward swung 1.0 -> 0.0 within one step even with
    # the whole batch in one pass, and whether it came back depended on float rounding (the
    # micro-batched update differs from the one-shot one by ~1e-7, test_rl_micro_batch.py); at 1e-2
    # it reached 1.0 by step 3 and stayed there with --micro-batch 2 and 16 alike.
    run = run_training(rl("learn", iters=14, report_every=2, kl_beta=0.01, lr=1e-2), grpo_task, cfg_cls=GRPOConfig)
    rewards = [round(e["reward_mean"], 3) for e in train_events(run)]
    print(f"GRPO 'contains x' mean reward by report: {rewards}")
    assert rewards[0] <= 0.3, rewards  # the untrained model rarely writes an x
    assert min(rewards[-3:]) >= 0.9, rewards
    first = train_events(run)[0]
    assert first["kl"] == pytest.approx(0.0, abs=1e-6)  # step 0: adapter at init = the reference
    assert first["weight_unit"] == "answers" and first["weight_total"] == 16
    assert 0 < first["answer_tokens"] <= 16 and first["generate_seconds"] > 0
    record = RunDir(run).read()
    assert record["kind"] == "grpo" and record["train_prompts"] == 4
    assert record["rewards"] == [f"python:{rl.rewards}:has_x"] and str(rl.rewards) in record["reward_files"]
    assert {"reward_mean", "kl", "ended", "answer_tokens", "reward_std"} <= {m["key"] for m in record["metrics"]}
    from tui.follow import load_run  # the TUI's follower (pure Python): the reward curve is drawn

    follower = load_run(run)
    assert follower.series["reward"][1][-1] == pytest.approx(rewards[-1], abs=1e-3)
    assert follower.is_dpo and "reward" in follower.reward_series  # the Train screen draws the reward plot


def test_kl_is_zero_at_step_0_from_an_sft_adapter_too(rl, tmp_path, flat_model_dir):
    """The reference is the starting adapter swapped back in (not the base): at step 0 the policy is
    exactly it, although it differs from the base."""
    from mlx.utils import tree_flatten, tree_unflatten

    from localtune.config import TrainConfig
    from localtune.lora import attach_lora, save_adapter, set_adapter_enabled
    from localtune.models import load_model

    model, tok = load_model(flat_model_dir)
    spec = TrainConfig(lora_rank=4, lora_layers=-1).lora_spec()
    attach_lora(model, spec)
    mx.random.seed(3)
    model.update(tree_unflatten([(k, mx.random.normal(v.shape) * 0.5) for k, v in tree_flatten(model.parameters())
                                 if k.endswith("lora_b")]))
    ids = mx.array([tok.encode("say a and more")])
    on = model(ids)
    set_adapter_enabled(model, False)
    assert float(mx.abs(on - model(ids)).max()) > 1e-2  # the adapter really changes the model
    set_adapter_enabled(model, True)
    save_adapter(model, tmp_path / "sft", spec)
    # A reward every batch varies on (word counts), so step 1 has a policy gradient to move by.
    run = run_training(rl("from-sft", adapter=str(tmp_path / "sft"), iters=2, kl_beta=0.1, reward=("length:1-2",)),
                       grpo_task, cfg_cls=GRPOConfig)
    events = train_events(run)
    assert events[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert events[1]["kl"] > 1e-6  # one update later the policy has moved away from it


def test_a_killed_run_resumes_to_the_same_rewards(rl):
    unbroken = run_training(rl("a", iters=6, save_every=2), grpo_task, cfg_cls=GRPOConfig)
    calls = {"n": 0}

    def killed():  # an abrupt end after step 3: no checkpoint for it (the last is step 2)
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        run_training(rl("b", iters=6, save_every=2), grpo_task, cfg_cls=GRPOConfig, should_stop=killed)
    run = RunDir(rl("b").out).path
    reward_file = rl.rewards.read_text()
    rl.rewards.write_text(reward_file + "\n# edited\n")
    with pytest.raises(ResumeRefused, match="reward file"):  # another reward would be another run
        run_training(None, grpo_task, resume=run, cfg_cls=GRPOConfig)
    rl.rewards.write_text(reward_file)
    run_training(None, grpo_task, resume=run, cfg_cls=GRPOConfig)
    a, b = train_events(unbroken), train_events(run)
    assert [e["step"] for e in b] == [1, 2, 3, 4, 5, 6]
    for x, y in zip(a, b):
        assert y["reward_mean"] == x["reward_mean"], x["step"]  # the same answers, sampled again
        assert y["train_loss"] == pytest.approx(x["train_loss"], abs=1e-6)
        assert y["kl"] == pytest.approx(x["kl"], abs=1e-6)
    assert len({e["reward_mean"] for e in a}) > 1  # not a constant that would match anyway


@pytest.mark.parametrize("lora_layers", [-1, 1])  # 1 of 2 blocks: the first is run once per batch (frozen_prefix)
def test_several_updates_per_batch_clip_and_resume_mid_way(rl, stop_after, lora_layers):
    opts = dict(iters=6, updates_per_batch=2, grad_accum=2, batch_size=1, save_every=0, lr=3e-2,
                lora_layers=lora_layers)
    unbroken = run_training(rl("a", **opts), grpo_task, cfg_cls=GRPOConfig)
    run = run_training(rl("b", **opts), grpo_task, cfg_cls=GRPOConfig, should_stop=stop_after(3))
    state = json.loads((RunDir(run).path / "checkpoints" / "step-000003" / "trainer_state.json").read_text())
    assert state["data"]["cycle"]["calls"] == 2  # stopped between the two updates on one batch
    run_training(None, grpo_task, resume=run, cfg_cls=GRPOConfig)
    a, b = train_events(unbroken), train_events(run)
    assert [e["step"] for e in b] == [1, 2, 3, 4, 5, 6]
    for x, y in zip(a, b):
        assert y["reward_mean"] == x["reward_mean"] and y["train_loss"] == pytest.approx(x["train_loss"], abs=1e-6)
    # Updates 2, 4, 6 reuse the answers of 1, 3, 5: the same rewards, a ratio away from 1.
    assert [e["reward_mean"] for e in a[1::2]] == [e["reward_mean"] for e in a[::2]]
    assert all(e["generate_seconds"] == 0 for e in a[1::2])
    assert max(e["clip_fraction"] for e in a[1::2]) > 0 and all(e["clip_fraction"] == 0 for e in a[::2])


def test_a_raising_reward_function_fails_the_run_naming_the_function_and_the_row(rl, tmp_path):
    with pytest.raises(RewardError) as e:
        run_training(rl("fail", fn="fails_on_hello", iters=4, batch_size=4), grpo_task, cfg_cls=GRPOConfig)
    msg = str(e.value)
    assert "reward function fails_on_hello" in msg and "ValueError: no greetings" in msg
    assert f"{tmp_path / 'prompts.jsonl'}:4" in msg and "rewards.py:" in msg
    record = RunDir(tmp_path / "fail").read()
    assert record["status"] == "failed" and "fails_on_hello" in record["error"]


def test_answers_without_a_reward_are_reported_and_not_trained_on(rl):
    seen = []
    run = run_training(rl("none", fn="not_for_hello", iters=2, batch_size=4), grpo_task, cfg_cls=GRPOConfig,
                       on_event=seen.append)
    events = train_events(run)
    assert all(e["reward_missing"] == pytest.approx(0.25) for e in events)  # 1 of 4 prompts: "hello"
    notices = [e["message"] for e in seen if e["event"] == "notice"]
    assert len(notices) == 1 and "no verdict" in notices[0] and "prompts.jsonl:4" in notices[0]
    assert all(e["train_loss"] is not None for e in events) and events[0]["weight_total"] == 24  # 3 x 8 answers


def test_truncated_answers_are_kept_penalized_or_masked(rl):
    got = {}
    for mode in ("keep", "penalize", "mask"):
        run = run_training(rl(mode, fn="constant", iters=1, max_completion=6, truncated=mode, truncation_penalty=0.5),
                           grpo_task, cfg_cls=GRPOConfig)
        got[mode] = train_events(run)[0]
    cut = 1 - got["keep"]["ended"]
    assert cut > 0.5 and all(g["ended"] == got["keep"]["ended"] for g in got.values())  # the same answers
    assert got["keep"]["reward_mean"] == 1.0 and got["keep"]["reward_missing"] == 0
    assert got["penalize"]["reward_mean"] == pytest.approx(1 - 0.5 * cut)
    assert got["mask"]["reward_missing"] == pytest.approx(cut)
    assert got["mask"]["weight_total"] == pytest.approx(16 * (1 - cut)) or cut == 1


def test_online_dpo_learns_from_pairs_of_its_own_answers(rl, tmp_path):
    # 8 prompts a step: two answers each, and about half the pairs tie (both with or without an x).
    prompts = tmp_path / "eight.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}"}) + "\n" for i in range(1, 9)))
    cfg = rl("odpo", cls=OnlineDPOConfig, online=True, data=str(prompts), iters=16, batch_size=8, lr=5e-3, beta=0.5,
             lora_rank=8, report_every=2)
    run = run_training(cfg, online_dpo_task, cfg_cls=OnlineDPOConfig)
    events = train_events(run)
    rewards = [round(e["reward_mean"], 3) for e in events]
    print(f"online DPO 'contains x' mean reward by report: {rewards}")
    assert rewards[0] <= 0.4 and max(rewards[-2:]) >= 0.9, rewards
    assert events[0]["weight_unit"] == "pairs" and "reward_accuracy" in events[0] and "ties" in events[0]
    assert events[0]["train_loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference: log 2
    record = RunDir(run).read()
    assert record["kind"] == "dpo" and record["online"] is True and record["config"]["online"] is True


def test_the_cli_trains_grpo_and_online_dpo_and_refuses_what_does_not_fit(rl, tmp_path, capsys):
    cfg = rl("x")
    common = ["--model", cfg.model, "--prompts", cfg.data, "--reward", cfg.reward[0], "--iters", "1",
              "--max-completion", "8", "--lora-rank", "2", "--batch-size", "2"]
    assert main(["train", "grpo", *common, "--group-size", "2", "--out", str(tmp_path / "g")]) == 0
    assert RunDir(tmp_path / "g").read()["status"] == "finished"
    assert main(["train", "dpo", "--online", *common, "--out", str(tmp_path / "d")]) == 0
    assert main(["train", "dpo", "--resume", str(tmp_path / "d"), "--iters", "2"]) == 0  # knows it is online
    assert [e["step"] for e in train_events(tmp_path / "d")] == [1, 2]
    capsys.readouterr()
    assert main(["runs", "--root", str(tmp_path)]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "grpo" in listed["g"] and " reward " in listed["g"] and " ended " in listed["g"]
    assert main(["train", "grpo", "--prompts", cfg.data, "--iters", "1"]) == 2
    assert "no reward: give --reward SPEC" in capsys.readouterr().err
    assert main(["train", "dpo", "--data", cfg.data, "--reward", "ifeval"]) == 2
    assert "--reward: online DPO options; add --online" in capsys.readouterr().err
    assert main(["train", "grpo", *common, "--group-size", "1"]) == 2
    assert "group_size must be >= 2" in capsys.readouterr().err
    with pytest.raises(LocaltuneError, match="valid does not apply"):
        rl("v", valid=cfg.data)


def test_rollouts_keep_the_end_of_turn_token_the_loss_trains(rl, flat_model_dir):
    from localtune.data.prompts import read_prompt_set
    from localtune.generate import encode_prompt
    from localtune.models import load_model
    from localtune.rewards import open_sources
    from localtune.train.rollouts import RolloutSampler

    cfg = rl("r", temperature=4.0, max_completion=32)  # hot and long enough that some answers end
    model, tok = load_model(flat_model_dir)
    rows, _ = read_prompt_set(cfg.data)
    sampler = RolloutSampler(model, tok, rows, [encode_prompt(tok, r.messages) for r in rows],
                             open_sources(["length:1-3"]), cfg)
    rollouts, stats = sampler.sample([0, 1, 2, 3], 16, seed=1)
    ended = [r for r in rollouts if r.ended]
    cut = [r for r in rollouts if not r.ended]
    assert ended and cut and stats["ended"] == len(ended) / 64
    eos = set(tok.eos_token_ids)
    assert all(r.answer_ids and r.answer_ids[-1] in eos for r in ended)  # trained: the decision to stop
    assert all(len(r.answer_ids) == 32 and not eos & set(r.answer_ids) for r in cut)
    assert [r.item for r in rollouts] == [i for i in range(4) for _ in range(16)]  # groups of 16, in order
