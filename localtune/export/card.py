"""The model card (README.md) of an exported run: base model, data, configuration, final metrics
and the loss curve, with the Hub's YAML front matter."""

from __future__ import annotations

from pathlib import Path

from localtune.runs import read_metrics, read_run

# The settings worth a reader's time; the whole config is in the run's record.
CARD_KEYS = ("iters", "epochs", "batch_size", "grad_accum", "lr", "schedule", "warmup", "lora_rank",
             "lora_alpha", "lora_layers", "lora_targets", "dora", "max_seq_len", "seed", "beta", "loss",
             "rpo_alpha", "eval_file", "keep_best", "keep_best_if", "patience")


def final_metrics(run: Path) -> dict:
    """The last (step, value) of each metric the registry puts on the card."""
    shown = [k for k, m in read_run(run).metrics.items() if m.card]
    out = {}
    for e in read_metrics(run):
        for k in shown:
            if isinstance(e.get(k), (int, float)) and not isinstance(e.get(k), bool):
                out[k] = (e.get("step"), e[k])
    return out


def model_card(run: str | Path, fmt: str, base_name: str, *, has_plot: bool) -> str:
    run = Path(run)
    info = read_run(run).record
    cfg = info.get("config") or {}
    kind = info.get("kind", "sft")
    library = {"peft": "peft", "fused": "mlx", "gguf": "gguf"}[fmt]
    lines = ["---", f"base_model: {base_name}", f"library_name: {library}",
             f"tags: [localtune, {'dora' if cfg.get('dora') else 'lora'}, {kind}, mlx]", "---", "",
             f"# {run.name}", "",
             f"A {kind.upper()} {'DoRA' if cfg.get('dora') else 'LoRA'} fine-tune of `{base_name}`, "
             f"trained with localtune (MLX) and exported as **{fmt}**.", "",
             "## Data", ""]
    lines.append(f"- training: `{cfg.get('data')}`" + (f" ({info['train_rows']} rows)" if "train_rows" in info else ""))
    if cfg.get("valid"):
        lines.append(f"- validation: `{cfg['valid']}`" + (f" ({info['valid_rows']} rows)" if "valid_rows" in info else ""))
    lines += ["", "## Configuration", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {k} | {cfg[k]} |" for k in CARD_KEYS if cfg.get(k) is not None]
    lines += ["", "## Results", ""]
    metrics = final_metrics(run)
    lines += [f"- {k}: {v:.4f} (step {s})" for k, (s, v) in metrics.items()] or ["- no metrics recorded"]
    if info.get("step") is not None:
        lines.append(f"- steps: {info['step']}, status: {info.get('status', '?')}")
    if info.get("best_metric") and info.get("adapter_step") is not None:
        if info.get("best_step") is None:
            which = (f"met {cfg['keep_best_if']}" if cfg.get("keep_best_if")
                     else f"gave a value of {info['best_metric']}")
            lines.append(f"- no evaluation {which}; the adapter is the last step's ({info['adapter_step']})")
        else:
            stopped = (f"; stopped early at step {info['early_stopped_at']} (patience {cfg.get('patience')})"
                       if info.get("early_stopped_at") is not None else "")
            among = f" among the evaluations with {cfg['keep_best_if']}" if cfg.get("keep_best_if") else ""
            lines.append(f"- the adapter is the checkpoint of step {info['adapter_step']}, the best by "
                         f"{info['best_metric']} ({info.get('best_value')}){among}{stopped}")
    if has_plot:
        lines += ["", "![loss curve: training (blue) and validation (orange) loss per step](loss.png)"]
    usage = {
        "peft": f'model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{base_name}"), REPO)',
        "fused": "mlx_lm.generate --model REPO --prompt ...",
        "gguf": "llama-cli -m <file>.gguf -p ...",
    }[fmt]
    lines += ["", "## Use", "", "```", usage, "```", ""]
    return "\n".join(lines)
