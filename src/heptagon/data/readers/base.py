"""What every reader is: :class:`Reader`, the :class:`Unit` s it deals out, the
:class:`Chunk` s it reads."""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import awkward as ak

from heptagon.data.sources import RemoteFile, open_remote
from heptagon.errors import DataError

__all__ = ["Chunk", "RangeReader", "Reader", "Unit"]


@dataclass(frozen=True)
class Unit:
    """A piece of one file: entries ``[start, stop)``; ``index`` is the Parquet row group.
    ``path`` is a local path or a :class:`~heptagon.data.sources.RemoteFile`."""

    path: Path
    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class Chunk:
    """Arrays of entries ``[start, start + len(arrays))`` of ``path``."""

    path: Path
    start: int
    arrays: ak.Array


class Reader(ABC):
    """An open input file. Use as a context manager; :func:`~heptagon.data.io.open_reader`
    picks the class."""

    #: the byte stream of a remote file, opened by :meth:`_open_source`
    _remote: IO[bytes] | None = None

    def __init__(self, path: Path) -> None:
        self.path = path

    def _open_source(self, cache_type: str = "readahead") -> Path | IO[bytes]:
        """What to hand the format's library: the local path, or for a
        :class:`~heptagon.data.sources.RemoteFile` a byte stream through fsspec
        (``cache_type`` as :func:`~heptagon.data.sources.open_remote`'s), closed by
        :meth:`_close_remote`."""
        if isinstance(self.path, RemoteFile):
            self._remote = open_remote(self.path, cache_type=cache_type)
            return self._remote
        return self.path

    def _close_remote(self) -> None:
        if self._remote is not None:
            self._remote.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - most readers hold nothing open
        """Release the file."""

    @property
    @abstractmethod
    def branches(self) -> list[str]:
        """The branch (column) names the file provides."""

    @property
    @abstractmethod
    def num_entries(self) -> int:
        """The number of entries (jets or events)."""

    @abstractmethod
    def units(self, chunk_size: int) -> list[Unit]:
        """The pieces of the file the loader deals out, in entry order."""

    @abstractmethod
    def read(self, unit: Unit, branches: Sequence[str], chunk_size: int) -> Iterator[Chunk]:
        """Read ``branches`` of ``unit`` in chunks of at most ``chunk_size`` entries."""

    def check_branches(self, branches: Sequence[str]) -> None:
        """Raise :class:`DataError` naming the first of ``branches`` the file lacks."""
        have = set(self.branches)
        for name in branches:
            if name not in have:
                close = difflib.get_close_matches(name, self.branches, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise DataError(f"branch not found{hint}", self.path, name)


class RangeReader(Reader):
    """A reader that can read any range of entries; units are ``chunk_size`` ranges."""

    def units(self, chunk_size: int) -> list[Unit]:
        n = self.num_entries
        return [
            Unit(self.path, i, start, min(start + chunk_size, n))
            for i, start in enumerate(range(0, n, chunk_size))
        ]

    def read(self, unit: Unit, branches: Sequence[str], chunk_size: int) -> Iterator[Chunk]:
        self.check_branches(branches)
        for start in range(unit.start, unit.stop, chunk_size):
            stop = min(start + chunk_size, unit.stop)
            yield Chunk(self.path, start, self._read(list(branches), start, stop))

    @abstractmethod
    def _read(self, branches: list[str], start: int, stop: int) -> ak.Array:
        """Entries ``[start, stop)`` of ``branches`` as a record array."""
