"""retain_freed_memory: a freed large tensor's pages are reused instead of faulted again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from heptagon.cpu import retain_freed_memory

# Fewest minor page faults of allocating and filling a 64 MB tensor, over 8 tries (the
# first and, while small objects fragment the freed block, some later ones fault anyway).
PROGRAM = """
import resource, sys
import torch
if sys.argv[1] == "retain":
    from heptagon.cpu import retain_freed_memory
    assert retain_freed_memory()
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(1 << 24)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(min(faults() for _ in range(8)))
"""


def _faults(mode: str) -> int:
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True
    )
    return int(run.stdout)


def _huge_pages_always() -> bool:
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return thp.exists() and "[always]" in thp.read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.skipif(_huge_pages_always(), reason="2 MB pages: few faults either way")
def test_freed_pages_are_reused() -> None:
    # 64 MB in 4 kB pages: ~16,000 faults per allocation with glibc's defaults (mmap)
    assert _faults("default") > 8000
    assert _faults("retain") < 800


def test_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEPTAGON_RETAIN_HEAP", "0")
    assert not retain_freed_memory()
