"""`localtune plan`: predicted peak memory and tokens/s of a training run, before running it."""

from __future__ import annotations


def register(sub) -> None:
    from localtune.cli.train_cmd import add_config_flags
    from localtune.config import TrainConfig

    p = sub.add_parser("plan", help="predict a run's peak memory and speed; the largest batch/length that fits")
    p.add_argument("--config", help="YAML file of training options (flags given here override it)")
    from localtune.cli.argtypes import positive_float

    p.add_argument("--memory-gb", type=positive_float, help="memory budget (default: this device's memory)")
    p.add_argument("--gflops", type=positive_float, help="assume this f32 matmul rate instead of measuring it")
    add_config_flags(p, TrainConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from localtune.cli.train_cmd import overrides_from
    from localtune.config import TrainConfig, build_config
    from localtune.errors import LocaltuneError
    from localtune.plan import plan

    cfg = build_config(args.config, overrides_from(args, TrainConfig), cls=TrainConfig)
    if not cfg.data:
        raise LocaltuneError("no training data: give --data FILE (or data: in --config)")
    r = plan(cfg, memory_gb=args.memory_gb, gflops=args.gflops)
    b, w = r["widest_batch"]
    parts = ", ".join(f"{k} {v:.2f}" for k, v in r["memory_parts_gb"].items())
    print(f"model        {r['model']}")
    print(f"data         {r['rows']} rows, {r['real_tokens_per_epoch']:,} tokens, "
          f"{r['batches_per_epoch']} batches/epoch (widest {b} x {w})")
    print(f"trainable    {r['trainable_params']:,} LoRA parameters")
    print(f"peak memory  {r['peak_memory_gb']:.2f} GB  ({parts})")
    print(f"speed        {r['tokens_per_sec']:,.0f} tokens/s, {r['epoch_seconds']:.0f} s/epoch "
          f"(matmul {r['matmul_gflops']:.0f} GFLOP/s x efficiency {r['efficiency']})")
    verdict = "fits" if r["fits"] else "does NOT fit"
    print(f"budget       {r['memory_budget_gb']:.1f} GB: {verdict}; largest batch at this length: "
          f"{r['max_batch_size']}; longest --max-seq-len at batch {cfg.batch_size}: {r['max_seq_len']}")
    return 0
