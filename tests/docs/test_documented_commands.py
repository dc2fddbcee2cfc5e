"""Every ``heptagon ...`` line that README.md and docs/*.md show in a bash block names a
real command with real options: each is parsed by the CLI's own parser (click's, without
running the command), so a renamed or removed flag or command in the docs fails here.

Running them is the job of the per-document tests (tests/docs/test_*_doc.py, the tutorial
test, the workflow tests); this test catches the lines those do not run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from doc_pages import fenced_blocks
from typer import _click as click  # typer's own copy of click, the one the CLI runs on
from typer.core import TyperGroup

from heptagon.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    """(document, command line) for every ``heptagon`` line of every bash block, with
    backslash continuations joined and comments dropped."""
    found = []
    for doc in DOCS:
        for block in fenced_blocks(doc.read_text(), "bash"):
            text = re.sub(r"\\\n\s*", " ", block)
            for line in text.splitlines():
                argv = shlex.split(line, comments=True)
                if argv and argv[0] == "heptagon":
                    found.append((doc.name, shlex.join(argv)))
    return found


def parse(argv: list[str]) -> click.Command:
    """Parse ``argv`` (after ``heptagon``) down to its leaf command, as the CLI would,
    without invoking anything; an unknown command or option raises a click error."""
    command = typer.main.get_command(app)
    ctx = command.make_context("heptagon", argv, resilient_parsing=False)
    while isinstance(command, TyperGroup):
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None
        assert name is not None
        command = sub
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)
    assert not ctx.args, f"unexpected arguments {ctx.args}"
    return command


COMMANDS = documented_commands()


def test_the_docs_show_commands() -> None:
    docs = {doc for doc, _ in COMMANDS}
    assert {"README.md", "workflows.md", "trigger.md", "cmssw.md"} <= docs
    assert len(COMMANDS) > 50


@pytest.mark.parametrize(("doc", "line"), COMMANDS, ids=[f"{d}:{c[9:40]}" for d, c in COMMANDS])
def test_documented_command_parses(doc: str, line: str) -> None:
    parse(shlex.split(line)[1:])


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "top-vs-qcd", "--jets", "5", "--no-such-flag"],
        ["no-such-command"],
        ["trigger", "train", "f.parquet", "--out", "r", "--precission", "ap_fixed<8,2>"],
    ],
)
def test_a_wrong_command_does_not_parse(argv: list[str]) -> None:
    with pytest.raises(click.exceptions.ClickException):
        parse(argv)
