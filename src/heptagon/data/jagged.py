"""The loader's in-memory form of a jagged input group, and the one padding routine.

Expressions are evaluated with awkward; once an input group's variables are final they
are held as one ``(n_particles_total, n_vars)`` float32 array plus per-entry counts, so the
hot path (shuffle, bucket, pad each batch) is a handful of numpy calls rather than
several awkward calls per variable (about 1 ms of overhead each, whatever the size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Jagged"]


@dataclass(frozen=True)
class Jagged:
    """Entries of variable length: ``values[starts[i] : starts[i] + counts[i]]`` is entry i."""

    values: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def starts(self) -> np.ndarray:
        """Index of each entry's first particle in ``values``."""
        return np.cumsum(self.counts) - self.counts

    def local_index(self) -> np.ndarray:
        """Position of each particle within its entry."""
        return np.arange(len(self.values)) - np.repeat(self.starts, self.counts)

    def take(self, index: np.ndarray) -> Jagged:
        """The entries at ``index``, in that order."""
        counts = self.counts[index]
        shift = np.repeat(self.starts[index] - (np.cumsum(counts) - counts), counts)
        return Jagged(self.values[np.arange(int(counts.sum())) + shift], counts)

    def truncate(self, length: int) -> Jagged:
        """Keep the first ``length`` particles of each entry."""
        if len(self.counts) == 0 or self.counts.max() <= length:
            return self
        return Jagged(self.values[self.local_index() < length], np.minimum(self.counts, length))

    @staticmethod
    def concatenate(parts: list[Jagged]) -> Jagged:
        """The entries of all ``parts``, in order."""
        return Jagged(
            np.concatenate([p.values for p in parts]), np.concatenate([p.counts for p in parts])
        )

    def pad(self, length: int, pad_values: np.ndarray, wrap: bool = False) -> np.ndarray:
        """``(n_entries, n_vars, length)`` float32, longer entries cut at ``length``.

        Slots past an entry's particles hold ``pad_values`` (one per variable), or with
        ``wrap`` repeat the entry's particles cyclically (empty entries still padded).
        """
        n, n_vars = len(self.counts), self.values.shape[1]
        # fill (entry, slot, var) rows of a 2D view, then transpose: faster than scattering
        # into the channels-first layout directly
        out = np.empty((n, length, n_vars), dtype=np.float32)
        out[...] = np.asarray(pad_values, dtype=np.float32)
        rows = out.reshape(n * length, n_vars)
        if wrap:
            filled = np.flatnonzero(self.counts > 0)
            cycle = np.arange(length)[None, :] % self.counts[filled][:, None]
            source = (self.starts[filled][:, None] + cycle).ravel()
            target = (filled[:, None] * length + np.arange(length)[None, :]).ravel()
            rows[target] = self.values[source]
        else:
            local = self.local_index()
            keep = local < length
            entry = np.repeat(np.arange(n), self.counts)
            rows[(entry * length + local)[keep]] = self.values[keep]
        return np.ascontiguousarray(out.transpose(0, 2, 1))
