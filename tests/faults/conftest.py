"""Fixtures of the fault-injection modules (helpers: ``faults_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Path:
    """An output directory that cannot be created or written, even by root: its parent is
    a regular file (so every mkdir / open below it fails with ENOTDIR)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory is needed\n")
    return blocker / "out"
