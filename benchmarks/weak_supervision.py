"""Weak supervision: CWoLa and learning from label proportions vs full supervision.

    python benchmarks/weak_supervision.py [--jets 10000] [--seeds 2] [--epochs 10]
                                          [--fractions 0.8 0.65 0.55]
                                          [--out /tmp/decorrelation] [--name weak_supervision]
    python benchmarks/weak_supervision.py --qg [--qg-jets 3500] [--seeds 3] [--epochs 10]

Two parts, each written into ``benchmarks/results/<name>.json`` beside the other's figures
with its own command, commit and machine: ``figures.w_qcd`` and ``figures.qg``.

W / QCD (the default): synthetic mixtures of the W and QCD jets of
benchmarks/decorrelation.py's ``w-vs-qcd`` sample (same ``--out``, reused), at chosen
fractions. What runs, all in this process:

- the sample's jets split 70 / 30 by position into a pool and a test set (true labels);
- per W fraction ``f1`` (``--fractions``) two disjoint mixed samples of equal size from the
  pool, M1 with a W fraction ``f1`` and M2 with ``1 - f1`` (the rule of ``heptagon data
  mix``, ``heptagon.data.derive.mixture_indices``), written with one-hot
  ``label_M1`` / ``label_M2`` (``configs/data/w_jet_mixed.yaml``);
- per fraction and seed, ``heptagon.train.train`` of CWoLa (``configs/ws_cwola.yaml``: M1
  vs M2 with cross entropy) and LLP (``configs/ws_llp.yaml``, ``fractions: [1 - f1,
  f1]``), and per seed the fully supervised network on the same features and the whole
  pool (``configs/w_md_nominal.yaml``); all scored by ``heptagon.evaluate.evaluate`` on the
  test set with the true labels.

Quark / gluon (``--qg``): the natural mixtures the issue asks for, made by the generate
stage: the ``zjet-vs-dijet`` sample (``--qg-jets`` jets per class, R = 0.4, pT 200-250
GeV, |y| < 1.7, MPI on), Z(->nu nu) + jet jets (quark-enriched) and QCD dijet jets
(gluon-enriched), each labelled by its production process, with the true flavour of its
hard parton in ``jet_parton_id`` (quark: d, u, s, c, b). The jets split 70 / 30 into a
pool and a test set as above; on the pool, CWoLa trains Z + jet (M1) vs dijet (M2)
without any flavour information, LLP the same with the two mixtures' quark fractions
measured on the pool (LLP needs them; CWoLa does not), and the supervised network the
true q / g labels (all ``configs/ws_qg.yaml``: substructure only, jet_nparticles,
m_SD, tau21, pT_D, girth; ``configs/data/qg_jet_mixed.yaml``); every network is scored on
the test set with the true q / g labels. Generating 3500 jets per class takes about 9
minutes on one core (Z + jet ~6.3, dijet ~4.4 Pythia events per selected jet).

Printed: the AUC on true labels, mean +- spread over seeds, per method (and fraction), the
gap to the supervised AUC, and for ``--qg`` the measured quark fractions of the two
mixtures (published: CWoLa matches full supervision when the mixtures differ enough,
arXiv:1708.02949).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from _common import write_results

from heptagon.artifacts.manifest import JetManifest, load_manifest
from heptagon.data.derive import mixture_indices
from heptagon.evaluate.run import evaluate
from heptagon.generate.run import GenerateOptions, generate
from heptagon.train import train

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
SAMPLE_SEED = 1  # benchmarks/decorrelation.py's sample
BRANCHES = ["event", "jet_pt", "jet_eta", "jet_sdmass", "jet_tau1", "jet_tau2", "jet_tau3",
            "jet_tau4", "jet_nparticles", "label_Wqq", "label_QCD"]  # fmt: skip
QG_BRANCHES = ["event", "jet_pt", "jet_eta", "jet_sdmass", "jet_tau1", "jet_tau2",
               "jet_nparticles", "jet_parton_id", "label_Zjet", "label_dijet", "part_px",
               "part_py", "part_deta", "part_dphi"]  # fmt: skip
POOL_FRACTION = 0.7


def write(path: Path, table: pa.Table, m1: np.ndarray) -> None:
    """``table`` with ``label_M1`` (``m1``) and ``label_M2`` (its negation), as Parquet."""
    table = table.append_column("label_M1", pa.array(m1)).append_column("label_M2", pa.array(~m1))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def mixtures(pool: pa.Table, f1: float, out: Path, rng: np.random.Generator) -> Path:
    """M1 (W fraction ``f1``) and M2 (``1 - f1``), disjoint and of equal size."""
    is_w = pool["label_Wqq"].to_numpy(zero_copy_only=False)
    m1, m2 = mixture_indices(is_w, (f1, 1 - f1), rng)
    index = np.concatenate([m1, m2])
    label = np.concatenate([np.ones(len(m1), bool), np.zeros(len(m2), bool)])
    order = rng.permutation(len(index))
    directory = out / f"mixed-{f1:g}"
    write(directory / "mixed.parquet", pool.take(index[order]), label[order])
    return directory


def sample_jets(options: GenerateOptions, branches: list[str]) -> pa.Table:
    """Generate (or reuse) a sample; its jets with ``branches``, shuffled."""
    generate(options)
    shards = sorted(options.out.glob("shards/*.parquet"))
    jets = pa.concat_tables([pq.read_table(f, columns=branches) for f in shards])
    return jets.take(np.random.default_rng(0).permutation(len(jets)))


def split(jets: pa.Table, truth: str | np.ndarray, files: Path) -> tuple[pa.Table, Path, Path]:
    """Pool (first 70 %) and test set; both written with the true labels (``truth``: a
    boolean branch or array, signal true) as ``label_M1``. Returns (pool, its dir, test dir)."""
    is_signal = jets[truth].to_numpy(zero_copy_only=False) if isinstance(truth, str) else truth
    cut = int(POOL_FRACTION * len(jets))
    shutil.rmtree(files, ignore_errors=True)
    write(files / "test" / "test.parquet", jets.slice(cut), is_signal[cut:])
    write(files / "pool" / "pool.parquet", jets.slice(0, cut), is_signal[:cut])
    return jets.slice(0, cut), files / "pool", files / "test"


def auc(config: str, data: Path, run: Path, overrides: list[str], test_dir: Path) -> float:
    """Train ``config`` on ``data`` into ``run``; its AUC on ``test_dir``'s true labels."""
    shutil.rmtree(run, ignore_errors=True)
    train(CONFIGS / config, data, run, [*overrides, "train.progress=false"])
    value: float = evaluate(run, [test_dir], n_boot=2).metrics.to_json()["auc"]["value"]
    print(f"{run.name}: AUC {value:.4f}", flush=True)
    return value


def stats(values: list[float]) -> dict[str, float]:
    """Mean and standard deviation over seeds."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def quark_gluon(args: argparse.Namespace) -> None:
    """CWoLa, LLP and full supervision on the Z + jet and dijet mixtures (``--qg``)."""
    options = GenerateOptions(
        sample="zjet-vs-dijet",
        jets=args.qg_jets,
        seed=SAMPLE_SEED,
        out=args.out / f"zjet-vs-dijet-{args.qg_jets}",
        jobs=os.cpu_count() or 1,
    )
    jets = sample_jets(options, QG_BRANCHES)
    manifest = load_manifest(options.out)
    assert isinstance(manifest, JetManifest)
    made = manifest.classes
    quark = np.abs(jets["jet_parton_id"].to_numpy()) != 21
    pool, pool_dir, test_dir = split(jets, quark, args.out / "weak-qg")
    zjet = pool["label_Zjet"].to_numpy(zero_copy_only=False)
    pool_quark = quark[: len(pool)]
    fractions = {"Zjet": float(pool_quark[zjet].mean()), "dijet": float(pool_quark[~zjet].mean())}
    print(
        f"quark fraction: Z + jet {fractions['Zjet']:.3f} ({zjet.sum()} jets), "
        f"dijet {fractions['dijet']:.3f} ({(~zjet).sum()} jets)",
        flush=True,
    )
    mixed = args.out / "weak-qg" / "mixed"
    write(mixed / "mixed.parquet", pool, zjet)
    llp = (
        f"train.loss={{name: llp, fractions: [{fractions['dijet']:.4f}, {fractions['Zjet']:.4f}]}}"
    )
    results: dict[str, list[float]] = {"supervised": [], "cwola": [], "llp": []}
    for seed in range(args.seeds):
        common = [f"train.seed={seed}", f"train.epochs={args.epochs}"]
        for method, data, extra in (
            ("supervised", pool_dir, []),
            ("cwola", mixed, []),
            ("llp", mixed, [llp]),
        ):
            run = args.out / "weak-qg" / f"{method}-{seed}"
            results[method].append(auc("ws_qg.yaml", data, run, [*common, *extra], test_dir))
    table = {m: stats(v) for m, v in results.items()}
    print(
        f"\nquark vs gluon from Z + jet vs dijet mixtures, {args.seeds} seeds, AUC on true "
        f"q / g labels ({len(jets) - len(pool)} test jets)"
    )
    for method, row in table.items():
        row["gap_to_supervised"] = table["supervised"]["mean"] - row["mean"]
        print(
            f"{method:<11} {row['mean']:.4f} +- {row['std']:.4f}   "
            f"gap {row['gap_to_supervised']:+.4f}"
        )
    write_results(
        args.name,
        {
            "sample": {
                "name": "zjet-vs-dijet",
                "jets_per_class": args.qg_jets,
                "seed": SAMPLE_SEED,
                "selection": "R = 0.4, pT 200-250 GeV, |y| < 1.7, MPI",
                "pythia_events_per_jet": {
                    c: made[c].events_generated / made[c].jets for c in made
                },
            },
            "quark_fraction": fractions,
            "quark_definition": "hard parton |id| in 1-5 (gluon: 21), matched within R",
            "features": ["jet_nparticles", "jet_sdmass", "jet_tau21", "jet_ptd", "jet_girth"],
            "llp_note": "LLP is given the quark fractions measured on the pool; CWoLa is not",
            "jets": {"pool": len(pool), "test": len(jets) - len(pool)},
            "epochs": args.epochs,
            "seeds": args.seeds,
            "auc": results,
            "table": table,
            "load_average": os.getloadavg(),
        },
        part="qg",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=10_000, help="jets per class")
    parser.add_argument("--seeds", type=int, default=None, help="default 2 (W), 3 (--qg)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.8, 0.65, 0.55])
    parser.add_argument("--qg", action="store_true", help="quark / gluon: Z + jet vs dijet")
    parser.add_argument("--qg-jets", type=int, default=3500, help="jets per class, --qg")
    parser.add_argument("--out", type=Path, default=Path("/tmp/decorrelation"))
    parser.add_argument("--name", default="weak_supervision")
    args = parser.parse_args()

    torch.set_num_threads(1)
    if args.qg:
        args.seeds = 3 if args.seeds is None else args.seeds
        quark_gluon(args)
        return
    args.seeds = 2 if args.seeds is None else args.seeds
    options = GenerateOptions(
        sample="w-vs-qcd",
        jets=args.jets,
        seed=SAMPLE_SEED,
        out=args.out / f"sample-{args.jets}",
        jobs=os.cpu_count() or 1,
    )
    jets = sample_jets(options, BRANCHES)
    files = args.out / "weak"
    pool, pool_dir, test_dir = split(jets, "label_Wqq", files)
    rng = np.random.default_rng(1)
    mixed = {f1: mixtures(pool, f1, files, rng) for f1 in args.fractions}

    results: dict[str, Any] = {"supervised": [], "cwola": {}, "llp": {}}
    for seed in range(args.seeds):
        common = [f"train.seed={seed}", f"train.epochs={args.epochs}"]
        results["supervised"].append(
            auc("w_md_nominal.yaml", pool_dir, files / f"supervised-{seed}", common, test_dir)
        )
        for f1, data in mixed.items():
            key = f"{f1:g}"
            results["cwola"].setdefault(key, []).append(
                auc("ws_cwola.yaml", data, files / f"cwola-{f1:g}-{seed}", common, test_dir)
            )
            llp = [*common, f"train.loss.fractions=[{1 - f1:g}, {f1:g}]"]
            results["llp"].setdefault(key, []).append(
                auc("ws_llp.yaml", data, files / f"llp-{f1:g}-{seed}", llp, test_dir)
            )

    supervised = stats(results["supervised"])
    table: dict[str, Any] = {"supervised": supervised}
    print(
        f"\nW vs QCD mixtures, {args.seeds} seeds; supervised AUC "
        f"{supervised['mean']:.4f} +- {supervised['std']:.4f}"
    )
    print(f"{'f1 / f2':<12} {'CWoLa AUC':>18} {'gap':>8} {'LLP AUC':>18} {'gap':>8}")
    for f1 in args.fractions:
        key = f"{f1:g}"
        row = {m: stats(results[m][key]) for m in ("cwola", "llp")}
        for m in row:
            row[m]["gap_to_supervised"] = supervised["mean"] - row[m]["mean"]
        table[key] = row
        print(
            f"{f1:g} / {1 - f1:<6g} "
            f"{row['cwola']['mean']:>10.4f} +- {row['cwola']['std']:.4f} "
            f"{row['cwola']['gap_to_supervised']:>8.4f} "
            f"{row['llp']['mean']:>10.4f} +- {row['llp']['std']:.4f} "
            f"{row['llp']['gap_to_supervised']:>8.4f}"
        )
    write_results(
        args.name,
        {
            "sample": {"name": "w-vs-qcd", "jets_per_class": args.jets, "seed": SAMPLE_SEED},
            "note": "synthetic W / QCD mixtures at chosen fractions",
            "epochs": args.epochs,
            "seeds": args.seeds,
            "auc": results,
            "table": table,
            "load_average": os.getloadavg(),
        },
        part="w_qcd",
    )


if __name__ == "__main__":
    main()
