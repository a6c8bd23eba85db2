"""Data-parallel training: 2 ranks on loopback (mlx.launch, ring backend) with batch B each equal
a single process with batch 2B; sharding covers the global batch; only rank 0 writes the run."""

import os
import subprocess
import sys
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np
import pytest

from localtune.config import build_config
from localtune.data.batching import collate
from localtune.train.distributed import DataParallel, FollowerRun, shard
from localtune.train.session import run_training
from localtune.train.sft import sft_task
from test_sft_session import write_chat_data

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = Path(sys.executable).parent / "mlx.launch"


def test_shards_partition_the_global_batch():
    rows = [([1] * n, [False] + [True] * (n - 1)) for n in (3, 5, 4, 7, 2)]
    batch = collate(rows, [0, 1, 2, 3, 4])
    parts = [shard(batch, r, 2) for r in range(2)]
    assert parts[0].rows == [0, 2, 4] and parts[1].rows == [1, 3]
    assert sorted(parts[0].rows + parts[1].rows) == batch.rows
    assert parts[1].ids.shape == (2, 7) and parts[0].ids.shape == (3, 4)  # trimmed to own longest
    assert mx.array_equal(parts[1].mask, batch.mask[mx.array([1, 3]), :7])
    # Derived fields (target positions) are those of a batch of exactly these rows.
    alone = collate(rows, [1, 3])
    assert mx.array_equal(parts[1].positions, alone.positions) and mx.array_equal(parts[1].targets, alone.targets)
    # A rank with no rows of a short batch gets a zero-weight stand-in, never nothing.
    lone = shard(collate(rows, [3]), 1, 2)
    assert lone.dummy and lone.rows == [3] and not shard(collate(rows, [3]), 0, 2).dummy


def test_pair_shards_keep_chosen_and_rejected_together():
    from types import SimpleNamespace

    from localtune.train.dpo import collate_pairs

    pairs = [SimpleNamespace(chosen_ids=[1, 10 + i, 2], chosen_mask=[False, True, True],
                             rejected_ids=[1, 20 + i], rejected_mask=[False, True]) for i in range(3)]
    ref = (np.array([0.1, 0.2, 0.3]), np.array([-0.1, -0.2, -0.3]))
    part = shard(collate_pairs(pairs, [0, 1, 2], ref), 1, 2)
    assert part.rows == [1] and part.ids[:, 1].tolist() == [11, 21]
    assert np.allclose(np.array(part.ref), [0.2, -0.2])


def test_single_process_hooks_are_identities(tmp_path):
    dp = DataParallel()
    assert (dp.world, dp.rank, dp.is_main, dp.all_reduce) == (1, 0, True, None)
    fn = lambda: None  # noqa: E731
    assert dp.batches(fn) is fn and dp.should_stop(fn) is fn and dp.loss(fn) is fn
    assert not isinstance(dp.run(FollowerRun(tmp_path)), type(None))


def test_follower_run_never_writes(tmp_path):
    run = FollowerRun(tmp_path / "run")
    run.acquire()
    run.write({"status": "running"})
    run.append_metric({"step": 1})
    run.log("hello")
    assert not (tmp_path / "run").exists()


def test_two_ranks_equal_one_process_with_double_batch(tiny_model_dir, tmp_path):
    data = write_chat_data(tmp_path / "train.jsonl", 20, 0)  # 20 rows / 4 = 5 global batches
    common = dict(model=str(tiny_model_dir), data=str(data), iters=6, lr=3e-3, lora_rank=4,
                  lora_layers=-1, eval_every=0, save_every=0, seed=3)
    single = run_training(build_config(None, {**common, "batch_size": 4, "out": str(tmp_path / "one")}),
                          sft_task)

    dist_out = tmp_path / "two"
    cmd = [str(LAUNCH), "--backend", "ring", "-n", "2", "--hosts", "127.0.0.1", "--",
           sys.executable, "-m", "localtune", "train", "sft", "--model", str(tiny_model_dir),
           "--data", str(data), "--out", str(dist_out), "--iters", "6", "--batch-size", "2",
           "--lr", "3e-3", "--lora-rank", "4", "--lora-layers", "-1", "--eval-every", "0",
           "--save-every", "0", "--seed", "3"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("adapter: ") == 1  # rank 0 alone reports; rank 1 trains silently

    a = mx.load(str(single / "adapters.safetensors"))
    b = mx.load(str(dist_out / "adapters.safetensors"))
    assert set(a) == set(b)
    # The adapter moved (else equality proves nothing), and moved the same way.
    assert max(float(mx.abs(a[k]).max()) for k in a if k.endswith("lora_b")) > 1e-3
    for k in a:
        np.testing.assert_allclose(np.array(b[k]), np.array(a[k]), atol=1e-5, err_msg=k)
    # Losses logged by rank 0 are the global ones; one writer only (no duplicated lines).
    from localtune.runs import read_metrics

    one = {m["step"]: m["train_loss"] for m in read_metrics(single / "metrics.jsonl") if "train_loss" in m}
    two = [(m["step"], m["train_loss"]) for m in read_metrics(dist_out / "metrics.jsonl") if "train_loss" in m]
    assert [s for s, _ in two] == [1, 6]  # the CLI's default report_every=10: first and last step
    np.testing.assert_allclose([v for _, v in two], [one[1], one[6]], rtol=1e-5)


def test_packed_shards_split_whole_packs_and_keep_every_target():
    from localtune.data.packing import collate_packed

    rows = [([i + 3] * n, [False] + [True] * (n - 1)) for i, n in enumerate((9, 4, 7, 3, 6, 5, 8))]
    batch = collate_packed(rows, [[0, 1], [2, 3, 4], [5], [6]])
    parts = [shard(batch, r, 2) for r in range(2)]
    assert sorted(i for p in parts for i in p.rows) == list(range(7))
    for p in parts:  # each rank's packs are rebuilt whole: segments, targets, masks as collated
        expect = collate_packed(rows, _packs_of(p))
        assert p.segments.tolist() == expect.segments.tolist()
        assert p.targets.tolist() == expect.targets.tolist()
    assert sum(p.targets.size for p in parts) == batch.targets.size


def _packs_of(part):
    """The original row indices of each packed sequence of a shard, from its segments."""
    out, k = [], 0
    for s in np.array(part.segments).max(axis=1):
        out.append(part.rows[k: k + int(s)])
        k += int(s)
    return out
