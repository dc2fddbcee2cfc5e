"""A docs page as its tests read it: the text under one ``## `` heading, and the command
lines of the ``bash`` blocks in a text (each test then runs them on tiny inputs)."""

from __future__ import annotations

import re
from pathlib import Path


def section(page: Path, heading: str) -> str:
    """The part of ``page`` from the ``## heading`` line to the next ``## `` heading."""
    text = page.read_text()
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def bash_lines(text: str) -> list[str]:
    """The non-empty lines of every ```` ```bash ```` block of ``text``, in order."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]
