"""`localtune doctor`: what this machine will train with (device, MLX backend, BLAS, memory)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("doctor", help="report device, MLX backend, BLAS, memory and versions")
    p.add_argument("--bench", action="store_true", help="also measure the f32 matmul rate")
    p.set_defaults(func=run)


def run(args) -> int:
    from localtune import backend

    info = backend.describe()
    if args.bench:
        info["matmul_gflops_f32"] = round(backend.matmul_gflops(), 1)
    width = max(len(k) for k in info)
    for k, v in info.items():
        print(f"{k:<{width}}  {v}")
    if info["backend"] == "cpu" and "OpenBLAS" not in info["blas"] and info["platform"].startswith("Linux"):
        print("\nhint: training on this CPU is ~30x faster with OpenBLAS:\n"
              "  sudo apt-get install -y libopenblas0-pthread")
    return 0
