"""How many threads to run: the CPUs this process may use, not the node's core count.

On a shared login node or in a batch slot a process may be pinned to a few cores (its CPU
affinity) or held to a CPU quota by its cgroup (``cpu.max`` of cgroup v2,
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` of v1). torch and ONNX Runtime size their
thread pools from the node's cores and read neither; threads beyond the quota only wait
for each other. :func:`available_cpus` reads both; :func:`thread_count` takes one fewer
for each other task runnable right now (a thread sharing a core with a busy process stalls
the parallel regions of the others); :func:`configure_threads` sets torch's pools from it
(or from ``--threads``), and :func:`heptagon.publish.onnx.make_session` sizes ONNX
Runtime's the same way.

OpenMP's threads spin between parallel regions; when another process wants the same
cores (or a quota counts the spinning) that halves torch's share of them. OpenMP reads its
wait policy only when it starts, with torch's import: :func:`set_wait_policy`, called by
the ``heptagon`` command before anything imports torch, sets ``OMP_WAIT_POLICY=PASSIVE``
when :func:`machine_is_shared`, and leaves the default (spinning) on an idle machine.

Memory: glibc serves blocks above its mmap threshold (128 kB to 32 MB) with fresh ``mmap``
pages and unmaps them on free, so work that creates and frees the same large arrays again
and again (a training step's activations, a pile-up batch's million-entry arrays) faults in
every page each time. :func:`retain_freed_memory` keeps freed memory in the heap instead
(``heptagon train`` on the CPU, MLPF training, and jet samples with pile-up apply it).
oneDNN (torch's CPU convolutions) keeps the kernels it compiles for each tensor shape, a
thousand of them; :func:`uncache_kernels` turns that off for trainings whose shapes change
from batch to batch (bucketing, and ParT's pair features over the real pairs only): there
the cache seldom hits, and its churn of small blocks scatters through a retained heap,
which then grows with every epoch instead of reusing its freed blocks.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import os
from collections.abc import MutableMapping
from pathlib import Path

from heptagon.errors import ConfigError

__all__ = [
    "available_cpus",
    "cgroup_cpus",
    "configure_threads",
    "machine_is_shared",
    "retain_freed_memory",
    "set_wait_policy",
    "thread_count",
    "uncache_kernels",
]

#: where the cgroup file systems are mounted (v2: one hierarchy; v1: one per controller)
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: this process's cgroups, one ``ID:CONTROLLERS:PATH`` line per hierarchy
SELF_CGROUP = Path("/proc/self/cgroup")
#: the load averages and, 4th, "RUNNABLE/TOTAL" kernel scheduling entities right now
LOADAVG = Path("/proc/loadavg")
#: this process's threads, one directory each with its ``stat``
SELF_TASKS = Path("/proc/self/task")

_interop_configured = False


def _quota_in(directory: Path) -> float | None:
    """The CPU quota, in cores, set in one cgroup directory (None: none set there)."""
    try:  # v2: "QUOTA PERIOD" or "max PERIOD"
        quota, period = (directory / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:  # v1: a quota of -1 is no quota
            quota = (directory / "cpu.cfs_quota_us").read_text().strip()
            period = (directory / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        cores = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):  # "max" and anything unreadable
        return None
    return cores if cores > 0 else None


def _cgroup_dirs(root: Path, self_cgroup: Path) -> list[Path]:
    """This process's cgroup directories under ``root`` (v2, and v1's ``cpu`` controller)
    and each of their parents up to the hierarchy's mount point."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    paths = {"": "/", "cpu": "/"}  # no /proc: the mount point itself (a cgroup namespace)
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            paths[""] = path
        elif "cpu" in controllers.split(","):
            paths["cpu"] = path
    dirs = []
    for mount, path in paths.items():
        base = root / mount
        directory = base / path.lstrip("/")
        while True:
            dirs.append(directory)
            if directory == base or base not in directory.parents:
                break
            directory = directory.parent
    return dirs


def cgroup_cpus(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in cores (the smallest of its own and its
    parents', cgroup v2 or v1), or None when there is none or it cannot be read.

    ``root``: where the cgroup file systems are mounted; ``self_cgroup``: the file listing
    this process's cgroups (``/proc/self/cgroup``)."""
    quotas = [q for d in _cgroup_dirs(root, self_cgroup) if (q := _quota_in(d)) is not None]
    return min(quotas, default=None)


def available_cpus(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> int:
    """The CPUs this process may use: its CPU affinity, lowered to the cgroup's CPU quota
    rounded down (at least 1), so that no thread waits on the quota; ``root`` and
    ``self_cgroup`` as for :func:`cgroup_cpus`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup_cpus(root, self_cgroup)
    if quota is not None:
        cpus = min(cpus or 1, math.floor(quota))
    return max(1, cpus or 1)


def _own_runnable(tasks: Path) -> int:
    """This process's threads that are runnable now (state ``R`` in ``tasks/*/stat``), at
    least 1: the thread asking."""
    count = 0
    for stat in tasks.glob("*/stat"):
        with contextlib.suppress(OSError, IndexError):
            count += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
    return max(1, count)


def _other_runnable(loadavg: Path, tasks: Path = SELF_TASKS) -> int:
    """Kernel scheduling entities runnable right now besides this process's own threads
    (0 when ``loadavg`` cannot be read)."""
    try:
        runnable = int(loadavg.read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return 0
    return max(0, runnable - _own_runnable(tasks))


def thread_count(
    root: Path = CGROUP_ROOT,
    self_cgroup: Path = SELF_CGROUP,
    loadavg: Path = LOADAVG,
    tasks: Path = SELF_TASKS,
) -> int:
    """The threads to run now: :func:`available_cpus`, less one for each task runnable
    right now (``loadavg``) that is not one of this process's threads (``tasks``), at
    least 1. Threads that share a core with a busy
    process are descheduled in the middle of a parallel region and the others wait for
    them: on 2 cores beside one busy process, 1 thread trains ParticleNet-Lite faster than
    2 (``benchmarks/shared_machine.py``). ``root`` and ``self_cgroup`` as for
    :func:`cgroup_cpus`."""
    cpus = available_cpus(root, self_cgroup)
    return max(1, cpus - _other_runnable(loadavg, tasks))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (None: :func:`thread_count`) and
    return the count. Its inter-op pool is sized the same on the first call in a process,
    when it has not started yet (torch cannot resize a running one; later calls leave it).

    Raises :class:`ConfigError` when ``threads`` is below 1."""
    global _interop_configured
    if threads is not None and threads < 1:
        raise ConfigError(f"must be at least 1, got {threads}", key="threads")
    import torch

    count = thread_count() if threads is None else threads
    torch.set_num_threads(count)
    if not _interop_configured:
        _interop_configured = True
        # torch refuses once the pool has run parallel work
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(count)
    return count


def machine_is_shared(
    root: Path = CGROUP_ROOT,
    self_cgroup: Path = SELF_CGROUP,
    loadavg: Path = LOADAVG,
    tasks: Path = SELF_TASKS,
) -> bool:
    """Whether other work competes for this process's CPUs: a cgroup CPU quota is in force
    (spinning threads use it up), or another task is runnable right now (``loadavg``'s
    runnable entities that are not this process's threads, ``tasks``). The load averages
    are not used: they keep counting work that has ended (a previous heptagon command) for
    minutes, and passive waiting costs an idle machine ~30% of its training speed.
    ``root`` and ``self_cgroup`` as for :func:`cgroup_cpus`."""
    if cgroup_cpus(root, self_cgroup) is not None:
        return True
    return _other_runnable(loadavg, tasks) >= 1


def set_wait_policy(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` when :func:`machine_is_shared` and
    the user has set neither it nor ``KMP_BLOCKTIME``. Call it before torch is imported:
    OpenMP reads them only when it starts."""
    user_set = "OMP_WAIT_POLICY" in environ or "KMP_BLOCKTIME" in environ
    if not user_set and machine_is_shared():
        environ["OMP_WAIT_POLICY"] = "PASSIVE"


def uncache_kernels(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set ``ONEDNN_PRIMITIVE_CACHE_CAPACITY=0`` in ``environ`` unless the user has set it:
    oneDNN then compiles a kernel for each call instead of keeping a thousand (see the
    module docstring). It reads the variable when it first compiles a kernel, so call it
    before the process's first torch convolution. Training calls it before it builds its
    model when the batches change shape (jagged inputs padded per batch, the default
    ``train.bucketing``), and MLPF training (events of any size) always.

    ``benchmarks/train_memory.py`` (augmented ParT-lite, 5000 top / QCD jets per class, 6
    epochs): peak memory 9.5 and 6.4 GB in two runs with the cache, 4.3 and 4.4 GB
    without; the same losses, 2-7% less time. Where shapes repeat the cache pays: a small
    CNN's training step on one fixed shape took 1.5-2.7 times as long without it, so fixed
    shapes keep it.
    """
    environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")


_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 1 << 30


def retain_freed_memory() -> bool:
    """Keep freed blocks in glibc's heap for reuse (``mallopt(M_MMAP_MAX, 0)``, a 1 GiB
    ``M_TRIM_THRESHOLD``: the effect of ``MALLOC_MMAP_MAX_=0``); returns whether it was
    applied. The price: the process keeps its peak heap until it exits.

    Not applied (``False``) where the C library has no working ``mallopt`` (macOS; musl's
    returns 0) or when the environment sets ``HEPTAGON_RETAIN_HEAP=0``. Idempotent.
    """
    if os.environ.get("HEPTAGON_RETAIN_HEAP", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
