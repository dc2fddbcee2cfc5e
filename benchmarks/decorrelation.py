"""Mass decorrelation on W vs QCD: nominal, flat reweighting, adversary, DisCo and DDT.

    python benchmarks/decorrelation.py [--jets 10000] [--qcd-jets 30000]
                                       [--ddt-qcd-jets 40000] [--seeds 3] [--epochs 10]
                                       [--out /tmp/decorrelation] [--name decorrelation]

What runs, all in this process:

- one ``w-vs-qcd`` sample (R = 0.8, pT 500-1000 GeV, abs(eta) < 2, MPI off), ``--jets``
  per class, generated once into ``OUT/sample-<jets>`` by heptagon's generate stage, and
  an independent QCD sample with the same settings (``--qcd-jets``, another seed) in
  ``OUT/qcd-<qcd-jets>``: at 50% W efficiency only ~1% of QCD passes, and the JSD of the
  passing m_SD needs hundreds of jets to be more than its statistical floor; and a third
  QCD sample (``--ddt-qcd-jets``, a third seed) that calibrates the DDT map, as analyses
  derive it on a large QCD simulation: a quantile per (rho, pT) bin needs many jets above it;
- per seed (0 .. ``--seeds`` - 1) six trainings with ``heptagon.train.train`` of the ready
  configs: ``configs/w_md_nominal.yaml`` (an MLP on m_SD, tau21, tau32, tau43, the
  constituent count and pT), ``w_md_flat.yaml`` (the same, flat (pT, m_SD) reweighting of
  both classes), ``w_md_adversary.yaml`` (a QCD mass-bin adversary on the W score,
  lambda 3, and ``adversary-weak`` with lambda 1) and ``w_md_disco.yaml`` (DisCo on the QCD
  jets, lambda 3, and ``disco-weak``: 1); and the DDT of the nominal model: the map of
  the QCD score's (1 - x) quantile in 10 rho x 2 pT bins built on the nominal's training
  and validation QCD jets plus the calibration QCD sample, at the working point of the
  comparison: x is chosen (bisection) so that the cut ``ddt_score > 0`` keeps 50% of the
  training and validation W jets; and tighter maps of the same jets (``DDT_SCAN``: x =
  0.2%, 0.5%, 1%) whose score ``ddt_score`` is cut where it keeps 50% of the W jets
  (``ddt-map<x>``: partly decorrelated, between the nominal and the flat DDT).

Every model is the one at the end of training (``--epochs`` epochs; the best-validation-loss
checkpoint measures the classification loss only, which a decorrelation term trades away),
scored without weights (flat reweighting changes the loss only) on the same test set: the
test split of the W-vs-QCD sample plus the whole independent QCD sample.

Printed per method: background rejection 1/eps_B at 50% W efficiency and 1/JSD (base 2)
between the QCD m_SD distributions (40 bins, 0-300 GeV) passing and failing that cut, as
mean +- standard deviation over seeds, with each method's ratio to the nominal; for the DDT
also its own cut (ddt_score > 0). The goal of the issue: a decorrelated method with >= 5x
the nominal 1/JSD keeping >= 50% of the nominal rejection. Plot: rejection vs 1/JSD
(``benchmarks/results/<name>.png``); results: ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from _common import RESULTS, write_results
from matplotlib import ticker

from heptagon.data import JetDataset, Preprocess
from heptagon.evaluate.inference import predict_batches
from heptagon.generate.run import GenerateOptions, generate
from heptagon.physics.ddt import DDTMap, build_ddt_map, ddt_metrics
from heptagon.physics.metrics import jsd_inverse_at_efficiency, roc_curve
from heptagon.train import load_experiment, train

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
#: method -> (config, --set overrides); the ``weak`` variants lower lambda from 3 to 1
METHODS: dict[str, tuple[str, list[str]]] = {
    "nominal": ("w_md_nominal.yaml", []),
    "flat": ("w_md_flat.yaml", []),
    "adversary": ("w_md_adversary.yaml", []),
    "adversary-weak": (
        "w_md_adversary.yaml",
        [
            "train.regularisers=[{name: adversary, lam: 1.0, bins: [0, 30, 60, 90, 120, 150, "
            "200, 300], lr: 3.0e-3, steps: 2, warmup: 50}]"
        ],
    ),
    "disco": ("w_md_disco.yaml", []),
    "disco-weak": ("w_md_disco.yaml", ["train.regularisers=[{name: disco, lam: 1.0}]"]),
}
SAMPLE_SEED = 1
EFF = 0.5
#: background efficiencies of tighter DDT maps, each used at the 50% W working point by
#: shifting its cut (a family between the nominal and the DDT that is flat at 50%)
DDT_SCAN = (0.002, 0.005, 0.01)
SIGNAL = 1  # label_Wqq


def score(
    model: torch.nn.Module, sample: Path, split: Any, seed: int, qcd_only: bool = False
) -> dict[str, np.ndarray]:
    """W score, label and m_SD, pT of a split, read with the nominal (unweighted) config
    (``qcd_only``: a QCD sample, which has no ``label_Wqq``)."""
    config = load_experiment(CONFIGS / "w_md_nominal.yaml").data
    if qcd_only:
        labels = {"value": {"QCD": "label_QCD", "Wqq": "label_QCD == 0"}}
        config = config.model_validate(config.model_dump() | {"labels": labels})
    dataset = JetDataset(
        [sample], config, Preprocess.from_config(config), split=split, batch_size=4096,
        buffer_size=20_000, shuffle=False, seed=seed,
    )  # fmt: skip
    pred = predict_batches(model.eval(), dataset, name=str(split), class_names=["QCD", "Wqq"])
    return {
        "score": pred.probs[:, SIGNAL],
        "label": pred.labels == SIGNAL,
        "mass": pred.observers["jet_sdmass"].astype(np.float64),
        "pt": pred.observers["jet_pt"].astype(np.float64),
    }


def figures(s: np.ndarray, d: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Rejection at 50% W efficiency and 1/JSD of the QCD m_SD passing vs failing it."""
    wp = roc_curve(s, d["label"]).at_signal_eff(EFF)
    return {
        "rejection": wp.rejection,
        "jsd_inverse": jsd_inverse_at_efficiency(s, d["label"], d["mass"], eff=EFF),
    }


def test_set(model: torch.nn.Module, sample: Path, qcd: Path, seed: int) -> dict[str, np.ndarray]:
    """The test split of ``sample`` and the whole QCD sample ``qcd``."""
    parts = [score(model, sample, "test", seed), score(model, qcd, None, seed, qcd_only=True)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def ddt_at_signal_eff(
    qcd: dict[str, np.ndarray], signal: dict[str, np.ndarray], eff: float
) -> DDTMap:
    """The DDT map of the ``qcd`` jets whose cut ``ddt_score > 0`` keeps the fraction
    ``eff`` of the ``signal`` jets: bisection on the map's background efficiency x (the
    signal efficiency grows with x)."""
    lo, hi = 1e-4, 0.5
    for _ in range(30):
        x = (lo * hi) ** 0.5
        ddt = build_ddt_map(qcd["score"], qcd["mass"], qcd["pt"], efficiency=x, score_name="Wqq")
        passed = np.mean(ddt(signal["score"], signal["mass"], signal["pt"]) > 0)
        lo, hi = (x, hi) if passed < eff else (lo, x)
    return ddt


def run_seed(
    sample: Path, qcd: Path, ddt_qcd: Path, out: Path, seed: int, epochs: int
) -> dict[str, Any]:
    """The four trainings and the DDT of one seed."""
    result: dict[str, Any] = {}
    nominal_model = None
    for method, (config, overrides) in METHODS.items():
        run = out / f"{method}-seed{seed}"
        start = time.perf_counter()
        summary = train(
            CONFIGS / config, sample, run,
            [*overrides, f"train.seed={seed}", f"train.epochs={epochs}", "train.progress=false"],
        )  # fmt: skip
        assert isinstance(summary.model, torch.nn.Module)
        test = test_set(summary.model, sample, qcd, seed)
        result[method] = figures(test["score"], test) | {
            "train_s": time.perf_counter() - start,
            "steps": summary.steps,
        }
        print(f"seed {seed} {method}: {result[method]}", flush=True)
        if method == "nominal":
            nominal_model, nominal_test = summary.model, test
    assert nominal_model is not None
    fit = [score(nominal_model, sample, split, seed) for split in ("train", "val")]
    fit.append(score(nominal_model, ddt_qcd, None, seed, qcd_only=True))
    both = {k: np.concatenate([f[k] for f in fit]) for k in fit[0]}
    bkg = ~both["label"]
    ddt = ddt_at_signal_eff(
        {k: v[bkg] for k, v in both.items()}, {k: v[~bkg] for k, v in both.items()}, EFF
    )
    x = ddt.efficiency
    ddt_score = ddt(nominal_test["score"], nominal_test["mass"], nominal_test["pt"])
    result["ddt"] = figures(ddt_score, nominal_test) | {
        "map_efficiency": x,
        "cut_at_zero": ddt_metrics(ddt_score, nominal_test["label"], nominal_test["mass"]),
    }
    print(f"seed {seed} ddt: {result['ddt']}", flush=True)
    for x_map in DDT_SCAN:
        tight = build_ddt_map(
            both["score"][bkg], both["mass"][bkg], both["pt"][bkg], efficiency=x_map,
            score_name="Wqq",
        )  # fmt: skip
        shifted = tight(nominal_test["score"], nominal_test["mass"], nominal_test["pt"])
        result[ddt_name(x_map)] = figures(shifted, nominal_test) | {"map_efficiency": x_map}
        print(f"seed {seed} {ddt_name(x_map)}: {result[ddt_name(x_map)]}", flush=True)
    return result


def ddt_name(x_map: float) -> str:
    """The table's name of the DDT map made at background efficiency ``x_map``."""
    return f"ddt-map{100 * x_map:g}%"


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread over seeds of each method's figures, and ratios to the nominal."""
    table: dict[str, Any] = {}
    for method in (*METHODS, "ddt", *map(ddt_name, DDT_SCAN)):
        entry: dict[str, Any] = {}
        for key in ("rejection", "jsd_inverse"):
            values = [r[method][key] for r in per_seed if r[method][key] is not None]
            entry[key] = {
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "values": values,
            }
        table[method] = entry
    nominal = table["nominal"]
    for entry in table.values():
        for key in ("rejection", "jsd_inverse"):
            ref, val = nominal[key]["mean"], entry[key]["mean"]
            entry[key]["ratio_to_nominal"] = val / ref if ref and val is not None else None
    return table


def plot(table: dict[str, Any], path: Path) -> None:
    """Rejection vs 1/JSD, mean +- spread over seeds."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method, entry in table.items():
        r, j = entry["rejection"], entry["jsd_inverse"]
        if r["mean"] is None or j["mean"] is None:
            continue
        ax.errorbar(
            j["mean"], r["mean"], xerr=j["std"] or 0, yerr=r["std"] or 0, marker="o",
            capsize=3, label=method,
        )  # fmt: skip
    nominal = table["nominal"]
    goal = (5 * nominal["jsd_inverse"]["mean"], 0.5 * nominal["rejection"]["mean"])
    ax.axvline(goal[0], color="grey", ls="--", lw=1)
    ax.axhline(goal[1], color="grey", ls="--", lw=1)
    ax.text(*goal, " goal: right of and above", color="grey", va="top", fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(r"1/JSD (QCD $m_{SD}$, pass vs fail at $\varepsilon_S$ = 50%)")
    ax.set_ylabel(r"QCD rejection 1/$\varepsilon_B$ at $\varepsilon_S$ = 50%")
    ax.set_title("W vs QCD mass decorrelation (heptagon, MLP on jet features)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=10_000, help="jets per class")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--qcd-jets", type=int, default=30_000, help="independent QCD jets")
    parser.add_argument(
        "--ddt-qcd-jets", type=int, default=40_000, help="QCD jets calibrating the DDT map"
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("/tmp/decorrelation"))
    parser.add_argument("--name", default="decorrelation")
    args = parser.parse_args()

    torch.set_num_threads(1)
    sample = args.out / f"sample-{args.jets}"
    start = time.perf_counter()
    options = GenerateOptions(
        sample="w-vs-qcd", jets=args.jets, seed=SAMPLE_SEED, out=sample,
        jobs=os.cpu_count() or 1,
    )  # fmt: skip
    generate(options)
    qcd = args.out / f"qcd-{args.qcd_jets}"
    window = {"pt_min": 500.0, "pt_max": 1000.0, "radius": 0.8, "eta_max": 2.0, "mpi": False}
    qcd_options = GenerateOptions(  # w-vs-qcd's settings; a lone class defaults to MPI on
        sample="QCD", jets=args.qcd_jets, seed=SAMPLE_SEED + 1, out=qcd, jobs=options.jobs,
        **window,
    )  # fmt: skip
    generate(qcd_options)
    ddt_qcd = args.out / f"qcd-ddt-{args.ddt_qcd_jets}"
    generate(
        qcd_options.model_copy(
            update={"jets": args.ddt_qcd_jets, "seed": SAMPLE_SEED + 2, "out": ddt_qcd}
        )
    )
    generate_s = time.perf_counter() - start
    per_seed = []
    for seed in range(args.seeds):
        for method in METHODS:  # fresh runs: the benchmark measures whole trainings
            shutil.rmtree(args.out / f"{method}-seed{seed}", ignore_errors=True)
        per_seed.append(run_seed(sample, qcd, ddt_qcd, args.out, seed, args.epochs))
    table = summarise(per_seed)

    print(f"\nW vs QCD, {args.jets} jets per class, {args.seeds} seeds, {args.epochs} epochs")
    print(f"{'method':<15} {'1/eps_B @ 50%':>20} {'1/JSD':>20} {'R/R_nom':>8} {'JSD_nom/JSD':>11}")
    for method, e in table.items():
        r, j = e["rejection"], e["jsd_inverse"]
        print(
            f"{method:<15} {r['mean']:>12.2f} +- {r['std'] or 0:<5.2f} "
            f"{j['mean']:>12.2f} +- {j['std'] or 0:<5.2f} "
            f"{r['ratio_to_nominal']:>8.2f} {j['ratio_to_nominal']:>11.2f}"
        )
    goal = {
        m: table[m]["jsd_inverse"]["ratio_to_nominal"] >= 5
        and table[m]["rejection"]["ratio_to_nominal"] >= 0.5
        for m in table
        if m != "nominal"
    }
    print(f"goal (>= 5x nominal 1/JSD, >= 50% nominal rejection): {goal}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(table, RESULTS / f"{args.name}.png")
    write_results(
        args.name,
        {
            "sample": {"name": "w-vs-qcd", "jets_per_class": args.jets, "seed": SAMPLE_SEED},
            "qcd_test_sample": {"jets": args.qcd_jets, "seed": SAMPLE_SEED + 1},
            "qcd_ddt_sample": {"jets": args.ddt_qcd_jets, "seed": SAMPLE_SEED + 2},
            "epochs": args.epochs,
            "seeds": args.seeds,
            "generate_s": generate_s,
            "per_seed": per_seed,
            "table": table,
            "goal_met": goal,
            "load_average": os.getloadavg(),
        },
    )


if __name__ == "__main__":
    main()
