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
the environment leaves glibc's defaults. It lives in :mod:`heptagon.cpu` (jet samples with
pile-up apply it too, without importing the train stage) and is re-exported here.
"""

from __future__ import annotations

from heptagon.cpu import retain_freed_memory

__all__ = ["retain_freed_memory"]
