"""Keep freed memory in the process for CPU training.

PyTorch's CPU allocator hands every tensor to ``malloc``. glibc serves blocks above its
mmap threshold (128 kB to 32 MB) with fresh ``mmap`` pages and unmaps them on free, so a
training step that creates and frees the same large activations (ParT's pair embedding:
64 jets x 8256 pairs x 64 channels = 135 MB per layer) faults in every page again, each
step: ~33,000 page faults and ~45 ms per such tensor, against ~5 ms to fill memory that is
already mapped. :func:`retain_freed_memory` tells glibc to serve all blocks from its heap
and to keep freed memory there (``mallopt(M_MMAP_MAX, 0)``, a 1 GiB
``M_TRIM_THRESHOLD``), the same effect as the ``MALLOC_MMAP_MAX_=0`` environment setting
or the jemalloc / tcmalloc preload that PyTorch's CPU performance guide recommends. The
price: the process keeps its peak heap until it exits.

``heptagon train`` applies it when the run is on the CPU; ``HEPTAGON_RETAIN_HEAP=0`` in
the environment leaves glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["retain_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 1 << 30


def retain_freed_memory() -> bool:
    """Keep freed blocks in glibc's heap for reuse; returns whether it was applied.

    Not applied (``False``) where the C library has no working ``mallopt`` (macOS; musl's
    returns 0) or when the environment sets ``HEPTAGON_RETAIN_HEAP=0``. Idempotent.
    """
    if os.environ.get("HEPTAGON_RETAIN_HEAP", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
