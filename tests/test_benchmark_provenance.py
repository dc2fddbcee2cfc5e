"""The commit that a benchmark's results file records (benchmarks/_common.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from _common import commit


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_the_file_being_written_does_not_make_the_tree_dirty(tmp_path: Path) -> None:
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    mine, other = results / "flavour_pu60.json", tmp_path / "code.py"
    mine.write_text("{}\n")
    other.write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "start")
    sha = _git(tmp_path, "rev-parse", "--short", "HEAD")
    assert commit(root=tmp_path) == sha

    mine.write_text('{"taggers": 1}\n')  # an earlier stage of the same run wrote it
    assert commit(root=tmp_path) == f"{sha}+dirty"
    assert commit(ignore=mine, root=tmp_path) == sha

    other.write_text("x = 2\n")  # a change to the code is still reported
    assert commit(ignore=mine, root=tmp_path) == f"{sha}+dirty"
