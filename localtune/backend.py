"""Every device-specific choice in one place, so the same code runs on Metal, CUDA and CPU.

Metal-only calls (mx.metal.*, mx.set_wired_limit, Metal keys of mx.device_info()) are reached
only through the guarded functions here; everything else asks this module.
"""

from __future__ import annotations

import os
import platform
import resource
import sys

import localtune  # noqa: F401  (preloads OpenBLAS before mlx.core)
import mlx.core as mx


def kind() -> str:
    """'metal', 'cuda' or 'cpu': the backend the default device runs on."""
    if mx.default_device() == mx.cpu:
        return "cpu"
    if mx.metal.is_available():
        return "metal"
    cuda = getattr(mx, "cuda", None)
    if cuda is not None and cuda.is_available():
        return "cuda"
    return "gpu"


def is_metal() -> bool:
    return kind() == "metal"


def default_train_dtype() -> str:
    """The training base that is fast here: 4-bit (QLoRA) on Metal, float32 elsewhere.

    On CPU, f32 matmuls go to BLAS while bf16/fp16 and quantized matmuls do not (much slower).
    """
    return "4bit" if is_metal() else "float32"


def total_memory_bytes() -> int:
    """Memory the device can use: Metal's recommended working set, else host RAM."""
    if is_metal():
        info = mx.device_info()
        if "max_recommended_working_set_size" in info:
            return int(info["max_recommended_working_set_size"])
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def set_wired_limit() -> None:
    """Wire the model's memory on Metal (what mlx_lm does); nothing elsewhere."""
    if is_metal() and hasattr(mx, "set_wired_limit"):
        mx.set_wired_limit(total_memory_bytes())


def peak_memory_gb() -> float:
    """MLX's peak allocation in GB (all backends expose mx.get_peak_memory)."""
    return mx.get_peak_memory() / 1e9


def reset_peak_memory() -> None:
    mx.reset_peak_memory()


def rss_gb() -> float:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1e9 if sys.platform == "darwin" else r * 1024 / 1e9


def clear_cache() -> None:
    mx.clear_cache()


def fast_cpu_math() -> bool:
    """Use localtune.cpu_math's exp-based ops (softmax, SwiGLU, attention, log-sum-exp)?

    Only on the CPU backend, where MLX's own exp is scalar and slow (bench/NOTES.md); Metal and
    CUDA have fast kernels. LOCALTUNE_FAST_MATH=0 turns it off (to compare, or to debug).
    """
    return kind() == "cpu" and os.environ.get("LOCALTUNE_FAST_MATH", "1") != "0"


def allocator() -> str:
    from localtune import _malloc

    return "glibc, freed memory kept" if _malloc.applied else f"default ({_malloc.reason})"


def blas() -> str:
    """Which BLAS the CPU backend uses, as far as we can tell."""
    from localtune import _blas

    if sys.platform == "darwin":
        return "Accelerate"
    if _blas.loaded_path:
        return f"OpenBLAS ({_blas.loaded_path})"
    return f"bundled reference BLAS ({_blas.reason})"


def describe() -> dict:
    """Facts for `localtune doctor`."""
    import importlib.metadata as md

    def version(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    info = {
        "backend": kind(),
        "device": str(mx.default_device()),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "blas": blas(),
        "allocator": allocator(),
        "fast_cpu_math": fast_cpu_math(),
        "memory_gb": round(total_memory_bytes() / 1e9, 1),
        "default_train_dtype": default_train_dtype(),
        "cpu_count": os.cpu_count(),
    }
    for pkg in ("mlx", "mlx-lm", "huggingface-hub", "transformers", "numpy"):
        info[pkg] = version(pkg)
    if is_metal():
        dev = mx.device_info()
        info["metal_device"] = dev.get("device_name", "?")
    return info


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Measured f32 matmul rate of the default device (what training speed is bounded by)."""
    import time

    a = mx.random.normal((n, n))
    mx.eval(a @ a)
    t = time.perf_counter()
    for _ in range(repeats):
        mx.eval(a @ a)
    return repeats * 2 * n**3 / (time.perf_counter() - t) / 1e9
