"""Keep freed memory in the process on Linux (glibc), so MLX's CPU buffers do not page-fault anew.

MLX's CPU backend allocates every intermediate array with malloc and has no buffer cache of its
own. glibc serves large blocks with fresh mmap()s and gives freed memory back to the kernel, so
each step touches its activations as new pages: measured here, a 9 MB elementwise op took 30 ms
instead of 3 ms, and a SmolLM2 training step ran 1.16x faster with the settings below
(bench/NOTES.md). The cost: the process keeps its high-water mark (what a training run reaches
anyway). This module must not import mlx; LOCALTUNE_MALLOC=default leaves glibc alone.
"""

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

applied: bool = False
reason: str = "not attempted"


def keep_freed_memory() -> bool:
    """No mmap for large blocks, no trimming of the heap top. True if glibc took both settings."""
    global applied, reason
    if applied:
        return True
    if not sys.platform.startswith("linux"):
        reason = "not Linux"
        return False
    if os.environ.get("LOCALTUNE_MALLOC") == "default":
        reason = "disabled by LOCALTUNE_MALLOC=default"
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        reason = "no glibc mallopt (another C library)"
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    reason = "applied" if applied else "mallopt refused"
    return applied
