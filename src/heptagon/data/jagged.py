"""Numpy forms of jagged data, and the one padding routine.

- :class:`JaggedColumn`: one per-particle variable as flat numpy content plus per-entry
  counts. Expressions are evaluated on it: numpy ufuncs (and Python operators) act on the
  content directly, per-entry arrays broadcast by repetition, so the common features cost
  what numpy costs rather than several awkward calls each (awkward is 3-7x slower on these
  sizes). Anything it does not cover goes through awkward (:meth:`JaggedColumn.to_awkward`).
- :class:`Jagged`: the loader's in-memory form of a jagged input group, one
  ``(n_particles_total, n_vars)`` float32 array plus per-entry counts, so the hot path
  (shuffle, bucket, pad each batch) is a handful of numpy calls over all variables at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import awkward as ak
import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["Jagged", "JaggedColumn", "from_awkward", "interleave", "pad_index"]


class JaggedColumn(NDArrayOperatorsMixin):
    """Entry i is ``content[offsets[i] : offsets[i + 1]]``; ``counts`` is shared (the same
    object) by columns derived from one another, which makes equal-structure checks cheap."""

    __slots__ = ("_offsets", "content", "counts")

    def __init__(self, content: np.ndarray, counts: np.ndarray) -> None:
        self.content, self.counts = content, counts
        self._offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def ndim(self) -> int:
        """2, as the equivalent awkward array (entries x particles)."""
        return 2

    @property
    def offsets(self) -> np.ndarray:
        """``n_entries + 1`` offsets into ``content``."""
        if self._offsets is None:
            self._offsets = np.zeros(len(self.counts) + 1, dtype=np.int64)
            np.cumsum(self.counts, out=self._offsets[1:])
        return self._offsets

    def to_awkward(self) -> ak.Array:
        """The same values as an awkward array (no copy)."""
        layout = ak.contents.ListOffsetArray(
            ak.index.Index64(self.offsets), ak.contents.NumpyArray(self.content)
        )
        return ak.Array(layout)

    def like(self, content: np.ndarray) -> JaggedColumn:
        """A column with this one's structure and ``content``."""
        out = JaggedColumn(content, self.counts)
        out._offsets = self._offsets
        return out

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        columns = [x for x in inputs if isinstance(x, JaggedColumn)]
        same = all(
            c.counts is columns[0].counts or np.array_equal(c.counts, columns[0].counts)
            for c in columns
        )
        if method != "__call__" or kwargs or not same or any(_is_awkward(x) for x in inputs):
            # anything unusual: let awkward do it (and raise its errors)
            args = [x.to_awkward() if isinstance(x, JaggedColumn) else x for x in inputs]
            return from_awkward(getattr(ufunc, method)(*args, **kwargs))
        first = columns[0]
        args = [
            x.content
            if isinstance(x, JaggedColumn)
            else np.repeat(x, first.counts)
            if isinstance(x, np.ndarray) and x.ndim == 1
            else x
            for x in inputs
        ]
        result = ufunc(*args)
        if isinstance(result, tuple):
            return tuple(first.like(r) for r in result)
        return first.like(result)


def _is_awkward(x: Any) -> bool:
    return isinstance(x, (ak.Array, ak.Record))


def from_awkward(value: Any) -> Any:
    """``value`` (an awkward array or layout) in its fast form: a :class:`JaggedColumn` for
    a list of numbers per entry, a numpy array for one number per entry; anything else
    (records, deeper nesting, option types) as an awkward array. Other values are returned
    as they are."""
    if isinstance(value, ak.Array):
        layout = value.layout
    elif isinstance(value, ak.contents.Content):
        layout, value = value, ak.Array(value)
    else:
        return value
    if isinstance(layout, ak.contents.NumpyArray) and layout.data.ndim == 1:
        return layout.data
    if (
        isinstance(layout, (ak.contents.ListOffsetArray, ak.contents.ListArray))
        and isinstance(layout.content, ak.contents.NumpyArray)
        and layout.content.data.ndim == 1
        and not layout.parameters
        and not layout.content.parameters
    ):
        if isinstance(layout, ak.contents.ListArray) or layout.offsets[0] != 0:
            layout = layout.to_ListOffsetArray64(start_at_zero=True)
        offsets = np.asarray(layout.offsets.data)
        content = np.asarray(layout.content.data)[: offsets[-1]]
        column = JaggedColumn(content, np.diff(offsets))
        column._offsets = offsets.astype(np.int64, copy=False)
        return column
    return value


def pad_index(counts: np.ndarray, starts: np.ndarray, length: int, wrap: bool) -> np.ndarray:
    """``(n_entries, length)`` rows of the flat values to put in each padded slot, -1 for a
    slot that holds the pad value. Slots past an entry's particles are padding, or with
    ``wrap`` repeat the entry's particles cyclically (empty entries are still padding)."""
    local = np.arange(length)[None, :]
    if wrap:
        cycle = local % np.maximum(counts, 1)[:, None]
        return np.where(counts[:, None] > 0, starts[:, None] + cycle, -1)
    return np.where(local < counts[:, None], starts[:, None] + local, -1)


#: rows interleaved at once by :func:`interleave` (a block stays in the CPU cache)
_BLOCK_ROWS = 8192


def interleave(columns: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """The ``(n, n_columns)`` float32 array of equally long ``columns`` (into ``out`` if
    given), filled a block of rows at a time so that each block stays in the CPU cache."""
    n = len(columns[0]) if len(columns) else 0
    if out is None:
        out = np.empty((n, len(columns)), dtype=np.float32)
    for start in range(0, n, _BLOCK_ROWS):
        block = out[start : start + _BLOCK_ROWS]
        for j, column in enumerate(columns):
            block[:, j] = column[start : start + _BLOCK_ROWS]
    return out


class Jagged:
    """Entries of variable length: ``values[starts[i] : starts[i] + counts[i]]`` is entry i.

    ``values`` is ``(n_particles_total, n_vars)`` float32. A Jagged made
    :meth:`from_columns` holds its variables as separate columns until ``values`` is first
    needed; :meth:`concatenate` lays such parts out straight into the result, so the values
    of a chunk are interleaved once, when the loader's buffer is assembled.
    """

    def __init__(self, values: np.ndarray, counts: np.ndarray) -> None:
        self._values: np.ndarray | None = values
        self._columns: tuple[np.ndarray, ...] = ()
        self.counts = counts

    @classmethod
    def from_columns(cls, columns: Sequence[np.ndarray], counts: np.ndarray) -> Jagged:
        """A Jagged of one float32 column per variable (not copied until needed)."""
        out = cls(np.empty((0, 0), dtype=np.float32), counts)
        out._values, out._columns = None, tuple(columns)
        return out

    @property
    def values(self) -> np.ndarray:
        """``(n_particles_total, n_vars)`` float32."""
        if self._values is None:
            self._values, self._columns = interleave(self._columns), ()
        return self._values

    @property
    def n_vars(self) -> int:
        """The number of variables."""
        return len(self._columns) if self._values is None else self._values.shape[1]

    def __len__(self) -> int:
        return len(self.counts)

    @cached_property
    def starts(self) -> np.ndarray:
        """Index of each entry's first particle in ``values``."""
        return np.asarray(np.cumsum(self.counts) - self.counts)

    def local_index(self) -> np.ndarray:
        """Position of each particle within its entry."""
        return np.asarray(np.arange(int(self.counts.sum())) - np.repeat(self.starts, self.counts))

    def take(self, index: np.ndarray) -> Jagged:
        """The entries at ``index``, in that order."""
        counts = self.counts[index]
        shift = np.repeat(self.starts[index] - (np.cumsum(counts) - counts), counts)
        return Jagged(self.values[np.arange(int(counts.sum())) + shift], counts)

    def truncate(self, length: int) -> Jagged:
        """Keep the first ``length`` particles of each entry."""
        if len(self.counts) == 0 or self.counts.max() <= length:
            return self
        keep, counts = self.local_index() < length, np.minimum(self.counts, length)
        if self._values is None:
            return Jagged.from_columns([c[keep] for c in self._columns], counts)
        return Jagged(self._values[keep], counts)

    @staticmethod
    def concatenate(parts: list[Jagged]) -> Jagged:
        """The entries of all ``parts``, in order (one pass over the values)."""
        counts = np.concatenate([p.counts for p in parts])
        out = np.empty((int(counts.sum()), parts[0].n_vars), dtype=np.float32)
        start = 0
        for part in parts:
            rows = out[start : start + int(part.counts.sum())]
            if part._values is None:
                interleave(part._columns, rows)
            else:
                rows[...] = part._values
            start += len(rows)
        return Jagged(out, counts)

    def pad(self, slots: np.ndarray, pad_values: np.ndarray) -> np.ndarray:
        """``(n, n_vars, length)`` float32 from ``slots`` (:func:`pad_index`, ``(n, length)``):
        the values of the rows it names, ``pad_values`` (one per variable) where it is -1.

        Gathers whole rows (all variables of a particle at once) and transposes the small
        result: much faster than gathering variable by variable.
        """
        n, length = slots.shape
        if len(self.values) == 0:
            rows = np.empty((n, length, self.values.shape[1]), dtype=np.float32)
        else:
            rows = self.values.take(slots, axis=0, mode="clip")  # -1 -> row 0, overwritten
        rows[slots < 0] = pad_values
        return np.ascontiguousarray(rows.transpose(0, 2, 1))
