"""Fault injection through the command line (issue 15): helpers shared by the modules.

Every case runs ``heptagon`` in a subprocess, exactly as a user would, and asserts the
contract of a user error: the given exit status, one line on stderr naming the culprit,
no traceback, and nothing half-written left behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest


def heptagon(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m heptagon ARGS`` and capture its output (no terminal: batch mode)."""
    return subprocess.run(
        [sys.executable, "-m", "heptagon", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


#: a log line (``HH:MM:SS heptagon.<stage>: ...``, :mod:`heptagon.logs`) on stderr
_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d heptagon\.\w+: .*\n?", re.MULTILINE)


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """``heptagon ARGS`` in-process through :func:`heptagon.cli.main` (the real path of
    exit statuses and messages, without the ~3 s of a subprocess), its exit status and
    output as :func:`heptagon` gives them."""
    from heptagon.cli import main

    monkeypatch.setattr(sys, "argv", ["heptagon", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), int(exit_.value.code or 0), out.out, out.err)


def without_log(stderr: str) -> str:
    """``stderr`` without the log lines of the work done before an error or interrupt."""
    return _LOG_LINE.sub("", stderr)


def assert_user_error(
    res: subprocess.CompletedProcess[str],
    *names: str,
    code: int = 2,
    lines: int = 1,
) -> str:
    """The contract of a user error: exit ``code``, at most ``lines`` lines on stderr, no
    traceback, and each of ``names`` (a file, key or branch) in the message (log lines of
    the work before the error aside). Returns the message."""
    err = without_log(res.stderr).strip()
    assert res.returncode == code, f"exit {res.returncode}, stderr:\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    assert 1 <= len(err.splitlines()) <= lines, res.stderr
    for name in names:
        assert name in err, f"{name!r} not named in: {err}"
    return err


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (relative), for 'nothing was left behind' checks."""
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def no_temp_files(root: Path, ignore: Sequence[str] = ()) -> None:
    """No ``*.tmp`` file (the atomic writer's temporaries) is left under ``root``."""
    left = [p for p in tree(root) if p.endswith(".tmp") and not any(i in p for i in ignore)]
    assert not left, left
