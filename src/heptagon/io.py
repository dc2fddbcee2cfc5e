"""Small file helpers shared by every stage: atomic writes and checksums."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from heptagon.errors import DataError

__all__ = ["atomic_path", "make_dir", "read_json", "sha256sum", "write_json_atomic"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Nothing half-written is ever left at ``path``: on error the temporary file is removed.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON object that heptagon wrote (``what`` it is, for the message): a
    :class:`DataError` naming the file if it is missing, unreadable, not JSON or not an
    object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"corrupt or unreadable {what} ({err})", file=path) from None
    if not isinstance(data, dict):
        raise DataError(f"corrupt {what} (not a JSON object)", file=path)
    return data


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def make_dir(path: str | Path) -> Path:
    """Create the output directory ``path`` (and its parents); one that cannot be created
    is a :class:`DataError` naming it, not a traceback."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the output directory ({err.strerror})", file=path) from None
    return path
