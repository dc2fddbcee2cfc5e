"""Top tagging: BDT, PFN, ParticleNet-Lite, ParT-lite and weaver-core's ParticleNet-Lite.

    python benchmarks/top_tagging.py [--jets 20000] [--seeds 3] [--epochs 8]
                                     [--models bdt pfn ...] [--out /tmp/top-tagging]
                                     [--plan-only] [--name top_tagging]

What runs, all in this process:

- one ``top-vs-qcd`` sample (the landscape definition: pT 550-650 GeV, abs(eta) < 2,
  R = 0.8, MPI off), ``--jets`` per class, generated once into ``OUT/sample-<jets>``;
- per model and seed (0 .. ``--seeds`` - 1) one run through heptagon's own stages:
  ``heptagon.train.train`` with the ready config (``configs/top_bdt.yaml``: m_SD, tau21,
  tau32, tau43, n constituents, pT; ``top_pfn.yaml``, ``top_particlenet_lite.yaml``,
  ``top_part_lite.yaml``: the 7 kinematic inputs of ``configs/data/top_kinematic.yaml``)
  and ``heptagon.evaluate.evaluate`` on the run's test split;
- weaver-core 0.5.3's ``ParticleNet`` with the lite settings (k = 7, EdgeConv (32,32,32),
  (64,64,64), fc 128 with dropout 0.1, no fusion; the same parameter count as heptagon's
  ``particlenet-lite``, checked), wrapped to take heptagon's input tensors and registered
  as model ``weaver-particlenet-lite`` (in this process: ``heptagon.models.register``),
  then trained and evaluated like the others: ``top_particlenet_lite.yaml`` with
  ``model.name`` set to it (same jets, split, batches, optimiser, schedule and steps).

Every torch model trains ``--epochs`` full epochs (early stopping off, so each model and
seed runs the same number of steps; ``best.pt``, the lowest validation loss, is what is
scored); ``train.seed`` (and the BDT's own ``seed``) is the seed: it sets the weights'
initialisation and the order of the batches, not the split.

Printed: AUC and 1/eps_B at 30% and 50% signal efficiency as mean +- spread (standard
deviation over seeds) per model, with the typical bootstrap error of one run on the test
split and the published numbers (Kasieczka et al. 2019, arXiv:1902.09914, as in
``shared/reference/benchmarks.md``), the sample size, the steps and the wall times; then,
for the gaps the literature predicts (BDT < PFN < ParticleNet-Lite; heptagon's
ParticleNet-Lite not worse than weaver-core's), whether the seed spread resolves them.

The defaults (20000 jets per class, 3 seeds, 8 epochs: ~880 steps of 256 jets per torch
run) are planned at ~58 min on an idle 2-core machine (3 min generation, ParT-lite 60% of
the rest; 4 epochs took 29 min); the plan, with its estimate per stage, is printed first.

``--out`` is resumable: a finished sample and finished runs (``eval/metrics.json``) are
reused, an interrupted run resumes from its last checkpoint. ``--plan-only`` prints the
plan with its estimated time and stops. Results go to ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import write_results
from torch import Tensor, nn

from heptagon.evaluate.run import evaluate
from heptagon.generate.run import GenerateOptions, generate
from heptagon.models import build_model, register
from heptagon.train import RunDir, input_dims, load_experiment, train

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
SAMPLE = "top-vs-qcd"
SAMPLE_SEED = 1
WEAVER = "weaver-particlenet-lite"
#: model -> the experiment YAML it trains with (weaver-core's model: heptagon's lite one's)
EXPERIMENTS = {
    "bdt": CONFIGS / "top_bdt.yaml",
    "pfn": CONFIGS / "top_pfn.yaml",
    "particlenet-lite": CONFIGS / "top_particlenet_lite.yaml",
    "part-lite": CONFIGS / "top_part_lite.yaml",
    WEAVER: CONFIGS / "top_particlenet_lite.yaml",
}
#: weaver-core's ``ParticleNet`` options for ParticleNet-Lite (Qu & Gouskos 2020), no fusion
WEAVER_LITE: dict[str, Any] = {
    "conv_params": [(7, (32, 32, 32)), (7, (64, 64, 64))],
    "fc_params": [(128, 0.1)],
    "use_fusion": False,
}
#: the Kasieczka et al. 2019 (arXiv:1902.09914) table: the row, AUC, 1/eps_B at 0.3 and
#: 0.5; it has no BDT and no ParT-lite row (ParT is the full model, Qu, Li, Qian 2022)
PUBLISHED: dict[str, dict[str, str]] = {
    "pfn": {"row": "PFN", "auc": "0.9819", "0.3": "888 +- 17", "0.5": "247 +- 3"},
    "particlenet-lite": {
        "row": "ParticleNet-Lite",
        "auc": "0.9844",
        "0.3": "1262 +- 49",
        "0.5": "325 +- 5",
    },
    "part-lite": {"row": "ParT (full)", "auc": "0.9858", "0.3": "1602 +- 81", "0.5": "413 +- 16"},
}
PUBLISHED[WEAVER] = PUBLISHED["particlenet-lite"]
#: gaps the literature predicts: (weaker, stronger)
EXPECTED_GAPS = (("bdt", "pfn"), ("pfn", "particlenet-lite"), (WEAVER, "particlenet-lite"))
#: for the plan: training jets/s (batch 256, bucketed, ~63 real particles per jet, the
#: validation passes included) on an idle 2-core machine, from the 4-epoch default run
TRAIN_RATE = {"pfn": 7500.0, "particlenet-lite": 1800.0, "part-lite": 410.0, WEAVER: 950.0}
#: for the plan: generated jets/s per core (MPI off; the 4-epoch run's sample: 3.0 min),
#: and a BDT run (read, fit, evaluate)
GENERATE_RATE = {"Tbqq": 80.0, "QCD": 160.0}
BDT_S = 40.0
#: for the plan: evaluation per run besides inference (plots, bootstrap)
EVAL_S = 10.0
#: the batch size of the torch models' configs (for the plan)
BATCH = 256
METRICS = ("auc", "0.3", "0.5")
LABELS = {"auc": "AUC", "0.3": "1/eps_B@0.3", "0.5": "1/eps_B@0.5"}


# ----------------------------------------------------------------------------- weaver


@register(WEAVER)
class WeaverParticleNetLite(nn.Module):
    """weaver-core's ``ParticleNet`` (lite settings) on heptagon's channels-first tensors.

    ``forward(pf_points, pf_features, pf_mask) -> (B, num_classes)`` logits, the call
    convention of heptagon's models (``input_names``) and a registry builder's signature,
    so ``heptagon.train.train`` and ``evaluate`` run it by name. weaver-core trims padding
    to the longest jet of the batch itself.
    """

    input_names = ("pf_points", "pf_features", "pf_mask")

    def __init__(self, input_dims: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        from weaver.nn.model.ParticleNet import ParticleNet  # benchmark-only dependency

        logging.getLogger("weaver").setLevel(logging.WARNING)
        self.net = ParticleNet(input_dims["pf_features"], num_classes, **WEAVER_LITE)

    def forward(self, pf_points: Tensor, pf_features: Tensor, pf_mask: Tensor) -> Tensor:
        """Logits of a batch (``pf_mask``: 1.0 for real particles, 0.0 for padding)."""
        out: Tensor = self.net(pf_points, pf_features, pf_mask)
        return out


# ----------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Plan:
    """What a call does: the sample, the models, seeds and epochs, and where it all goes."""

    jets: int
    seeds: int
    epochs: int
    models: tuple[str, ...]
    out: Path

    @property
    def sample(self) -> Path:
        """The generated sample."""
        return self.out / f"sample-{self.jets}"

    def run_dir(self, model: str, seed: int) -> Path:
        """A run's directory (torch runs per epoch count: a changed ``--epochs`` retrains)."""
        family = model if model == "bdt" else f"{model}-e{self.epochs}"
        return self.out / f"runs-{self.jets}" / family / f"seed{seed}"

    def overrides(self, model: str, seed: int) -> list[str]:
        """The ``--set`` overrides of a run."""
        if model == "bdt":
            return [f"train.seed={seed}", f"model.options.seed={seed}"]
        common = [f"train.seed={seed}", f"train.epochs={self.epochs}", "train.patience=null"]
        return [*common, f"model.name={WEAVER}"] if model == WEAVER else common


def finished(run: Path) -> bool:
    """Whether a run is trained and evaluated."""
    return (run / "eval" / "metrics.json").exists()


def estimate(plan: Plan) -> dict[str, float]:
    """Estimated seconds per stage on an idle machine, for the work not yet done."""
    cores = os.cpu_count() or 1
    seconds: dict[str, float] = {}
    if not (plan.sample / "manifest.json").exists():
        seconds["generate"] = sum(plan.jets / (rate * cores) for rate in GENERATE_RATE.values())
    train_jets, val_jets = 0.7 * 2 * plan.jets, 0.15 * 2 * plan.jets  # test: as val
    for model in plan.models:
        todo = sum(not finished(plan.run_dir(model, s)) for s in range(plan.seeds))
        if model == "bdt":
            seconds[model] = todo * BDT_S
            continue
        rate = TRAIN_RATE[model]
        # training, a validation pass per epoch and the test pass (inference ~3x faster)
        per_run = (plan.epochs * (train_jets + val_jets / 3) + val_jets / 3) / rate
        seconds[model] = todo * (per_run + EVAL_S)
    return seconds


def print_plan(plan: Plan, seconds: Mapping[str, float]) -> None:
    """The sample, steps and estimated times."""
    steps = math.ceil(0.7 * 2 * plan.jets / BATCH)
    print(
        f"plan: {SAMPLE} (MPI off), {plan.jets} jets per class in {plan.sample} "
        f"(~{0.7 * 2 * plan.jets:.0f} train / {0.15 * 2 * plan.jets:.0f} val / "
        f"{0.15 * 2 * plan.jets:.0f} test jets); {plan.seeds} seeds; torch models "
        f"{plan.epochs} epochs x ~{steps} steps of {BATCH} jets = ~{plan.epochs * steps} steps"
    )
    for stage, s in seconds.items():
        print(f"  {stage:24s} ~{s / 60:5.1f} min (idle 2-core estimate, work left)")
    print(f"  {'total':24s} ~{sum(seconds.values()) / 60:5.1f} min", flush=True)


def ensure_sample(plan: Plan) -> float:
    """Generate the sample unless it exists; returns the seconds spent."""
    if (plan.sample / "manifest.json").exists():
        return 0.0
    start = time.perf_counter()
    options = GenerateOptions(
        sample=SAMPLE, jets=plan.jets, seed=SAMPLE_SEED, out=plan.sample,
        jobs=os.cpu_count() or 1, mpi=False,
    )  # fmt: skip
    generate(options)
    return time.perf_counter() - start


def run_model(plan: Plan, model: str, seed: int) -> None:
    """Train (or resume) and evaluate one run unless it is finished."""
    run = plan.run_dir(model, seed)
    if finished(run):
        return
    experiment, overrides = EXPERIMENTS[model], plan.overrides(model, seed)
    print(f"-- {model} seed {seed} -> {run}", flush=True)
    train(experiment, plan.sample, run, overrides, resume=RunDir(run).config.exists())
    evaluate(run)


def parameters(model: str) -> int | None:
    """Trainable parameters of a torch model (None for the BDT)."""
    if model == "bdt":
        return None
    config = load_experiment(EXPERIMENTS[model])
    dims = input_dims(config.data)
    module = build_model(model if model == WEAVER else config.model.name, dims, 2)
    assert isinstance(module, nn.Module)
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- figures


def run_figures(run: Path) -> dict[str, Any]:
    """One run's numbers: AUC and rejections (with bootstrap errors), steps, wall time."""
    metrics, history = load_metrics(run), load_history(run)
    last = history[-1]
    return {
        "auc": metrics["auc"],
        "rejection_at_eff": {e: metrics["rejection_at_eff"][e] for e in ("0.3", "0.5")},
        "n_test": {k: metrics[k]["raw"] for k in ("n_signal", "n_background")},
        "steps": last["step"],
        "epochs": last["epoch"],
        "best_val_loss": min(r["val_loss"] for r in history),
        "train_wall_s": last["wall_s"],
    }


def load_metrics(run: Path) -> dict[str, Any]:
    """``eval/metrics.json`` of a run."""
    metrics: dict[str, Any] = json.loads((run / "eval" / "metrics.json").read_text())
    return metrics


def load_history(run: Path) -> list[dict[str, Any]]:
    """``history.jsonl`` of a run."""
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def entry(figures: Mapping[str, Any], metric: str) -> Mapping[str, Any]:
    """``{"value", "err", ...}`` of ``metric`` (``auc``, ``0.3``, ``0.5``) in a run."""
    return figures["auc"] if metric == "auc" else figures["rejection_at_eff"][metric]


def summarise(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean, spread (standard deviation over seeds, None for one seed) and the mean
    bootstrap error of each metric; rejections that are null (no background jet passes)
    are left out of the mean and counted in ``missing``."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        values = [entry(r, metric)["value"] for r in runs]
        errs = [entry(r, metric)["err"] for r in runs if entry(r, metric)["err"] is not None]
        known = [v for v in values if v is not None]
        out[metric] = {
            "mean": statistics.fmean(known) if known else None,
            "spread": statistics.stdev(known) if len(known) > 1 else None,
            "n": len(known),
            "missing": len(values) - len(known),
            "bootstrap_err": statistics.fmean(errs) if errs else None,
        }
    out["steps"] = sorted({r["steps"] for r in runs})
    out["train_wall_s"] = sum(r["train_wall_s"] for r in runs)
    return out


def gap(weak: Mapping[str, Any], strong: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """``strong - weak`` in ``metric`` and whether the seed spread resolves it (the gap
    beyond twice the standard error of the difference of the means)."""
    a, b = weak[metric], strong[metric]
    if a["mean"] is None or b["mean"] is None:
        return {"delta": None, "se": None, "verdict": "no value"}
    delta = b["mean"] - a["mean"]
    if a["spread"] is None or b["spread"] is None:
        return {"delta": delta, "se": None, "verdict": "one seed: spread unknown"}
    se = math.sqrt(a["spread"] ** 2 / a["n"] + b["spread"] ** 2 / b["n"])
    if abs(delta) > 2 * se:
        verdict = "as expected" if delta > 0 else "REVERSED"
    else:
        verdict = "hidden by seed noise"
    return {"delta": delta, "se": se, "verdict": verdict}


def number(value: float | None, metric: str, sign: str = "") -> str:
    """AUC to 4 decimals, rejections to integers; ``-`` for None."""
    return "-" if value is None else f"{value:{sign}.{4 if metric == 'auc' else 0}f}"


def fmt(stat: Mapping[str, Any], metric: str) -> str:
    """``mean +- spread`` (``*``: some seeds had no value)."""
    if stat["mean"] is None:
        return "-"
    text = f"{number(stat['mean'], metric)} +- {number(stat['spread'], metric)}"
    return text + ("*" if stat["missing"] else "")


def print_table(summary: Mapping[str, Mapping[str, Any]], params: Mapping[str, int | None]) -> None:
    """The per-model table, published numbers beside it."""
    head = (
        f"{'model':24s} {'params':>7s} {'steps':>6s} {'train min':>9s}  "
        f"{'AUC':17s} {'1/eps_B@0.3':13s} {'1/eps_B@0.5':13s} {'boot.err (one run)':22s}"
        f" | published (Kasieczka et al.)"
    )
    print(head)
    print("-" * len(head))
    for model, s in summary.items():
        n = params[model]
        boot = "/".join(number(s[m]["bootstrap_err"], m) for m in METRICS)
        pub = PUBLISHED.get(model)
        published = (
            f"{pub['row']}: " + ", ".join(pub[m] for m in METRICS) if pub else "(no such row)"
        )
        steps = "/".join(str(x) for x in s["steps"]) if model != "bdt" else "-"
        print(
            f"{model:24s} {'-' if n is None else n:>7} {steps:>6s} "
            f"{s['train_wall_s'] / 60:9.1f}  {fmt(s['auc'], 'auc'):17s} "
            f"{fmt(s['0.3'], '0.3'):13s} {fmt(s['0.5'], '0.5'):13s} {boot:22s} | {published}"
        )
    if any(s[m]["missing"] for s in summary.values() for m in METRICS):
        print("* some seeds had no background jet passing: mean over the others")


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print its table and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jets", type=int, default=20_000, help="jets per class")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the torch models")
    parser.add_argument("--models", nargs="+", default=list(EXPERIMENTS), choices=EXPERIMENTS)
    parser.add_argument("--out", type=Path, default=Path("/tmp/top-tagging"))
    parser.add_argument("--plan-only", action="store_true", help="print the plan and stop")
    parser.add_argument("--name", default="top_tagging", help="results file name")
    args = parser.parse_args(argv)
    plan = Plan(args.jets, args.seeds, args.epochs, tuple(args.models), args.out)
    planned = estimate(plan)
    print_plan(plan, planned)
    if args.plan_only:
        return
    start = time.perf_counter()
    generate_s = ensure_sample(plan)
    for model in plan.models:
        for seed in range(plan.seeds):
            run_model(plan, model, seed)
    wall_s = time.perf_counter() - start

    runs = {
        model: [run_figures(plan.run_dir(model, s)) for s in range(plan.seeds)]
        for model in plan.models
    }
    summary = {model: summarise(r) for model, r in runs.items()}
    params = {model: parameters(model) for model in plan.models}
    n_test = next(iter(runs.values()))[0]["n_test"]
    print(
        f"\n{SAMPLE}: {plan.jets} jets per class, test split {n_test['n_signal']} top / "
        f"{n_test['n_background']} QCD jets; {plan.seeds} seeds; torch models "
        f"{plan.epochs} epochs; wall {wall_s / 60:.1f} min (generation "
        f"{generate_s / 60:.1f} min; planned {sum(planned.values()) / 60:.1f} min)"
    )
    print(
        "mean +- spread (std over seeds); boot.err: the mean bootstrap error of one run; "
        "train min: training wall time summed over seeds\n"
    )
    print_table(summary, params)
    if {"particlenet-lite", WEAVER} <= params.keys():
        same = params["particlenet-lite"] == params[WEAVER]
        print(
            f"ParticleNet-Lite parameters: heptagon {params['particlenet-lite']}, weaver-core "
            f"{params[WEAVER]}" + ("" if same else " (DIFFERENT: not like for like)")
        )
    gaps = {
        f"{strong} vs {weak}": {m: gap(summary[weak], summary[strong], m) for m in METRICS}
        for weak, strong in EXPECTED_GAPS
        if weak in summary and strong in summary
    }
    if gaps:
        print("\nexpected gaps (stronger - weaker; resolved when beyond 2 standard errors):")
    for pair, by_metric in gaps.items():
        parts = [
            f"{LABELS[m]} {number(g['delta'], m, '+')} ({g['verdict']})"
            for m, g in by_metric.items()
        ]
        print(f"  {pair:36s} " + "; ".join(parts))
    figures = {
        "sample": {
            "name": SAMPLE,
            "jets_per_class": plan.jets,
            "seed": SAMPLE_SEED,
            "mpi": False,
            "test": n_test,
            "path": str(plan.sample),
        },
        "seeds": plan.seeds,
        "epochs": plan.epochs,
        "parameters": params,
        "published": {m: p for m, p in PUBLISHED.items() if m in plan.models},
        "runs": runs,
        "summary": summary,
        "gaps": gaps,
        "wall_s": {"total": wall_s, "generate": generate_s},
        "planned_s": planned,
    }
    print("wrote", write_results(args.name, figures))


if __name__ == "__main__":
    main()
