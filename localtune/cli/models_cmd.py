"""`localtune models import|quantize|list|download`: get a base model in shape for training."""

from __future__ import annotations


def register(sub) -> None:
    models = sub.add_parser("models", help="import GGUF, quantize, list and download models")
    cmds = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    imp = cmds.add_parser("import", help="convert a llama-architecture GGUF into an mlx_lm directory")
    imp.add_argument("gguf", metavar="FILE.gguf")
    imp.add_argument("out", metavar="OUT_DIR")
    imp.add_argument("--dtype", choices=("float32", "float16", "keep-quant"), default="float32",
                     help="float32 (fast on CPU), float16, or keep-quant (lossless 4-bit for Metal)")
    imp.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists and is not empty")
    imp.set_defaults(func=run_import)

    q = cmds.add_parser("quantize", help="make a 4- or 8-bit copy of a model directory")
    q.add_argument("src")
    q.add_argument("dst")
    q.add_argument("--bits", type=int, choices=(4, 8), default=4)
    q.add_argument("--group-size", type=int, choices=(32, 64, 128), default=64)
    q.add_argument("--force", action="store_true", help="replace DST if it exists and is not empty")
    q.set_defaults(func=run_quantize)

    ls = cmds.add_parser("list", help="models in the local models directory and the HF cache")
    ls.set_defaults(func=run_list)

    dl = cmds.add_parser("download", help="download a Hugging Face repo id into the HF cache")
    dl.add_argument("repo_id")
    dl.set_defaults(func=run_download)


def _show(e: dict) -> None:
    if e.get("event") in ("download", "import"):
        msg = e.get("message") or " ".join(f"{k}={v}" for k, v in e.items() if k != "event")
        print(f"{e['event']}: {msg}", flush=True)


def run_import(args) -> int:
    from localtune.models import import_gguf

    out = import_gguf(args.gguf, args.out, dtype=args.dtype, on_event=_show, force=args.force)
    print(f"imported: {out}")
    return 0


def run_quantize(args) -> int:
    from localtune.models import quantize_model_dir

    out = quantize_model_dir(args.src, args.dst, bits=args.bits, group_size=args.group_size, force=args.force)
    print(f"quantized: {out}")
    return 0


def run_list(args) -> int:
    from localtune.models import list_models

    models = list_models()
    if not models:
        print("no local models yet (localtune demo imports SmolLM2)")
        return 0
    for m in models:
        size = m.get("size_bytes", 0) / 1e6
        print(f"{m['name']:<48} {size:>9.1f} MB  {str(m.get('quantization') or m.get('dtype') or '-'):<10} "
              f"{m.get('model_type') or '?':<10} {m['path']}")
    return 0


def run_download(args) -> int:
    from localtune.models import download_model

    print(f"downloaded: {download_model(args.repo_id, on_event=_show)}")
    return 0
