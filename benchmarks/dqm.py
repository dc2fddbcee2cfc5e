"""DQM certification: ROC AUC and flag rates per method and fault type as the fault shrinks.

    python benchmarks/dqm.py [--source DIR] [--source-jets 4000] [--train-runs 60]
                             [--good-runs 60] [--runs-per-point 12] [--ls 20]
                             [--events-per-ls 1000] [--seed 0] [--workdir DIR] [--name dqm]

A QCD jet source is generated once (``--source`` reuses one). Training: ``--train-runs``
runs drawn by ``heptagon dqm simulate``'s rules (30 % with a fault of random kind and
size, from a random LS); the histogram methods fit on the good ones (30 % of those held
out to set the thresholds), the supervised part (gradient feature ranking, KNN / GNB /
SVM on the top 10 run summaries) on all. Test, in the same process: ``--good-runs`` good
runs and, for every fault kind and each of four sizes (largest first), ``--runs-per-point``
runs with that fault from their first LS (random region / slice / towers per run), all
with shuffled run numbers (so each group spreads over the drift's phases).

Per method, fault and size: ROC AUC of those bad runs against all good test runs
(``heptagon.physics.metrics.auc``), the fraction of them flagged at the method's
threshold, and the fraction of good runs flagged. Histogram methods are scored at two
levels: ``max_ls`` (the run's worst LS: the JetMET rule) and ``run`` (the run's summed
histograms). The classical baseline is ``chi2_ndf`` (chi2 / ndf per histogram, all bins);
``chi2`` is the same test with the per-histogram error taken over its 4 worst bins, like
the other methods. The detection threshold of a method for a fault is the smallest size
whose AUC is at least 0.9. Both autoencoders (the dense ``autoencoder`` and the per-histogram
``conv_autoencoder``) are compared point by point with both chi2 baselines at each level.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_results

from heptagon.apps.dqm.certify import TrainConfig, fit, score
from heptagon.apps.dqm.simulate import (
    Fault,
    RunPlan,
    SimulateConfig,
    SourceOptions,
    load_source,
    make_source,
    plan_runs,
    simulate_runs,
)
from heptagon.physics.metrics import auc

SIZES: dict[str, tuple[float, ...]] = {
    "dead_region": (1.0, 0.5, 0.25, 0.1),
    "hot_region": (0.5, 0.25, 0.1, 0.05),
    "noisy_towers": (0.1, 0.03, 0.01, 0.003),
    "jes_shift": (0.05, 0.02, 0.01, 0.005),
    "tracker_ineff": (0.5, 0.25, 0.1, 0.05),
    "rate_drop": (0.2, 0.1, 0.05, 0.02),
}
AUC_DETECTED = 0.9


def _test_plans(args: argparse.Namespace) -> list[RunPlan]:
    """Good and faulty test runs, their run numbers shuffled (so that every group of runs
    spreads over the response drift's phases and the luminosities)."""
    rng = np.random.default_rng([args.seed, 7])
    faults: list[Fault | None] = [None] * args.good_runs
    for kind, sizes in SIZES.items():
        for size in sizes:
            faults += [Fault(kind=kind, size=size) for _ in range(args.runs_per_point)]  # type: ignore[arg-type]
    numbers = 10_000 + rng.permutation(len(faults))
    return [
        RunPlan(run=int(n), n_ls=args.ls, peak_lumi=float(rng.uniform(0.7, 1.3)), fault=f)
        for n, f in zip(numbers, faults, strict=True)
    ]


def _flags(name: str, scores: np.ndarray, model: Any) -> np.ndarray:
    if ":" in name:
        method, level = name.split(":")
        return scores > model.calibration[method][level].threshold
    return scores > (0.0 if name == "svm" else 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path)
    parser.add_argument("--source-jets", type=int, default=4000)
    parser.add_argument("--train-runs", type=int, default=60)
    parser.add_argument("--good-runs", type=int, default=60)
    parser.add_argument("--runs-per-point", type=int, default=12)
    parser.add_argument("--ls", type=int, default=20)
    parser.add_argument("--events-per-ls", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--name", default="dqm")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="heptagon-dqm-bench-"))
    t0 = time.perf_counter()
    source_dir = args.source or make_source(
        workdir / "source", SourceOptions(jets=args.source_jets), show_progress=False
    )
    source = load_source(source_dir)
    t_source = time.perf_counter() - t0
    cfg = SimulateConfig(
        runs=args.train_runs, ls_per_run=args.ls, seed=args.seed, events_per_ls=args.events_per_ls
    )
    t0 = time.perf_counter()
    train = simulate_runs(plan_runs(cfg), source, cfg, show_progress=False)
    plans = _test_plans(args)
    test = simulate_runs(plans, source, cfg, show_progress=False, year_runs=len(plans))
    t_sim = time.perf_counter() - t0
    n_ls = len(train.ls["run"]) + len(test.ls["run"])
    print(f"simulated {len(train.runs)} + {len(test.runs)} runs, {n_ls} LS in {t_sim:.0f} s")

    t0 = time.perf_counter()
    model = fit(train, TrainConfig(seed=args.seed))
    classical = fit(
        train, TrainConfig(methods=("chi2",), top_bins=None, classifiers=False, seed=args.seed)
    )
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = score(model, test).run
    for level in ("max_ls", "run"):
        scores[f"chi2_ndf:{level}"] = score(classical, test).run[f"chi2:{level}"]
    model.calibration["chi2_ndf"] = classical.calibration["chi2"]
    t_score = time.perf_counter() - t0
    print(f"fit {t_fit:.0f} s, score {t_score:.1f} s")

    kinds = np.array(test.run_faults)
    sizes = np.array([r["fault"]["size"] if r["fault"] else 0.0 for r in test.runs])
    good = kinds == ""
    results: dict[str, Any] = {}
    for name, s in scores.items():
        flags = _flags(name, s, model)
        entry: dict[str, Any] = {
            "good_flag_rate": float(flags[good].mean()),
            "auc_all": auc(s, ~good),
            "faults": {},
        }
        for kind, grid in SIZES.items():
            points = []
            for size in grid:
                bad = (kinds == kind) & (sizes == size)
                sel = good | bad
                points.append(
                    {
                        "size": size,
                        "auc": auc(s[sel], bad[sel]),
                        "bad_flag_rate": float(flags[bad].mean()),
                    }
                )
            detected = [p["size"] for p in points if p["auc"] >= AUC_DETECTED]
            entry["faults"][kind] = {
                "points": points,
                "smallest_size_auc_0.9": min(detected) if detected else None,
            }
        results[name] = entry

    header = f"{'method':24s} {'good flagged':>12s} {'AUC all':>8s}"
    print(header)
    for name, e in results.items():
        print(f"{name:24s} {e['good_flag_rate']:12.2f} {e['auc_all']:8.3f}")
    for kind, grid in SIZES.items():
        print(f"\n{kind}: AUC (bad flagged) at size " + ", ".join(f"{g:g}" for g in grid))
        for name, e in results.items():
            cells = " ".join(
                f"{p['auc']:.2f} ({p['bad_flag_rate']:.2f})" for p in e["faults"][kind]["points"]
            )
            print(f"  {name:24s} {cells}")

    # each autoencoder vs the chi2 baselines, at the same level, point by point
    comparison: dict[str, Any] = {}
    for ae_name in ("autoencoder", "conv_autoencoder"):
        for level in ("max_ls", "run"):
            for base in ("chi2_ndf", "chi2"):
                ae = results[f"{ae_name}:{level}"]["faults"]
                ref = results[f"{base}:{level}"]["faults"]
                wins, losses, ties = [], [], []
                for kind in SIZES:
                    for p, q in zip(ae[kind]["points"], ref[kind]["points"], strict=True):
                        d = p["auc"] - q["auc"]
                        item = f"{kind}@{p['size']:g} ({p['auc']:.2f} vs {q['auc']:.2f})"
                        (wins if d > 0.05 else losses if d < -0.05 else ties).append(item)
                comparison[f"{ae_name}_vs_{base}:{level}"] = {
                    "ae_better": wins,
                    "ae_worse": losses,
                    "within_0.05": ties,
                }
                print(
                    f"\n{ae_name} vs {base} ({level}): better at {len(wins)}, worse at "
                    f"{len(losses)}, within 0.05 AUC at {len(ties)} of "
                    f"{len(wins + losses + ties)}"
                )
                for item in losses:
                    print(f"  AE worse: {item}")

    figures = {
        "methods": results,
        "autoencoders_vs_chi2": comparison,
        "feature_ranking_top10": [
            {"feature": n, "importance": round(v, 4)} for n, v in model.ranking[:10]
        ],
        "classifier_features": model.features,
        "setup": {
            "source": str(source_dir),
            "source_events": source.n_events,
            "train_runs": len(train.runs),
            "train_bad_runs": int(train.run_bad.sum()),
            "test_good_runs": int(good.sum()),
            "runs_per_point": args.runs_per_point,
            "ls_per_run": args.ls,
            "events_per_ls": args.events_per_ls,
            "sizes": SIZES,
            "seed": args.seed,
            "thresholds_quantile": model.config.quantile,
            "calibration_fraction": model.config.calibration_fraction,
            "top_bins": model.config.top_bins,
        },
        "timing_s": {
            "source": t_source,
            "simulate": t_sim,
            "fit": t_fit,
            "score": t_score,
            "ms_per_ls": 1e3 * t_sim / n_ls,
        },
        "machine_note": "shared: other agents ran on the same 2 cores (load average "
        f"{os.getloadavg()[0]:.1f} at the end)",
    }
    print(f"\nresults: {write_results(args.name, figures)}")


if __name__ == "__main__":
    main()
