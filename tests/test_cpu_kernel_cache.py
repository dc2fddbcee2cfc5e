"""uncache_kernels: oneDNN keeps no kernel per tensor shape, so training's changing shapes
do not leave small blocks scattered through the heap."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest
import torch

from heptagon.cpu import uncache_kernels

# Bytes in use in the heap (glibc's mallinfo2) grown over 300 convolutions of 300 new
# lengths, after 50 to warm up; "uncached": uncache_kernels() first, after torch's import.
PROGRAM = """
import ctypes, sys
import torch
from heptagon.cpu import uncache_kernels
if sys.argv[1] == "uncached":
    uncache_kernels()
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
conv = torch.nn.Conv1d(64, 64, 1)
def run(lengths):
    for n in lengths:
        conv(torch.randn(2, 64, n, requires_grad=True)).sum().backward()
run(range(1000, 1050))
before = libc.mallinfo2().uordblks
run(range(1050, 1350))
print(libc.mallinfo2().uordblks - before)
"""


def _growth(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    # torch's own cache of convolution objects (ideep's, also 1024 shapes; 0 crashes it)
    # kept to one, so that what is measured is oneDNN's
    env["LRU_CACHE_CAPACITY"] = "1"
    env["OMP_NUM_THREADS"] = "2"  # with one thread torch's convolution does not use oneDNN
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True, env=env
    )
    return int(run.stdout)


def _glibc_mallinfo2() -> bool:
    name = ctypes.util.find_library("c")
    return name is not None and hasattr(ctypes.CDLL(name), "mallinfo2")


@pytest.mark.skipif(not _glibc_mallinfo2(), reason="glibc's mallinfo2 counts the heap")
@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch without oneDNN")
def test_no_kernel_kept_per_shape() -> None:
    cached, uncached = _growth("cached"), _growth("uncached")
    assert cached > 5_000_000  # ~50 kB of kernels kept per new length with 2 threads
    assert uncached < cached / 20


def test_the_users_setting_is_kept() -> None:
    environ: dict[str, str] = {}
    uncache_kernels(environ)
    assert environ == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"}
    environ = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "64"}
    uncache_kernels(environ)
    assert environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"
