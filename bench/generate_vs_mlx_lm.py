"""Chat generation with a LoRA adapter: localtune's chat engine vs `mlx_lm generate`, alternating,
same model file, adapter, prompt (chat template), greedy decoding and max tokens.

    LOCALTUNE_MODELS=/tmp/lt-models python bench/generate_vs_mlx_lm.py [--repeats 3] [--max-tokens 128]

Both report mlx_lm's own generation tokens/s (decode only, prompt excluded); the peer runs with
OpenBLAS preloaded, as localtune does. Without --adapter a random non-zero adapter (rank 8, all
linear, 16 layers) is written so the LoRA path is exercised.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import localtune  # noqa: E402,F401

PROMPT = "Write a long story about a ship's navigator who finds a new island. Use many details."
LOCAL = """
import json, sys, localtune
from localtune.chat import ChatSession, Sampling
s = ChatSession.open(sys.argv[1], adapter=sys.argv[2])
s.ask(sys.argv[3], Sampling(max_tokens=int(sys.argv[4])), remember=False)
import mlx.core as mx
print(json.dumps({"tps": s.last.tokens_per_sec, "tokens": s.last.tokens, "peak_gb": mx.get_peak_memory() / 1e9}))
"""


def random_adapter(model_path, out: Path) -> Path:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from localtune.lora import LoraSpec, attach_lora, save_adapter
    from localtune.models import load_model

    model, _ = load_model(model_path)
    spec = LoraSpec(rank=8, alpha=16, layers=16)
    attach_lora(model, spec)
    mx.random.seed(0)
    # B starts at zero (an exact no-op); a non-zero B makes the adapter change the outputs.
    model.load_weights([(k, mx.random.normal(v.shape) * 0.01) for k, v in tree_flatten(model.trainable_parameters())
                        if k.endswith("lora_b")], strict=False)
    save_adapter(model, out, spec)
    return out


def local_run(model, adapter, a, log: Path) -> dict:
    script = log.with_suffix(".py")
    script.write_text(LOCAL)
    res = common.run_child([sys.executable, str(script), str(model), str(adapter), PROMPT, str(a.max_tokens)], log=log)
    return {**res, **json.loads(log.read_text().strip().splitlines()[-1])}


def peer_run(model, adapter, a, log: Path) -> dict:
    cmd = [sys.executable, "-m", "mlx_lm", "generate", "--model", str(model), "--adapter-path", str(adapter),
           "--prompt", PROMPT, "--max-tokens", str(a.max_tokens), "--temp", "0"]
    res = common.run_child(cmd, env={"LD_PRELOAD": common.OPENBLAS}, log=log)
    text = log.read_text()
    gen = re.search(r"Generation: (\d+) tokens, ([\d.]+) tokens-per-sec", text)
    peak = re.search(r"Peak memory: ([\d.]+) GB", text)
    return {**res, "tokens": int(gen.group(1)), "tps": float(gen.group(2)), "peak_gb": float(peak.group(1))}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--adapter", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=128)
    a = p.parse_args()
    from localtune.models import resolve_model

    model = resolve_model(a.model)
    tmp = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    adapter = Path(a.adapter) if a.adapter else random_adapter(model, tmp / "adapter")
    sides = ["localtune", "mlx_lm.generate"]
    runs = {s: [] for s in sides}
    for r in range(a.repeats):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            log = tmp / f"{side.replace('.', '_')}-{r}.log"
            res = local_run(model, adapter, a, log) if side == "localtune" else peer_run(model, adapter, a, log)
            runs[side].append(res)
            print(f"# {side} run {r}: {res['tps']:.1f} tok/s, {res['tokens']} tokens", file=sys.stderr, flush=True)
    keys = ("tps", "tokens", "peak_gb", "rss_gb")
    med = [(s, {k: common.median([x[k] for x in runs[s]]) for k in keys}) for s in sides]
    common.print_table(
        f"Chat generation with a LoRA adapter, {model.name}, greedy, max {a.max_tokens} tokens, float32; "
        f"median of {a.repeats}", med,
        [("tps", "generation tokens/s", ".1f"), ("tokens", "tokens generated", ".0f"),
         ("peak_gb", "MLX peak memory (GB)", ".3f"), ("rss_gb", "process peak RSS (GB)", ".3f")],
        [f"Prompt: {PROMPT!r} (chat template applied by both)."])


if __name__ == "__main__":
    main()
