"""Array utilities shared by the physics helpers and the detector simulation: plain numpy,
no physics units."""

from __future__ import annotations

import numpy as np

__all__ = ["stable_order"]


def stable_order(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` of non-negative integer keys, several times
    faster: one sort of the keys packed with their positions into int64s (ValueError if
    they do not fit in 63 bits)."""
    key = np.asarray(key, np.int64)
    shift = max(key.size - 1, 1).bit_length()
    if int(key.max(initial=0)) >> (63 - shift) or int(key.min(initial=0)) < 0:
        raise ValueError("keys too large (or negative) to pack with their positions")
    return np.asarray(np.sort((key << shift) | np.arange(key.size)) & ((1 << shift) - 1))
