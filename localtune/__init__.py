"""localtune: instruction-tune a language model on the machine in front of you (MLX)."""

# OpenBLAS must be loaded before anything imports mlx.core (30x faster f32 matmul on Linux CPU).
from localtune import _blas

_blas.preload()

__version__ = "0.1.0"
