"""Input files: which are read (:func:`expand_files`) and by which reader
(:func:`open_reader`, one per format in :mod:`heptagon.data.readers`).

Sources are local paths, glob patterns, dataset dirs (their ``shards/``) and remote
URLs (:mod:`heptagon.data.sources`: ``root://``, ``https://``, ``s3://``; never globbed).
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from heptagon.data.readers.base import Chunk, Reader, Unit
from heptagon.data.sources import RemoteFile, is_remote
from heptagon.errors import DataError

__all__ = ["SUFFIXES", "Chunk", "Reader", "Unit", "expand_files", "open_reader"]

#: file suffixes the readers handle
SUFFIXES = (".root", ".parquet", ".parq", ".h5", ".hdf5", ".npz")


def open_reader(path: str | Path, treename: str | None = None) -> Reader:
    """Open ``path`` (a local path, or a remote URL / :class:`RemoteFile`) with the reader
    its suffix calls for (see :data:`SUFFIXES`)."""
    if is_remote(path):
        path = path if isinstance(path, RemoteFile) else RemoteFile(str(path))
    else:
        path = Path(path)
        if not path.is_file():
            raise DataError("file not found", path)
    suffix = path.suffix.lower()
    if suffix == ".root":
        from heptagon.data.readers.root import RootReader

        return RootReader(path, treename)
    if suffix in (".parquet", ".parq"):
        from heptagon.data.readers.parquet import ParquetReader

        return ParquetReader(path)
    if suffix in (".h5", ".hdf5"):
        from heptagon.data.readers.hdf5 import TopLandscapeReader

        return TopLandscapeReader(path)
    if suffix == ".npz":
        from heptagon.data.readers.npz import QuarkGluonReader

        return QuarkGluonReader(path)
    raise DataError(f"unknown file type (expected one of {', '.join(SUFFIXES)})", path)


def expand_files(sources: str | Path | Sequence[str | Path]) -> list[Path]:
    """Input files from paths, glob patterns, dataset dirs (their ``shards/``) and remote
    URLs (each one file, as :class:`RemoteFile`), sorted within each source. Raises
    :class:`DataError` for a source that matches nothing."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    files: list[Path] = []
    for source in sources:
        if is_remote(source):
            files.append(source if isinstance(source, RemoteFile) else RemoteFile(str(source)))
            continue
        path = Path(source)
        if path.is_dir():
            root = path / "shards" if (path / "shards").is_dir() else path
            found = sorted(p for p in root.iterdir() if p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(str(source)))
        if not found:
            raise DataError("no input files found", source)
        files.extend(found)
    return files
