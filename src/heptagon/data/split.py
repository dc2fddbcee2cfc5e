"""The deterministic train / validation / test split of docs/design.md.

Each entry gets a uniform number ``u`` in [0, 1) from a hash of (file stem, key), where
the key is the ``event`` branch if the file has one, else the entry's row index in the
file; ``u < f_train`` is training, ``u < f_train + f_val`` validation, the rest test. The
hash: ``salt = blake2b(stem, digest_size=8)`` (little-endian uint64), then
``u = splitmix64(key XOR salt) >> 11`` scaled by 2**-53. It depends on nothing else, so
adding files never moves an entry between splits, it is the same on every machine, and a
ROOT and a Parquet copy of a file (same stem: the name without its suffix) split alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["SPLITS", "Split", "SplitName"]

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    # uint64 arithmetic wraps modulo 2**64 (array operations do not warn)
    x = x + np.array([0x9E3779B97F4A7C15], dtype=np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.array([0xBF58476D1CE4E5B9], dtype=np.uint64)
    x = (x ^ (x >> np.uint64(27))) * np.array([0x94D049BB133111EB], dtype=np.uint64)
    return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class Split:
    """Split fractions (train, val, test), summing to 1."""

    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)

    def __post_init__(self) -> None:
        if len(self.fractions) != 3 or min(self.fractions) < 0:
            raise ValueError("split fractions must be three non-negative numbers")
        if not np.isclose(sum(self.fractions), 1.0):
            raise ValueError(f"split fractions {self.fractions} do not sum to 1")

    def uniform(self, stem: str, keys: np.ndarray) -> np.ndarray:
        """The hash of each (file stem, key) as a float64 in [0, 1)."""
        salt = int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=8).digest(), "little")
        mixed = _splitmix64(keys.astype(np.int64).view(np.uint64) ^ np.uint64(salt))
        return (mixed >> np.uint64(11)).astype(np.float64) * 2.0**-53

    def mask(self, name: SplitName, stem: str, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` (of the file with stem ``stem``) belong to split ``name``."""
        edges = np.cumsum((0.0, *self.fractions))
        edges[-1] = np.inf
        i = SPLITS.index(name)
        u = self.uniform(stem, keys)
        return (u >= edges[i]) & (u < edges[i + 1])

    def to_dict(self) -> dict[str, Any]:
        """The fractions and the rule, for the run dir."""
        return {
            "fractions": dict(zip(SPLITS, self.fractions, strict=True)),
            "rule": (
                "u = (splitmix64(key XOR blake2b8(file stem)) >> 11) * 2**-53; key = 'event'"
                " branch, else row index in the file; train if u < f_train, val if u <"
                " f_train + f_val, else test"
            ),
        }
