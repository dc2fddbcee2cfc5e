"""What every benchmark records beside its figures: the command, the commit, the machine."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def add_allocator_option(parser: argparse.ArgumentParser) -> None:
    """``--allocator retained|glibc``, the same for every contender of a run: ``retained``
    (default) keeps freed memory in the heap as ``heptagon train`` does
    (:func:`heptagon.cpu.retain_freed_memory`); ``glibc`` leaves its defaults (blocks above
    its mmap threshold are fresh pages each time). Apply it with :func:`apply_allocator`."""
    parser.add_argument(
        "--allocator",
        choices=("retained", "glibc"),
        default="retained",
        help="retained: freed memory kept for reuse, as heptagon train runs; glibc: its defaults",
    )


def apply_allocator(choice: str) -> None:
    """Set the process's allocator for ``--allocator`` (before the first large tensor)."""
    from heptagon.cpu import retain_freed_memory

    if choice == "retained" and not retain_freed_memory():
        raise SystemExit("--allocator retained needs glibc's mallopt")


def machine() -> dict[str, Any]:
    """Cores, CPU model and platform of this machine."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def commit(ignore: Path | None = None, root: Path = Path(__file__).resolve().parent.parent) -> str:
    """The git commit of the working tree at ``root`` (the project; with '+dirty' if it has
    local changes other than to ``ignore``: the results file being written, which a
    benchmark that writes after each stage has already changed itself)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    mine = ignore.resolve() if ignore is not None else None
    dirty = [line for line in changed if (root / line[3:]).resolve() != mine]
    return sha + ("+dirty" if dirty else "")


def write_results(name: str, figures: dict[str, Any], part: str | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the figures and their provenance.

    ``part``: the figures of one part of a benchmark run on its own; they replace
    ``figures[part]`` of the file, with this run's command, commit and machine inside them,
    and the file's other figures and provenance are kept."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    provenance = {
        "command": " ".join(["python", *sys.argv]),
        "commit": commit(ignore=path),
        "machine": machine(),
    }
    payload: dict[str, Any] = {"benchmark": name, **provenance, "figures": figures}
    if part is not None:
        payload = json.loads(path.read_text()) if path.exists() else {"benchmark": name}
        payload.setdefault("figures", {})[part] = {**figures, **provenance}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path
