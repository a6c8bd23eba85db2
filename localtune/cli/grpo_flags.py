"""`localtune train grpo`: every SFT flag that applies, plus --prompts, --reward, --algo,
--group-size, --max-completion, --kl-beta, the sampling flags, ..."""

from __future__ import annotations


# TrainConfig fields that do not apply to training on the model's answers (config_rollout.py refuses them).
NOT_ROLLOUT_FLAGS = ("data", "valid", "format", "columns", "train_on_prompt", "pack", "weight_by_tokens", "overlong",
                     "unlikelihood", "answer_start_weight", "answer_start_tokens")
ROLLOUT_HELPS = {"batch_size": "prompts per micro-batch, each answered --group-size times"}


def add_prompts_flag(parser) -> None:
    """--prompts FILE: the rows the model answers (stored as the run's data file)."""
    parser.add_argument("--prompts", dest="data", metavar="FILE",
                        help="prompts to answer: IFEval-schema rows, chat rows ending with a user turn, "
                             "{\"prompt\": ...} rows (extra fields go to reward functions), or plain text "
                             "(one a line); a hub dataset id works too")


def check_rewards(args) -> None:
    """A missing or malformed --reward fails before any model loads."""
    from localtune.errors import LocaltuneError
    from localtune.rewards import parse_specs
    from localtune.rewards.spec import USAGE

    if args.resume:
        return
    if not args.reward and not args.config:
        raise LocaltuneError(f"no reward: give --reward SPEC ({USAGE}), repeated for several")
    if args.reward:
        parse_specs(args.reward)


def register(kinds, common) -> None:
    from localtune.cli.train_cmd import add_config_flags
    from localtune.config_grpo import GRPOConfig

    grpo = kinds.add_parser(
        "grpo", help="online RL: GRPO, Dr. GRPO, RLOO on the model's own answers, rewarded by checks or your code",
        description="The model answers each prompt --group-size times; the answers are rewarded (--reward, "
                    "weighted with SPEC:WEIGHT); each answer is reinforced by how it did against the others. "
                    "--batch-size counts prompts per step. Start from an SFT run with --adapter RUN_DIR or "
                    "from the base model.",
    )
    common(grpo)
    add_config_flags(grpo, GRPOConfig, skip=NOT_ROLLOUT_FLAGS, helps=ROLLOUT_HELPS)
    add_prompts_flag(grpo)
    grpo.set_defaults(func=run_grpo)


def run_grpo(args) -> int:
    from localtune.cli.train_cmd import execute
    from localtune.config_grpo import GRPOConfig
    from localtune.train.grpo import grpo_task

    check_rewards(args)
    return execute(args, GRPOConfig, grpo_task, data_flag="--prompts")
