"""``heptagon demo``: the main job, end to end on a small top-vs-QCD sample.

Stages run so far: generate (a small top-vs-QCD sample made with Pythia 8 + FastJet and the
parametric detector). Later stages join as they land.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from heptagon.generate.run import GenerateOptions, Summary, generate

__all__ = ["DEMO_JETS", "DemoResult", "run_demo"]

#: jets per class of the demo sample
DEMO_JETS = 2000


@dataclass(frozen=True)
class DemoResult:
    """What the demo made."""

    sample: Summary


def run_demo(out: Path, *, jets: int = DEMO_JETS, show_progress: bool = True) -> DemoResult:
    """Run the demo into ``out``; re-running resumes (finished shards are kept)."""
    sample = generate(
        GenerateOptions(
            sample="top-vs-qcd",
            jets=jets,
            seed=1,
            out=out / "sample",
            shard_size=max(1, jets // 2),
            jobs=min(2, os.cpu_count() or 1),
        ),
        show_progress=show_progress,
    )
    return DemoResult(sample=sample)
