"""The DPO reference policy without a second model: the starting weights, recovered in place.

Starting from the base, the reference is the model with every adapter switched off. Starting from
an SFT run's adapter, it is the model with that adapter's saved weights swapped back in (adapters
are tiny, so the copy costs nothing). `cached` mode runs the reference once over the data before
training and stores the per-sequence log-probs in the run directory, keyed by a hash of the
tokenized pairs and the starting weights, so resumes and later runs over the same data reuse them.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import localtune  # noqa: F401
import mlx.core as mx
import mlx.nn as nn

from localtune import events
from localtune.errors import RunError
from localtune.fsutil import atomic_save_safetensors, atomic_write_bytes
from localtune.lora import ADAPTER_FILE, CONFIG_FILE, adapter_layers, adapter_weights, eval_mode
from localtune.runs import RunDir, layout
from localtune.train.provenance import base_fingerprint  # noqa: F401  (re-exported: tests use it here)

CACHE_DIR = layout.REFERENCE_DIR
CACHE_VERSION = "1"  # bump when what is stored (or how it is computed) changes


def starting_adapter(adapter_dir: str | Path | None) -> dict[str, mx.array] | None:
    """The SFT adapter the run starts from, read from its file (not from the model, which may
    already hold a resumed checkpoint). None when starting from the base."""
    if not adapter_dir:
        return None
    from localtune.lora import read_adapter_file

    return dict(read_adapter_file(Path(adapter_dir) / ADAPTER_FILE))


@contextmanager
def reference_policy(model: nn.Module, start_weights: dict | None = None):
    """Inside the block the model computes the reference policy: adapters off (base start) or the
    starting adapter swapped in; no dropout. Everything is put back on exit, including the exact
    arrays being traced by a surrounding value_and_grad, so gradients still flow to them."""
    layers = adapter_layers(model)
    enabled = [layer.adapter_enabled for layer in layers]
    current = adapter_weights(model) if start_weights is not None else None
    if start_weights is None:
        for layer in layers:
            layer.adapter_enabled = False
    else:
        model.load_weights(list(start_weights.items()), strict=False)
    try:
        with eval_mode(model):
            yield model
    finally:
        if current is not None:
            model.load_weights(list(current.items()), strict=False)
        for layer, on in zip(layers, enabled):
            layer.adapter_enabled = on


def sequence_logps(model: nn.Module, batch):
    """Per-sequence sum of log p(target) over a batch's target tokens, and the count of those
    tokens (the data.batching convention; logits only at target positions, train/logits.py)."""
    from localtune.train.logits import target_logprobs

    logp = target_logprobs(model, batch)
    rows = batch.ids.shape[0]
    sums = mx.zeros((rows,), mx.float32).at[batch.target_rows].add(logp)
    counts = mx.zeros((rows,), mx.float32).at[batch.target_rows].add(1.0)
    return sums, counts


def live_reference(model, batch, start_weights=None, rows: int = 0) -> mx.array:
    """Reference log-prob sums for a batch: one extra forward pass, no gradient; `rows` rows at a
    time, each evaluated before the next (0: all at once), so the pass holds no more than that."""
    from localtune.data.batching import by_row_chunks

    with reference_policy(model, start_weights):
        ref = by_row_chunks(batch, rows, lambda part: sequence_logps(model, part)[0])
    return mx.stop_gradient(ref)


def compute_reference(model, pairs, batch_size: int, start_weights=None,
                      progress=lambda done: None) -> tuple[np.ndarray, np.ndarray]:
    """Reference log-prob sums of every pair's chosen and rejected sequence, in `pairs` order.
    `progress(pairs done)` after each batch."""
    from localtune.data.batching import collate

    chosen = np.zeros(len(pairs), np.float32)
    rejected = np.zeros(len(pairs), np.float32)
    order = sorted(range(len(pairs)), key=lambda i: pairs[i].length)  # little padding
    with reference_policy(model, start_weights):
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            seqs = [(pairs[i].chosen_ids, pairs[i].chosen_mask) for i in idx]
            seqs += [(pairs[i].rejected_ids, pairs[i].rejected_mask) for i in idx]
            batch = collate(seqs, list(range(len(seqs))))
            ref, _ = sequence_logps(model, batch)
            ref = np.array(ref)
            chosen[idx], rejected[idx] = ref[: len(idx)], ref[len(idx):]
            progress(start + len(idx))
    return chosen, rejected


def cache_key(pairs, base: str, adapter_dir: str | Path | None) -> str:
    """Hash of everything the cached log-probs depend on: the exact token ids and masks (so data,
    tokenizer, template and max_seq_len), the base weights and the starting adapter."""
    h = hashlib.sha256(f"localtune-reference-v{CACHE_VERSION}\n{base}\n".encode())
    if adapter_dir:
        for f in (ADAPTER_FILE, CONFIG_FILE):
            h.update((Path(adapter_dir) / f).read_bytes())
    for p in pairs:
        for part in (p.chosen_ids, p.chosen_mask, p.rejected_ids, p.rejected_mask):
            h.update(np.asarray(part, np.int32).tobytes())
            h.update(b"|")
    return h.hexdigest()


def _cache_name(role: str, key: str) -> str:
    return f"{role}-{key[:24]}.safetensors"


def _read_cache(path: Path, key: str, n: int):
    try:
        arrays, meta = mx.load(str(path), return_metadata=True)
        chosen, rejected = np.array(arrays["chosen"]), np.array(arrays["rejected"])
    except Exception:
        return None  # unreadable or torn: recompute
    if meta.get("key") != key or chosen.shape != (n,) or rejected.shape != (n,):
        return None
    return chosen, rejected


def cached_reference(model, pairs, run_dir: str | Path, *, role: str, batch_size: int,
                     start_weights=None, adapter_dir=None, on_event=events.ignore, phase=None,
                     keep_own: bool = False):
    """(chosen, rejected) reference log-prob sums: from this run's cache, else from a sibling run
    with the same key (copied in, so the run stays self-contained), else computed and stored.
    `keep_own`: the starting weights cannot be trusted to be the run's (a resumed run recorded
    before runs kept a copy of them): refuse rather than recompute over this run's own cache."""
    t0 = time.perf_counter()
    key = cache_key(pairs, base_fingerprint(model), adapter_dir)
    own = RunDir(run_dir).reference_dir
    mine = own / _cache_name(role, key)
    candidates = [mine] + sorted(Path(run_dir).parent.glob(f"*/{CACHE_DIR}/{_cache_name(role, key)}"))
    for path in candidates:
        found = _read_cache(path, key, len(pairs))
        if found is None:
            continue
        if path != mine:
            atomic_write_bytes(mine, path.read_bytes())
        status = "loaded" if path == mine else "reused"
        on_event(events.Reference(role, status, str(path), len(pairs), key, time.perf_counter() - t0).to_dict())
        return found
    if keep_own and any(own.glob(f"{role}-*.safetensors")):
        raise RunError(
            f"{own}: the cached {role} reference was computed from other inputs than now: the starting "
            f"adapter {adapter_dir} (or the data) changed since this run started, and recomputing it "
            "would change what the run optimizes; restore that adapter, or start a new run")
    progress = phase.counter("scoring_reference", len(pairs)) if phase else (lambda done: None)
    chosen, rejected = compute_reference(model, pairs, batch_size, start_weights, progress)
    meta = {"key": key, "pairs": str(len(pairs)), "version": CACHE_VERSION,
            "adapter": json.dumps(str(adapter_dir) if adapter_dir else None)}
    atomic_save_safetensors(mine, {"chosen": mx.array(chosen), "rejected": mx.array(rejected)}, meta)
    on_event(events.Reference(role, "computed", str(mine), len(pairs), key, time.perf_counter() - t0).to_dict())
    return chosen, rejected
