"""Array utilities shared by the physics helpers and the detector simulation: plain numpy,
no physics units."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["owner_index", "stable_order"]


def owner_index(counts: npt.ArrayLike) -> np.ndarray:
    """The owning row of each element of a jagged layout with ``counts[i]`` elements in row
    ``i`` (events -> particles, jets -> constituents): ``i`` repeated ``counts[i]`` times,
    int64 (``np.repeat(np.arange(len(counts)), counts)``; an empty row owns nothing)."""
    counts = np.asarray(counts)
    if counts.ndim != 1:
        raise ValueError(f"counts must be 1-dimensional, not of shape {counts.shape}")
    return np.repeat(np.arange(counts.size, dtype=np.int64), counts)


def stable_order(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` of non-negative integer keys, several times
    faster: one sort of the keys packed with their positions into int64s (ValueError if
    they do not fit in 63 bits)."""
    key = np.asarray(key, np.int64)
    shift = max(key.size - 1, 1).bit_length()
    if int(key.max(initial=0)) >> (63 - shift) or int(key.min(initial=0)) < 0:
        raise ValueError("keys too large (or negative) to pack with their positions")
    return np.asarray(np.sort((key << shift) | np.arange(key.size)) & ((1 << shift) - 1))
