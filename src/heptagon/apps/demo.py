"""``heptagon demo``: the main job, end to end on a small top-vs-QCD sample.

1. generate a top-vs-QCD sample (Pythia 8 + FastJet + the parametric detector),
2. train the BDT baseline (high-level jet features) and ParticleNet-Lite on the
   constituents and the BDT's jet features (the hybrid ``top_particlenet_lite_hl.yaml``,
   with the small-data recipe: weight averaging, label smoothing; docs/small-data.md) cut
   to the demo's budget,
3. evaluate both on the held-out test split and compare them (the summary says whether
   the network beats the BDT),
4. export ParticleNet-Lite to ONNX and publish its bundle (model card, HEPData record),
5. run ``predict`` with the bundle alone on a freshly generated sample.

Every stage writes under ``out`` and is skipped when its output is already there, so an
interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from heptagon.artifacts.metrics import BinaryEvaluation, Evaluation
from heptagon.evaluate.report import rich_table
from heptagon.evaluate.run import compare, evaluate
from heptagon.generate.run import GenerateOptions, Summary, generate
from heptagon.infer.predict import predict
from heptagon.logs import get_logger
from heptagon.publish.bundle import publish
from heptagon.train.run import train

__all__ = ["DEMO_JETS", "DemoResult", "run_demo", "versus_bdt"]

#: jets per class of the demo's training sample (the fresh sample for predict: a tenth)
DEMO_JETS = 5000
#: the models the demo trains: run name -> shipped experiment (``heptagon configs list``)
MODELS = {"bdt": "top_bdt.yaml", "particlenet_lite": "top_particlenet_lite_hl.yaml"}
#: what the network run is (the run keeps its name ``particlenet_lite``: docs/scale-factors.md
#: and benchmarks/scale_factors.py take its bundle)
NETWORK_NOTE = (
    "particlenet_lite: ParticleNet-Lite on the constituents and the BDT's jet features "
    "(top_particlenet_lite_hl.yaml)"
)
#: the demo's training budget for ParticleNet-Lite (a few minutes on 2 cores): the recipe's
#: schedule cut to the 20 epochs of 128 jets the demo has always trained
PN_OVERRIDES = ("train.epochs=20",)
#: the network whose AUC the summary compares with the BDT's
NETWORK = "particlenet_lite"

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
        """The summary: AUC and background rejection at 30% and 50% signal efficiency,
        and below it whether the network beats the BDT (:func:`versus_bdt`) and what the
        network is."""
        table = rich_table(f"heptagon demo: top vs QCD ({self.out})", self.metrics)
        table.caption = f"{versus_bdt(self.metrics)}\n{NETWORK_NOTE}"
        return table


def versus_bdt(metrics: Mapping[str, Evaluation], network: str = NETWORK) -> str:
    """Whether ``network`` beats the BDT on the test split: its AUC minus the BDT's, with
    the error of the difference (the two bootstrap errors in quadrature: conservative, the
    two share the test jets), resolved when beyond twice that error; and 1/eps_B at 50%
    signal efficiency of both."""
    net, bdt = metrics[network], metrics["bdt"]
    if not isinstance(net, BinaryEvaluation) or not isinstance(bdt, BinaryEvaluation):
        raise TypeError("the demo compares binary classifiers")
    if net.auc.value is None or bdt.auc.value is None:
        return f"{network} vs bdt: no AUC to compare"
    delta = net.auc.value - bdt.auc.value
    err = math.hypot(net.auc.err or 0.0, bdt.auc.err or 0.0)
    if delta > 2 * err:
        verdict = f"{network} beats the BDT"
    elif delta < -2 * err:
        verdict = f"{network} does not beat the BDT (the BDT is better)"
    else:
        verdict = f"{network} does not beat the BDT (within 2 errors)"
    rejections = [m.rejection_at_eff["0.5"].value for m in (net, bdt)]
    shown = ["-" if r is None else f"{r:.0f}" for r in rejections]
    return (
        f"{verdict}: AUC {delta:+.4f} +- {err:.4f}; 1/eps_B @ eps_S=0.5 "
        f"{shown[0]} vs {shown[1]} (BDT)"
    )


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
    _log.info(versus_bdt(metrics))
    compare(list(runs.values()), out / "compare")
    _step(console, "4/5 export the network to ONNX and publish it")
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
