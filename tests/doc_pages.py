"""A docs page as its tests read it: its ``## `` sections, its fenced code blocks, and the
command lines of its ``bash`` blocks; and what the tests share to run those commands on tiny
inputs: a copy of the shipped configs trained for 1 epoch, and one command line through
the CLI app."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from typer.testing import CliRunner

from heptagon.cli import app

ROOT = Path(__file__).resolve().parents[1]


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


def one_epoch_configs(dest: Path, pattern: str = "*.yaml") -> None:
    """A copy of the shipped ``configs/`` at ``dest`` whose experiments matching
    ``pattern`` (top level) train for 1 epoch."""
    shutil.copytree(ROOT / "configs", dest)
    for path in dest.glob(pattern):
        path.write_text(re.sub(r"epochs: \d+", "epochs: 1", path.read_text()))


def run_command(line: str, args: Sequence[str] | None = None) -> str:
    """Run a page's ``heptagon ...`` ``line`` through the CLI app in this process (the
    console script's parsing and code without its start-up per command), or ``args``, the
    arguments a test made of it for tiny inputs; assert that it exits 0 (naming the line,
    its output and exception) and return its output."""
    argv = shlex.split(line)
    assert argv[0] == "heptagon", f"a page's bash blocks hold heptagon commands: {line}"
    result = CliRunner().invoke(app, argv[1:] if args is None else list(args))
    assert result.exit_code == 0, f"{line}\n{result.output}\n{result.exception!r}"
    return result.output


def run_section(page: Path, heading: str, *subcommands: str) -> None:
    """Run every command line of the ``bash`` blocks under ``heading`` of ``page`` (see
    :func:`section`) through :func:`run_command`, after checking that they are exactly the
    ``heptagon`` ``subcommands`` given, in order."""
    lines = bash_lines(section(page, heading))
    assert [shlex.split(line)[1] for line in lines] == list(subcommands), heading
    for line in lines:
        run_command(line)
