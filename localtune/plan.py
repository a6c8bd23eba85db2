"""Predict a LoRA run's peak memory and speed before training, and the largest batch/length that
fits a memory budget.

Memory = weights (their files' bytes) + LoRA training state (params, grads, two Adam moments)
+ the activations autograd keeps for the widest batch + the loss head's logits. Only blocks at or
above the lowest adapted one keep activations (no gradient flows below it). Speed = the step's
FLOPs (forward everywhere, backward through the adapted blocks, padding included) over the
measured matmul rate (`backend.matmul_gflops()`) times EFFICIENCY.

The per-token/per-score coefficients below count the tensors MLX keeps for the backward pass of
a llama-style block (mlx_lm's attention and SwiGLU MLP) in float32; they and EFFICIENCY were
calibrated on SmolLM2-135M on the CPU backend with OpenBLAS (see bench/NOTES.md).
"""

from __future__ import annotations

from pathlib import Path

# Floats kept per token per trained block: ~8 hidden-sized (norm inputs/outputs, q/k/v/o inputs,
# residuals) and ~4 intermediate-sized (gate, up, silu, product) tensors.
HIDDEN_TENSORS = 8
INTER_TENSORS = 4
# Attention on this backend is the unfused composition: scores and probabilities, per head, L×L.
SCORE_TENSORS = 2
# Logits at target positions in float32: logits, softmax/logsumexp intermediate, their gradient.
LOGIT_TENSORS = 3
# The CPU fast path (localtune/cpu_math.py) keeps one L×L tensor per block (the probabilities) and
# no (targets × vocab) logits: the head walks the vocabulary in ~2M-logit blocks, whose exp
# intermediates are what is in flight (~8 blocks' worth), plus three (targets × hidden) tensors.
FAST_SCORE_TENSORS = 1
FAST_HEAD_BLOCKS = 8
# Achieved fraction of the measured 1024² matmul rate over a whole step (smaller matrices,
# attention, softmax, elementwise work and the optimizer lower it). Measured 0.24-0.53 on a
# shared 2-core CPU (bench/NOTES.md): speed predictions are good to about 2x, memory to ~5%.
EFFICIENCY = 0.4
OVERHEAD_BYTES = 64e6  # MLX allocator slack and small buffers
BATCH_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128)
LENGTH_CHOICES = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)


def model_shape(model_dir: Path) -> dict:
    """The dimensions the estimate needs, from config.json (llama-family names)."""
    from localtune.errors import ModelError
    from localtune.models.load import check_model_dir, read_model_config

    check_model_dir(Path(model_dir))
    cfg = read_model_config(Path(model_dir))
    try:
        hidden = cfg["hidden_size"]
        heads = cfg["num_attention_heads"]
        head_dim = cfg.get("head_dim") or hidden // heads
        return {
            "hidden": hidden,
            "intermediate": cfg["intermediate_size"],
            "layers": cfg["num_hidden_layers"],
            "heads": heads,
            "kv_heads": cfg.get("num_key_value_heads", heads),
            "head_dim": head_dim,
            "vocab": cfg["vocab_size"],
            "weight_bytes": sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors")),
        }
    except (KeyError, TypeError, ZeroDivisionError) as e:
        raise ModelError(f"{Path(model_dir) / 'config.json'}: no usable {e} for a memory plan "
                         "(plan knows llama-family configs)") from None


def _linears(s: dict) -> dict:
    """(in, out) of each linear in a block, by mlx_lm module name."""
    h, q, kv, i = s["hidden"], s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"], s["intermediate"]
    return {"self_attn.q_proj": (h, q), "self_attn.k_proj": (h, kv), "self_attn.v_proj": (h, kv),
            "self_attn.o_proj": (q, h), "mlp.gate_proj": (h, i), "mlp.up_proj": (h, i), "mlp.down_proj": (i, h)}


def trained_blocks(s: dict, lora_layers: int) -> int:
    return s["layers"] if lora_layers < 0 else min(lora_layers, s["layers"])


def lora_params(s: dict, rank: int, lora_layers: int, targets) -> int:
    lin = _linears(s)
    return trained_blocks(s, lora_layers) * sum(rank * (lin[t][0] + lin[t][1]) for t in targets if t in lin)


def batch_memory(s: dict, batch: int, width: int, targets: int, *, rank: int, lora_layers: int,
                 lora_targets, grad_checkpoint: bool = False, fast_cpu: bool = False) -> dict:
    """Peak bytes of one training step on a (batch, width) batch with `targets` target tokens.

    fast_cpu: the step runs localtune.cpu_math's attention and blocked head (backend.fast_cpu_math()).
    """
    f32 = 4
    g = trained_blocks(s, lora_layers)
    tokens = batch * width
    n_mod = len([t for t in lora_targets if t in _linears(s)])
    per_token = f32 * (HIDDEN_TENSORS * s["hidden"] + INTER_TENSORS * s["intermediate"] + 2 * rank * n_mod)
    scores = f32 * (FAST_SCORE_TENSORS if fast_cpu else SCORE_TENSORS) * batch * s["heads"] * width * width
    block = per_token * tokens + scores
    # Checkpointing keeps each block's input and recomputes one block at a time.
    acts = (g * f32 * s["hidden"] * tokens + block) if grad_checkpoint else g * block
    p = lora_params(s, rank, lora_layers, lora_targets)
    parts = {
        "weights": s["weight_bytes"],
        "lora_state": 4 * f32 * p,  # params, grads, Adam m and v
        "activations": acts,
        "logits": (3 * f32 * targets * s["hidden"] + FAST_HEAD_BLOCKS * f32 * _head_block(targets, s["vocab"]))
                  if fast_cpu
                  else LOGIT_TENSORS * f32 * targets * s["vocab"],
        "overhead": OVERHEAD_BYTES,
    }
    parts["total"] = sum(parts.values())
    return parts


def _head_block(targets: int, vocab: int) -> int:
    """Logits in one vocabulary block of cpu_math.head_logprobs."""
    from localtune.cpu_math import vocab_block

    return targets * vocab_block(targets, vocab) if targets else 0


def step_flops(s: dict, batch: int, width: int, targets: int, *, rank: int, lora_layers: int, lora_targets) -> float:
    """FLOPs of a forward + backward step (LoRA: no weight gradients for the frozen base)."""
    lin = _linears(s)
    tokens = batch * width
    block_lin = 2 * tokens * sum(i * o for i, o in lin.values())
    attn = 4 * batch * width * width * s["heads"] * s["head_dim"]  # QK^T and PV
    lora = 2 * tokens * sum(rank * (lin[t][0] + lin[t][1]) for t in lora_targets if t in lin)
    head = 2 * targets * s["hidden"] * s["vocab"]
    g = trained_blocks(s, lora_layers)
    forward = s["layers"] * (block_lin + attn) + g * lora + head
    backward = g * (block_lin + 2 * attn + 3 * lora) + head  # dX through blocks; dA, dB for LoRA
    return forward + backward


def _batches(rows, batch_size: int, seed: int, pack_to: int | None = None):
    """(batch, width, targets) of every batch of the first epoch, as training will cut them
    (`pack_to`: packed sequences of up to that many tokens, data/packing.py)."""
    from localtune.data.batching import epoch_order
    from localtune.data.packing import packed_epoch_order

    lengths = [len(ids) for ids, _ in rows]
    if pack_to:
        for packs in packed_epoch_order(lengths, batch_size, pack_to, seed, 0):
            width = max(sum(lengths[i] for i in p) for p in packs)
            yield len(packs), width, sum(sum(rows[i][1][1:]) for p in packs for i in p)
        return
    for idx in epoch_order(lengths, batch_size, seed, 0):
        width = max(lengths[i] for i in idx)
        yield len(idx), width, sum(sum(rows[i][1][1:]) for i in idx)


def plan(cfg, *, memory_gb: float | None = None, gflops: float | None = None, on_event=lambda e: None) -> dict:
    """Predicted peak memory (GB) and tokens/s of training `cfg` (a TrainConfig), with suggestions.

    `gflops`: the matmul rate to assume (default: measured now with backend.matmul_gflops()).
    """
    from localtune import backend
    from localtune.data.preferences import looks_like_preferences
    from localtune.errors import DataError
    from localtune.models import load_tokenizer_only, resolve_model
    from localtune.train.prepare import load_rows

    if looks_like_preferences(cfg.data, getattr(cfg, "columns", None)):
        raise DataError(f"{cfg.data}: preference pairs; `plan` covers SFT data only so far")
    model_dir = resolve_model(cfg.model, on_event=on_event)
    s = model_shape(model_dir)
    rows, _ = load_rows(cfg.data, load_tokenizer_only(str(model_dir)), format=cfg.format,
                        train_on_prompt=cfg.train_on_prompt, max_seq_len=cfg.max_seq_len,
                        overlong=cfg.overlong, on_event=on_event, columns=getattr(cfg, "columns", None))
    lora = dict(rank=cfg.lora_rank, lora_layers=cfg.lora_layers, lora_targets=tuple(cfg.lora_targets))
    fast = backend.fast_cpu_math()
    batches = list(_batches(rows, cfg.batch_size, cfg.seed, cfg.max_seq_len if getattr(cfg, "pack", False) else None))
    peak = max((batch_memory(s, b, w, t, grad_checkpoint=cfg.grad_checkpoint, fast_cpu=fast, **lora)
                for b, w, t in batches),
               key=lambda m: m["total"])
    rate = gflops or backend.matmul_gflops()
    flops = sum(step_flops(s, b, w, t, **lora) for b, w, t in batches)
    real = sum(len(ids) for ids, _ in rows)
    seconds = flops / (rate * 1e9 * EFFICIENCY)
    budget = (memory_gb * 1e9) if memory_gb else backend.total_memory_bytes()
    longest = max(len(ids) for ids, _ in rows)
    target_frac = sum(t for *_, t in batches) / max(sum(b * w for b, w, _ in batches), 1)

    def fits(b: int, w: int) -> bool:  # worst case: every row of the batch at width w
        m = batch_memory(s, b, w, int(b * w * target_frac), grad_checkpoint=cfg.grad_checkpoint,
                         fast_cpu=fast, **lora)
        return m["total"] <= budget

    width = min(longest, cfg.max_seq_len)
    return {
        "model": str(model_dir),
        "rows": len(rows),
        "real_tokens_per_epoch": real,
        "batches_per_epoch": len(batches),
        "widest_batch": max(batches, key=lambda x: x[0] * x[1])[:2],
        "trainable_params": lora_params(s, **{"rank": cfg.lora_rank, "lora_layers": cfg.lora_layers,
                                             "targets": cfg.lora_targets}),
        "peak_memory_gb": peak["total"] / 1e9,
        "memory_parts_gb": {k: v / 1e9 for k, v in peak.items() if k != "total"},
        "matmul_gflops": rate,
        "efficiency": EFFICIENCY,
        "step_gflop_per_epoch": flops / 1e9,
        "tokens_per_sec": real / seconds if seconds else 0.0,
        "epoch_seconds": seconds,
        "memory_budget_gb": budget / 1e9,
        "fits": peak["total"] <= budget,
        "max_batch_size": max((b for b in BATCH_CHOICES if fits(b, width)), default=0),
        "max_seq_len": max((w for w in LENGTH_CHOICES if fits(cfg.batch_size, w)), default=0),
    }
