"""``heptagon demo``: the main job, end to end on a small top-vs-QCD sample.

1. generate a top-vs-QCD sample (Pythia 8 + FastJet + the parametric detector),
2. train the BDT baseline (high-level jet features) and ParticleNet-Lite (constituents),
3. evaluate both on the held-out test split and compare them,
4. export ParticleNet-Lite to ONNX and publish its bundle (model card, HEPData record),
5. run ``predict`` with the bundle alone on a freshly generated sample.

Every stage writes under ``out`` and is skipped when its output is already there, so an
interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from heptagon.artifacts.metrics import Evaluation
from heptagon.evaluate.report import rich_table
from heptagon.evaluate.run import compare, evaluate
from heptagon.generate.run import GenerateOptions, Summary, generate
from heptagon.infer.predict import predict
from heptagon.logs import get_logger
from heptagon.publish.bundle import publish
from heptagon.train.run import train

__all__ = ["DEMO_JETS", "DemoResult", "run_demo"]

#: jets per class of the demo's training sample (the fresh sample for predict: a tenth)
DEMO_JETS = 5000
#: the models the demo trains: run name -> shipped experiment (``heptagon configs list``)
MODELS = {"bdt": "top_bdt.yaml", "particlenet_lite": "top_particlenet_lite.yaml"}
#: the demo's training budget for ParticleNet-Lite (a few minutes on 2 cores)
PN_OVERRIDES = ("train.epochs=20", "train.batch_size=128", "train.warmup_steps=100")

_log = get_logger("demo")


@dataclass(frozen=True)
class DemoResult:
    """What the demo made: the sample, the runs, their test-split metrics, the published
    bundle and the scores predicted with it on a fresh sample."""

    out: Path
    sample: Summary
    runs: dict[str, Path]
    metrics: dict[str, Evaluation]
    bundle: Path
    predictions: list[Path]
    wall_s: float

    def table(self) -> Table:
        """The summary: AUC and background rejection at 30% and 50% signal efficiency."""
        return rich_table(f"heptagon demo: top vs QCD ({self.out})", self.metrics)


def _sample(out: Path, jets: int, seed: int, show_progress: bool) -> Summary:
    return generate(
        GenerateOptions(
            sample="top-vs-qcd",
            jets=jets,
            seed=seed,
            out=out,
            shard_size=max(1, jets // 2),
            jobs=min(2, os.cpu_count() or 1),
        ),
        show_progress=show_progress,
    )


def _step(console: Console, title: str) -> None:
    console.rule(f"[bold]{title}")
    _log.info("stage %s", title)


def run_demo(
    out: Path,
    *,
    jets: int = DEMO_JETS,
    show_progress: bool = True,
    console: Console | None = None,
) -> DemoResult:
    """Run the demo into ``out``; re-running resumes."""
    start = time.perf_counter()
    console = console or Console()
    _step(console, f"1/5 generate top-vs-QCD ({jets} jets per class)")
    sample = _sample(out / "sample", jets, 1, show_progress)
    runs: dict[str, Path] = {}
    for name, experiment in MODELS.items():
        run = out / "runs" / name
        runs[name] = run
        if (run / "model.json").exists() and (run / "history.jsonl").exists():
            continue
        _step(console, f"2/5 train {name}")
        overrides = list(PN_OVERRIDES) if name != "bdt" else []
        overrides.append(f"train.progress={'true' if show_progress else 'false'}")
        with resources.as_file(resources.files("heptagon.configs")) as configs:
            train(configs / experiment, sample.out, run, overrides=overrides)
    _step(console, "3/5 evaluate on the held-out test split")
    metrics = {name: evaluate(run).metrics for name, run in runs.items()}
    compare(list(runs.values()), out / "compare")
    _step(console, "4/5 export ParticleNet-Lite to ONNX and publish it")
    bundle = publish(runs["particlenet_lite"])
    fresh_jets = max(50, jets // 10)
    _step(console, f"5/5 predict with the bundle alone on a fresh sample ({fresh_jets} per class)")
    fresh = _sample(out / "fresh", fresh_jets, 2, show_progress)
    predictions = predict(
        bundle / "model.onnx",
        fresh.out,
        out / "predictions",
        observers=["jet_pt", "jet_sdmass"],
        progress=show_progress,
    )
    return DemoResult(
        out=out,
        sample=sample,
        runs=runs,
        metrics=metrics,
        bundle=bundle,
        predictions=predictions,
        wall_s=time.perf_counter() - start,
    )
