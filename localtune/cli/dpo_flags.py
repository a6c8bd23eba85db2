"""`localtune train dpo`: every SFT flag plus --beta, --loss, --label-smoothing, --ref, ..."""

from __future__ import annotations


def register(kinds, common) -> None:
    from localtune.cli.train_cmd import add_config_flags
    from localtune.config_dpo import DPOConfig

    dpo = kinds.add_parser(
        "dpo", help="preference tuning: DPO (sigmoid, IPO, hinge), ORPO, SimPO",
        description="Preference tuning on prompt/chosen/rejected pairs. Start from an SFT run with "
                    "--adapter RUN_DIR (the usual path) or from the base model.",
    )
    common(dpo)
    add_config_flags(dpo, DPOConfig)
    dpo.set_defaults(func=run_dpo)


def run_dpo(args) -> int:
    from localtune.cli.train_cmd import execute
    from localtune.config_dpo import DPOConfig
    from localtune.train.dpo import dpo_task

    return execute(args, DPOConfig, dpo_task)
