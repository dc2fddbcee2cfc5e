"""Where input files are: local paths, and remote files named by URL.

A remote input is a URL with one of :data:`REMOTE_SCHEMES` (``root://`` XRootD through
``fsspec-xrootd``, ``https://`` / ``http://`` through ``aiohttp``, ``s3://`` through
``s3fs``). It is never globbed (a remote listing is not a file system's): name each file.
ROOT files are read by uproot, the others through an fsspec file object, in the same
units and chunks as a local file, so memory follows ``chunk_size`` and fsspec's read-ahead
block, not the file's size.

Inside the data stage a remote file travels as a :class:`RemoteFile`, a ``Path`` whose
``name``, ``stem`` and ``suffix`` are those of the URL's path (so the split's hash of the
file stem is the same as for a local copy) and whose ``str()`` is the URL.
"""

from __future__ import annotations

import importlib.util
from pathlib import PosixPath
from typing import IO, Any
from urllib.parse import urlsplit

from heptagon.errors import DataError

__all__ = ["REMOTE_SCHEMES", "RemoteFile", "is_remote", "open_remote"]

#: URL schemes read remotely, and the package fsspec needs for each
REMOTE_SCHEMES = {
    "root": "fsspec_xrootd",
    "http": "aiohttp",
    "https": "aiohttp",
    "s3": "s3fs",
}
_EXTRA = {"fsspec_xrootd": "fsspec-xrootd", "aiohttp": "aiohttp", "s3fs": "s3fs"}
#: the packages of heptagon's ``remote`` extra
_IN_EXTRA = ("fsspec-xrootd", "aiohttp")

#: fsspec's read-ahead block for remote HDF5 / npz files (bytes): the memory it adds
BLOCK_SIZE = 1024 * 1024


def is_remote(source: object) -> bool:
    """Whether ``source`` (a str or path) is a URL of a remote file."""
    if isinstance(source, RemoteFile):
        return True
    if not isinstance(source, str):
        return False
    scheme = urlsplit(source).scheme.lower()
    return scheme in REMOTE_SCHEMES and "://" in source


class RemoteFile(PosixPath):
    """A remote file named by ``url``, where the data stage expects a ``Path``.

    ``name`` / ``stem`` / ``suffix`` come from the URL's path; ``str()`` is the URL;
    ``is_file()`` is False (nothing local). Pickles as its URL (DataLoader workers).
    """

    url: str

    def __new__(cls, url: str) -> RemoteFile:
        parts = urlsplit(url)
        if parts.scheme.lower() not in REMOTE_SCHEMES or not parts.path.strip("/"):
            raise DataError(
                f"not a remote file URL (schemes: {', '.join(sorted(REMOTE_SCHEMES))})", url
            )
        self = super().__new__(cls, "/", parts.netloc, parts.path.lstrip("/"))
        self.url = url
        return self

    def __str__(self) -> str:
        # a path derived from it (parent, with_suffix, ...) is built without __new__: it
        # has no URL and reads as the local-looking path /host/path
        url: str | None = getattr(self, "url", None)
        return super().__str__() if url is None else url

    def __repr__(self) -> str:
        return f"RemoteFile({self.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteFile, (self.url,))

    def __hash__(self) -> int:
        return hash(self.url)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteFile) and other.url == self.url

    def resolve(self, strict: bool = False) -> RemoteFile:
        """A URL is absolute: itself."""
        return self

    def absolute(self) -> RemoteFile:
        """A URL is absolute: itself."""
        return self

    def is_file(self) -> bool:
        """Nothing local: False."""
        return False

    @property
    def scheme(self) -> str:
        """The URL's scheme, lower case."""
        return urlsplit(self.url).scheme.lower()

    def check_support(self) -> None:
        """Raise :class:`DataError` naming the package this scheme needs, if missing."""
        module = REMOTE_SCHEMES[self.scheme]
        if importlib.util.find_spec(module) is None:
            package = _EXTRA[module]
            extra = "'heptagon[remote]' or " if package in _IN_EXTRA else ""
            raise DataError(
                f"reading {self.scheme}:// files needs {package}: pip install {extra}{package}",
                self,
            )


def open_remote(path: RemoteFile, cache_type: str = "readahead") -> IO[bytes]:
    """A seekable binary file object reading ``path`` through fsspec; a failure to reach
    it is a :class:`DataError` naming the URL. ``cache_type``: fsspec's, ``readahead``
    (reads of at least :data:`BLOCK_SIZE`, for readers that make many small sequential
    reads: h5py, zipfile) or ``none`` (each read one request of exactly its bytes, for
    pyarrow, which reads whole column chunks)."""
    import fsspec

    path.check_support()
    try:
        opened = fsspec.open(path.url, "rb", block_size=BLOCK_SIZE, cache_type=cache_type)
        file: IO[bytes] = opened.open()
    except (OSError, ValueError) as err:
        raise DataError(f"cannot open the remote file ({err})", path) from None
    return file
