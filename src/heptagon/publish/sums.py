"""A bundle's ``SHA256SUMS``: written by ``publish``, checked whenever a model is loaded
from a bundle (:func:`heptagon.publish.onnx.model_file`).

The format is ``sha256sum``'s: one ``<64 hex digits>  <path relative to the bundle>`` line
per file (a ``*`` before the path, binary mode, is accepted), so ``sha256sum -c SHA256SUMS``
checks a bundle too.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from heptagon.errors import DataError
from heptagon.io import atomic_path, sha256sum

__all__ = ["SUMS_FILE", "read_sums", "verify_sums", "write_sums"]

SUMS_FILE = "SHA256SUMS"
_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


def write_sums(bundle: Path) -> None:
    """Write ``bundle/SHA256SUMS`` listing every other file under ``bundle``, sorted."""
    files = sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != SUMS_FILE)
    lines = [f"{sha256sum(p)}  {p.relative_to(bundle).as_posix()}" for p in files]
    with atomic_path(bundle / SUMS_FILE) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def read_sums(bundle: Path) -> dict[str, str]:
    """``bundle/SHA256SUMS`` as relative path -> lower-case hex digest. Raises
    :class:`DataError` naming the file for a line that is not ``<digest>  <path>`` or a path
    leading out of the bundle."""
    path = bundle / SUMS_FILE
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the checksums ({err})", path) from None
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line)
        name = PurePosixPath(match.group(2) if match else "/")
        if match is None or name.is_absolute() or ".." in name.parts:
            raise DataError(f"line {number} is not '<sha256>  <relative path>': {line!r}", path)
        sums[name.as_posix()] = match.group(1).lower()
    return sums


def verify_sums(bundle: Path, required: str) -> None:
    """Check every file listed in ``bundle/SHA256SUMS`` against its digest; ``required``
    (a path relative to the bundle, the model being loaded) must be listed. Raises
    :class:`DataError` naming the file that is unlisted, missing or altered."""
    sums = read_sums(bundle)
    if required not in sums:
        raise DataError(
            f"does not list {required}: the bundle cannot be verified", bundle / SUMS_FILE
        )
    for name, digest in sums.items():
        file = bundle / name
        if not file.is_file():
            raise DataError(f"listed in {SUMS_FILE} but missing from the bundle", file)
        if sha256sum(file) != digest:
            raise DataError(
                f"does not match its checksum in {SUMS_FILE}: the bundle was altered "
                "(re-download it, or pass --no-verify to use it anyway)",
                file,
            )
