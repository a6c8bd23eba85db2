"""`localtune export RUN --format peft|fused|gguf --out PATH [--push REPO_ID]`."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("export", help="export a run as a PEFT adapter, a fused model or a GGUF file")
    p.add_argument("run", metavar="RUN_DIR", help="a run directory (or an mlx_lm adapter directory)")
    p.add_argument("--format", choices=("peft", "fused", "gguf"), default="peft",
                   help="peft: adapter for transformers+PEFT; fused: adapter merged into an mlx_lm "
                        "model dir; gguf: fp16 llama.cpp file (default: peft)")
    p.add_argument("--out", help="output directory (gguf: file; default: RUN_DIR/export-FORMAT)")
    p.add_argument("--model", help="base model, when the run does not record one that exists here")
    p.add_argument("--dequantize", action="store_true",
                   help="fused: write float weights even if the base was quantized")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="gguf tensor type")
    p.add_argument("--base-name", help="peft: base_model_name_or_path to record (default: the run's model)")
    p.add_argument("--push", metavar="REPO_ID", help="upload the export to this Hugging Face Hub repo")
    p.add_argument("--private", action="store_true", help="with --push: create the repo private")
    p.add_argument("--force", action="store_true",
                   help="replace --out if it exists (never the run itself or its base model)")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from localtune.cli import show_notices
    from localtune.export import export_run

    out = args.out or str(Path(args.run) / (f"export-{args.format}" + (".gguf" if args.format == "gguf" else "")))
    path = export_run(args.run, args.format, out, model=args.model, dequantize=args.dequantize,
                      base_name=args.base_name, dtype=args.dtype, force=args.force, on_event=show_notices)
    print(f"exported ({args.format}): {path}")
    if args.push:
        from localtune.export.hub import push_export

        url = push_export(args.run, path, args.push, private=args.private, fmt=args.format,
                          base_name=args.base_name)
        print(f"pushed: {url}")
    return 0
