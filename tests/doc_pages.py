"""A docs page as its tests read it: its ``## `` sections, its fenced code blocks, and the
command lines of its ``bash`` blocks (each test then runs them on tiny inputs)."""

from __future__ import annotations

import re
from pathlib import Path


def sections(page: Path) -> dict[str, str]:
    """Each ``## `` heading's title of ``page`` -> the text under it, up to the next one."""
    parts = re.split(r"^## (.*)$", page.read_text(), flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def section(page: Path, heading: str) -> str:
    """The text under the one ``## `` heading of ``page`` whose title starts with ``heading``."""
    (body,) = [body for title, body in sections(page).items() if title.startswith(heading)]
    return body


def code_blocks(text: str, *kinds: str) -> list[tuple[str, str]]:
    """(kind, body) of every fenced block of ``text`` opened with one of ``kinds``
    (```` ```bash ````, ```` ```python ````, ...), in the order of the text."""
    opening = "|".join(re.escape(kind) for kind in kinds)
    block = re.compile(rf"^```({opening})\n(.*?)^```", re.MULTILINE | re.DOTALL)
    return [(m.group(1), m.group(2)) for m in block.finditer(text)]


def fenced_blocks(text: str, kind: str) -> list[str]:
    """The body of every fenced block of ``text`` opened with ```` ```kind ````, in order."""
    return [body for _, body in code_blocks(text, kind)]


def bash_lines(text: str) -> list[str]:
    """The non-empty lines of every ```` ```bash ```` block of ``text``, in order."""
    return [
        line for block in fenced_blocks(text, "bash") for line in block.splitlines() if line.strip()
    ]
