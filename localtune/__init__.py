"""localtune: instruction-tune a language model on the machine in front of you (MLX)."""

# OpenBLAS must be loaded before anything imports mlx.core (30x faster f32 matmul on Linux CPU).
from localtune import _blas, _malloc

_blas.preload()
# MLX's CPU buffers come straight from malloc: keep freed blocks instead of re-faulting them.
_malloc.keep_freed_memory()

__version__ = "0.1.0"
