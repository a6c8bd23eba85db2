"""Load a fast BLAS before mlx.core on Linux.

MLX's Linux CPU wheel links a reference BLAS (~6 GFLOP/s here). Loading Debian's OpenBLAS with
RTLD_GLOBAL first makes the same cblas symbols resolve to it (~165 GFLOP/s). This module must not
import mlx; it only records what it did so `localtune doctor` can report it.
"""

import ctypes
import os
import sys

CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
)

loaded_path: str | None = None  # which library was preloaded, if any
reason: str = "not attempted"  # why not, for `doctor`


def preload() -> str | None:
    """Preload OpenBLAS once; a no-op off Linux, when disabled, or when mlx is already imported."""
    global loaded_path, reason
    if loaded_path is not None:
        return loaded_path
    if not sys.platform.startswith("linux"):
        reason = "not Linux (Metal/Accelerate used instead)"
        return None
    if os.environ.get("LOCALTUNE_NO_OPENBLAS"):
        reason = "disabled by LOCALTUNE_NO_OPENBLAS"
        return None
    if "mlx.core" in sys.modules:
        reason = "mlx.core was imported before localtune; import localtune first"
        return None
    override = os.environ.get("LOCALTUNE_OPENBLAS")
    for path in ((override,) if override else CANDIDATES):
        if path and os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError as e:
                reason = f"failed to load {path}: {e}"
                continue
            loaded_path = path
            reason = "loaded"
            return path
    reason = "OpenBLAS not found (Debian/Ubuntu: apt-get install libopenblas0-pthread)"
    return None
