"""Config layering: built-in defaults -> YAML -> flags, with errors that name file and line."""

import pytest

from localtune.cli import build_parser
from localtune.cli.train_cmd import overrides_from
from localtune.config import TrainConfig, build_config
from localtune.errors import LocaltuneError


def test_defaults_then_yaml_then_flags(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lr: 3.0e-4\nbatch_size: 2\nlora_targets: [self_attn.q_proj]\niters: 7\n")
    cfg = build_config(y, {"batch_size": 8})
    assert cfg.lr == 3e-4  # from YAML
    assert cfg.batch_size == 8  # flag wins
    assert cfg.lora_targets == ("self_attn.q_proj",)
    assert cfg.warmup == TrainConfig().warmup  # default
    assert cfg.lora_spec().scale == 16 / 8


def test_unknown_yaml_key_names_file_and_line(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lr: 1e-4\n\nbatch_sise: 4\n")
    with pytest.raises(LocaltuneError, match=r"c\.yaml:3: unknown option 'batch_sise'"):
        build_config(y)


def test_wrong_type_and_bad_choice(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("batch_size: four\n")
    with pytest.raises(LocaltuneError, match=r"c\.yaml:1: batch_size has the wrong type"):
        build_config(y)
    y.write_text("schedule: exponential\n")
    with pytest.raises(LocaltuneError, match="schedule must be one of"):
        build_config(y)
    with pytest.raises(LocaltuneError, match="batch_size must be >= 1"):
        build_config(None, {"batch_size": 0})


def test_cli_flag_spellings_map_to_config():
    flags = ("--model m --data d --valid v --out o --iters 3 --epochs 2 --batch-size 2 --grad-accum 4 "
             "--lr 0.01 --warmup 5 --schedule linear --lora-rank 4 --lora-alpha 8 --lora-dropout 0.1 "
             "--lora-layers 2 --lora-targets self_attn.q_proj mlp.up_proj --dora --max-seq-len 64 "
             "--seed 3 --eval-every 10 --save-every 20 --grad-checkpoint").split()
    args = build_parser().parse_args(["train", "sft", *flags, "--config", "x.yaml", "--resume", "r"])
    cfg = build_config(None, overrides_from(args, TrainConfig))
    assert (cfg.model, cfg.data, cfg.valid, cfg.out) == ("m", "d", "v", "o")
    assert (cfg.iters, cfg.epochs, cfg.batch_size, cfg.grad_accum) == (3, 2.0, 2, 4)
    assert (cfg.lr, cfg.warmup, cfg.schedule) == (0.01, 5, "linear")
    assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_layers) == (4, 8.0, 0.1, 2)
    assert cfg.lora_targets == ("self_attn.q_proj", "mlp.up_proj")
    assert cfg.dora and cfg.grad_checkpoint
    assert (cfg.max_seq_len, cfg.seed, cfg.eval_every, cfg.save_every) == (64, 3, 10, 20)
    assert (args.config, args.resume) == ("x.yaml", "r")


def test_unset_flags_do_not_override_yaml(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lr: 5.0e-4\ndora: true\n")
    args = build_parser().parse_args(["train", "sft", "--data", "d"])
    cfg = build_config(y, overrides_from(args, TrainConfig))
    assert cfg.lr == 5e-4 and cfg.dora
