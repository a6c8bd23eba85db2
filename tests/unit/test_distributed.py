"""Data-parallel training: 2 ranks on loopback (mlx.launch, ring backend) with batch B each equal
a single process with batch 2B; sharding covers the global batch; only rank 0 writes the run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
import numpy as np

from localtune.config import build_config
from localtune.data.batching import BatchStream, Shard, collate
from localtune.train.distributed import DataParallel, FollowerRun
from localtune.train.session import run_training
from localtune.train.sft import sft_task

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = Path(sys.executable).parent / "mlx.launch"


def _same_batch(a, b) -> bool:
    return all(mx.array_equal(getattr(a, f), getattr(b, f)) for f in ("ids", "mask", "positions", "targets",
                                                                          "target_rows"))


def test_shards_partition_the_global_batch():
    # 11 rows in batches of 5: two full global batches and one of a single row per epoch.
    rows = [([1] * n, [False] + [True] * (n - 1)) for n in (3, 5, 4, 7, 2, 6, 3, 8, 5, 4, 9)]
    whole = BatchStream(rows, 5, seed=1)
    ranks = [BatchStream(rows, 5, seed=1, shard=Shard(r, 2)) for r in range(2)]
    lone = 0
    for _ in range(2 * whole.batches_per_epoch):  # two epochs
        batch = whole.next()
        parts = [s.next() for s in ranks]
        if len(batch.rows) == 1:  # a rank with no rows of a short batch: a zero-weight stand-in
            lone += 1
            assert not parts[0].dummy and parts[1].dummy and parts[1].rows == batch.rows
            continue
        assert parts[0].rows == batch.rows[0::2] and parts[1].rows == batch.rows[1::2]
        for part in parts:
            assert not part.dummy
            # Each part is exactly the batch of its own rows: padded to its own longest, same targets.
            assert _same_batch(part, collate(rows, part.rows))
            assert part.ids.shape[1] == max(len(rows[i][0]) for i in part.rows)
    assert lone == 2


def test_pair_shards_keep_chosen_and_rejected_together():
    from types import SimpleNamespace

    from localtune.train.dpo import PairStream

    pairs = [SimpleNamespace(chosen_ids=[1, 10 + i, 2], chosen_mask=[False, True, True],
                             rejected_ids=[1, 20 + i], rejected_mask=[False, True], length=3, margin=None)
             for i in range(3)]
    ref = (np.array([0.1, 0.2, 0.3]), np.array([-0.1, -0.2, -0.3]))
    whole = PairStream(pairs, 3, seed=0, ref=ref).next()
    part = PairStream(pairs, 3, seed=0, ref=ref, shard=Shard(1, 2)).next()
    (i,) = part.rows
    assert part.rows == whole.rows[1::2]
    assert part.ids[:, 1].tolist() == [10 + i, 20 + i]  # its chosen and its rejected
    assert np.allclose(np.array(part.ref), [ref[0][i], ref[1][i]])


def test_single_process_hooks_are_identities(tmp_path):
    dp = DataParallel()
    assert (dp.world, dp.rank, dp.is_main, dp.all_reduce) == (1, 0, True, None)
    assert dp.shard == Shard(0, 1)
    fn = lambda: None  # noqa: E731
    assert dp.should_stop(fn) is fn and dp.loss(fn) is fn
    assert not isinstance(dp.run(FollowerRun(tmp_path)), type(None))


def test_follower_run_never_writes(tmp_path):
    run = FollowerRun(tmp_path / "run")
    run.acquire()
    run.write({"status": "running"})
    run.append_metric({"step": 1})
    run.log("hello")
    assert not (tmp_path / "run").exists()


def test_two_ranks_equal_one_process_with_double_batch(tiny_model_dir, tmp_path, echo_rows):
    data = echo_rows(tmp_path / "train.jsonl", 20, 0)  # 20 rows / 4 = 5 global batches
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
    for attempt in range(2):
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        # MLX's ring backend on a loaded 2-core machine sometimes drops its loopback socket
        # ("connection to a peer was lost", seen twice in full-suite runs, never alone); one
        # retry from scratch, for that message only
        if "connection to a peer was lost" not in proc.stderr:
            break
        shutil.rmtree(dist_out, ignore_errors=True)
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
    from localtune.data.packing import PackedStream, collate_packed

    rows = [([i + 3] * n, [False] + [True] * (n - 1)) for i, n in enumerate((9, 4, 7, 3, 6, 5, 8, 2, 7))]
    whole = PackedStream(rows, 4, seed=0, capacity=12)
    ranks = [PackedStream(rows, 4, seed=0, capacity=12, shard=Shard(r, 2)) for r in range(2)]
    for _ in range(whole.batches_per_epoch):
        batch = whole.next()
        parts = [s.next() for s in ranks]
        assert not parts[0].dummy
        parts = [p for p in parts if not p.dummy]  # a batch of one pack: rank 1 only stands in
        assert sorted(i for p in parts for i in p.rows) == sorted(batch.rows)
        for p in parts:  # each rank's packs are whole: segments, targets, masks as collated
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
