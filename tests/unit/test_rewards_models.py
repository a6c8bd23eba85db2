"""Model reward sources for online RL (issue 13): `reward-model:RUN` scores as the reward run does,
inside the policy when it is the same base, and trains a GRPO run that logs it and records the
reward run's files; `judge:MODEL` gives each answer its win rate in its group (both orders, ties
0.5) on a scripted judge, judges with the policy's base weights (adapter off, no second copy) or
loads another model once; bad runs are clear errors naming them."""

import json

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest
from feedback_helpers import ScriptedJudgeModel

from localtune.config_grpo import GRPOConfig
from localtune.config_reward import RewardConfig
from localtune.data.prompts import read_prompt_set
from localtune.errors import LocaltuneError
from localtune.feedback.constitution import Constitution, Principle
from localtune.feedback.judge import Judge
from localtune.lora import ADAPTER_FILE, adapter_weights, attach_lora, lora_modules
from localtune.models import load_model
from localtune.reward.model import RewardModel
from localtune.rewards import open_sources, parse_spec, with_absolute_path
from localtune.rewards.models import JudgeReward
from localtune.rewards.python_fn import file_hash
from localtune.runs import RunDir, read_metrics
from localtune.train.grpo import grpo_task
from localtune.train.reward import reward_task
from localtune.train.session import run_training

ANSWERS = ["Aye! apple river", "no", "Aye! stone cloud", ""]


@pytest.fixture(scope="module")
def rm_run(tmp_path_factory, pair_config, echo_pair_files, flat_model_dir):
    """A reward run on the flat tiny model (the GRPO tests' policy base)."""
    out = tmp_path_factory.mktemp("rmsrc") / "rm"
    return run_training(pair_config(RewardConfig, echo_pair_files, out, model=str(flat_model_dir)), reward_task)


@pytest.fixture()
def rows(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in [
        {"prompt": "echo apple river"}, {"messages": [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "echo stone cloud"}]}]))
    return read_prompt_set(path)[0]


def policy(model_dir):
    model, tok = load_model(model_dir)
    attach_lora(model, GRPOConfig(lora_rank=4, lora_layers=-1).lora_spec())
    for i, (_, layer) in enumerate(lora_modules(model)):  # a trained-looking adapter, not zeros
        layer.lora_b = mx.random.normal(layer.lora_b.shape, key=mx.random.key(i)) * 0.05
    model.train()
    return model, tok


# --- the spec ---------------------------------------------------------------------------------------

def test_model_specs_parse_their_constitution_and_weight_and_become_absolute(tmp_path, monkeypatch):
    s = parse_spec("judge:policy:my rules.yaml:2")
    assert (s.args, s.path, s.weight, s.name) == (("policy", "my rules.yaml"), "my rules.yaml", 2.0, "judge")
    s = parse_spec("judge:HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (s.args, s.path) == (("HuggingFaceTB/SmolLM2-135M-Instruct",), None)
    s = parse_spec("reward-model:adapters/rm:0.5")
    assert (s.args, s.weight, s.name, s.path) == (("adapters/rm",), 0.5, "reward_model", None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "judge-model").mkdir()
    assert with_absolute_path("reward-model:adapters/rm:0.5") == f"reward-model:{tmp_path}/adapters/rm:0.5"
    assert with_absolute_path("judge:policy:c.yaml") == f"judge:policy:{tmp_path}/c.yaml"
    assert with_absolute_path("judge:judge-model") == f"judge:{tmp_path}/judge-model"
    assert with_absolute_path("judge:owner/name:2") == "judge:owner/name:2"  # a hub id stays one


# --- reward-model:RUN -------------------------------------------------------------------------------

def test_a_reward_model_source_scores_as_the_reward_model_does_inside_the_policy(rm_run, rows, flat_model_dir):
    model, tok = policy(flat_model_dir)
    before = {k: np.array(v) for k, v in adapter_weights(model).items()}
    seen = []
    (source,) = open_sources([f"reward-model:{rm_run}:2"], model=model, tokenizer=tok, on_event=seen.append)
    assert [e["shared"] for e in seen if e["event"] == "reward_model"] == [True]  # no second copy
    assert (source.name, source.weight) == ("reward_model", 2.0)
    answer_rows = [rows[0], rows[0], rows[1], rows[1]]
    got = source.score(answer_rows, [r.prompt for r in answer_rows], ANSWERS)
    expected = RewardModel.open(rm_run).score([r.messages for r in answer_rows], ANSWERS)  # its own copy
    assert got == pytest.approx(expected, abs=1e-4)
    assert len(set(np.round(got, 4))) == 4  # four different answers, four different scores
    assert all(np.array_equal(before[k], np.array(v)) for k, v in adapter_weights(model).items())
    assert model.training  # the policy's mode back
    assert source.files == {str(rm_run / f): file_hash(rm_run / f) for f in (ADAPTER_FILE, "reward_head.safetensors")}


def test_grpo_trains_on_a_reward_model_and_records_its_files(rm_run, tmp_path, flat_model_dir):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"echo {w}"}) + "\n" for w in ("apple river", "stone cloud")))
    cfg = GRPOConfig(model=str(flat_model_dir), data=str(prompts), out=str(tmp_path / "g"),
                     reward=(f"reward-model:{rm_run}", "length:1-3:0.5"), iters=2, batch_size=2, group_size=4,
                     max_completion=8, lr=1e-2, lora_rank=4, lora_layers=-1, save_every=0, report_every=1,
                     truncated="keep")
    run = run_training(cfg.with_absolute_paths(), grpo_task, cfg_cls=GRPOConfig)
    train = [m for m in read_metrics(run) if m.get("event") == "train"]
    assert [e["step"] for e in train] == [1, 2]
    for e in train:
        assert e["reward_reward_model"] != 0.0 and e["reward_missing"] == 0.0
        # the total: the reward model's score plus half the length reward, answer by answer
        assert e["reward_mean"] == pytest.approx(e["reward_reward_model"] + 0.5 * e["reward_length"], abs=1e-5)
    record = RunDir(run).read()
    assert record["reward_files"][str(rm_run / ADAPTER_FILE)] == file_hash(rm_run / ADAPTER_FILE)
    opened = [line for line in (run / "train.log").read_text().splitlines() if "event=reward_model" in line]
    assert len(opened) == 1 and "shared=True" in opened[0]  # scored inside the policy


def test_a_bad_reward_run_is_a_clear_error_naming_it(tmp_path, tiny_run):
    with pytest.raises(LocaltuneError, match=f"reward-model:{tmp_path}/nowhere: {tmp_path}/nowhere: not a run"):
        open_sources([f"reward-model:{tmp_path}/nowhere"])
    with pytest.raises(LocaltuneError, match=f"{tiny_run}: a sft run, not a reward model"):
        open_sources([f"reward-model:{tiny_run}"])


# --- judge:MODEL ------------------------------------------------------------------------------------

ONE = Constitution((Principle("good", "Good answers are good."),))


def scripted_source(tokenizer, bias=0.0):
    """A judge whose logit for A is +2 when answer A says 'good', -2 when B does, + bias (first shown)."""
    model = ScriptedJudgeModel(tokenizer, lambda text: 2.0 if "good" in text else 0.0, bias)
    return JudgeReward(Judge(model, tokenizer, ONE)), model


def test_the_judge_gives_each_answer_its_win_rate_in_its_group(rows, tiny_model_dir):
    _, tok = load_model(tiny_model_dir)
    source, model = scripted_source(tok)
    answer_rows = [rows[0]] * 3 + [rows[1]] * 2
    answers = ["good", "bad", "also bad", "same", "same"]
    # row 0: good beats both (1); bad and also bad tie with each other (0.5) and lose to good: 0.25.
    # row 1: identical answers are a tie without a forward pass
    assert source.score(answer_rows, [r.prompt for r in answer_rows], answers) == \
        pytest.approx([1.0, 0.25, 0.25, 0.5, 0.5])
    assert model.rows == 6  # 3 pairs of row 0, each in both orders
    # a judge that always picks the answer shown first flips with the order: every pair a tie
    biased, _ = scripted_source(tok, bias=5.0)
    assert biased.score(answer_rows[:3], [rows[0].prompt] * 3, answers[:3]) == pytest.approx([0.5] * 3)
    # groups are the answers to one prompt row, wherever they are in the step; alone: no verdict
    assert source.score([rows[0], rows[1], rows[0]], ["", "", ""], ["bad", "good", "good"]) == \
        pytest.approx([0.0, None, 1.0])


def test_the_policy_judges_with_its_adapter_off_and_another_model_is_loaded_once(
        rows, flat_model_dir, tiny_model_dir):
    model, tok = policy(flat_model_dir)
    flags = [layer.adapter_enabled for _, layer in lora_modules(model)]
    for spec in ("judge:policy", f"judge:{flat_model_dir}"):  # by name, or by the policy's own directory
        (source,) = open_sources([spec], model=model, tokenizer=tok, model_path=flat_model_dir)
        assert source.judge.model is model and source.files == {}
        got = source.score([rows[0]] * 3, [rows[0].prompt] * 3, ["Aye! apple river", "no", "apple"])
        assert sum(got) == pytest.approx(1.5) and all(0 <= v <= 1 for v in got)  # n/2 wins to share
    assert [layer.adapter_enabled for _, layer in lora_modules(model)] == flags and model.training
    seen = []
    (other,) = open_sources([f"judge:{tiny_model_dir}"], model=model, tokenizer=tok, model_path=flat_model_dir,
                            on_event=seen.append)
    assert other.judge.model is not model and list(other.files) == [str(tiny_model_dir)]
    assert any("loaded the judge" in e.get("message", "") for e in seen)
    with pytest.raises(LocaltuneError, match="judge:policy: the policy judges only in a run"):
        open_sources(["judge:policy"])



def test_grpo_with_the_policy_as_judge_shares_out_the_wins_of_each_group(tmp_path, flat_model_dir):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"echo {w}"}) + "\n" for w in ("apple river", "stone cloud")))
    cfg = GRPOConfig(model=str(flat_model_dir), data=str(prompts), out=str(tmp_path / "j"), reward=("judge:policy",),
                     iters=1, batch_size=2, group_size=3, max_completion=6, lr=1e-2, lora_rank=4, lora_layers=-1,
                     save_every=0, report_every=1, truncated="keep")
    run = run_training(cfg, grpo_task, cfg_cls=GRPOConfig)
    (train,) = [m for m in read_metrics(run) if m.get("event") == "train"]
    # 3 answers a prompt: 3 pairs, each worth 1 shared out (a win and a loss, or two ties): 0.5 on average
    assert train["reward_judge"] == pytest.approx(0.5) and train["reward_missing"] == 0.0
    assert RunDir(run).read()["reward_files"] == {}  # the policy's own base: checked as the run's base is
