"""Event-level ttH analysis: BDT and DNNs on event features, multi-class, Higgs-pT regression.

    python benchmarks/analysis.py [--events 5000] [--dy-events 20000] [--seeds 3]
                                  [--epochs 8] [--lumi-fb 300]
                                  [--out /tmp/analysis-bench] [--name analysis]

What runs, all in this process, through heptagon's own stages:

- one ``tth-analysis`` sample (``heptagon generate-events``: ttH, ttbar and Drell-Yan at
  14 TeV, MPI on, ``--events`` per process, 2 processes), generated once into
  ``OUT/sample-<events>``, and a separate ``dy`` sample of ``--dy-events`` (Drell-Yan
  passes the loose region ~0.1% of the time) in ``OUT/dy-<dy-events>`` that replaces the
  first sample's Drell-Yan shards (resumable: finished shards are reused);
- a skim of both (``OUT/skim-*``): the events of the loose region (>= 1 lepton, >= 4
  jets, as the data configs' ``region_loose``), written with the same file stems and event
  numbers, so every event lands in the same train / val / test split as unskimmed (the
  split hashes stem and event number) and keeps its ``xsec_weight_pb``; only the reading
  gets ~15x cheaper (the configs still apply the region);
- per seed (0 .. ``--seeds`` - 1): ``heptagon.train.train`` then
  ``heptagon.evaluate.evaluate`` (test split) of the ready experiments
  ``configs/analysis_bdt.yaml`` and ``analysis_dnn.yaml`` (ttH vs ttbar + DY),
  ``analysis_dnn_multiclass.yaml`` (ttH / ttbar / DY, class-weighted) and
  ``analysis_higgs_pt_mlp.yaml`` / ``analysis_higgs_pt_cnn.yaml`` (Higgs pT in ttH), all in
  the loose region (>= 1 lepton, >= 4 jets). Torch runs train ``--epochs`` epochs with
  early stopping (patience from the config).

Printed and recorded (mean +- standard deviation over seeds; one run's bootstrap error on
the test split beside it):

- AUC of ttH vs ttbar and of ttH vs DY for the binary BDT and DNN (the test split's ttH
  events against each background separately);
- multi-class accuracy (unweighted; ``metrics.json``'s is weighted by the class weights);
- Higgs-pT resolution (IQR/2 over median of predicted / true pT), dense vs 1D CNN;
- S/sqrt(B) in the loose region and after the best cut on each binary score, at
  ``--lumi-fb`` with Pythia's LO cross sections (``xsec_weight_pb``; the test split's
  share of each process's events, from the split hash, scales its yield), by
  ``heptagon.evaluate.yields.expected_yields`` (what ``heptagon evaluate --lumi`` runs).
  Illustrative: the only backgrounds are ttbar (standing in for ttW / ttZ, which Pythia
  lacks) and DY. The best cut keeps at least ``MIN_BKG`` raw background events.

Pythia makes ttbar / ttH at only tens of events per second per core (with MPI), so the
sample is small; DY events rarely have 4 jets, so the ttH-vs-DY figures rest on a few
dozen DY events. Results go to ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
from _common import write_results

from heptagon.data.split import Split
from heptagon.evaluate.inference import Predictions
from heptagon.evaluate.run import evaluate
from heptagon.evaluate.yields import expected_yields
from heptagon.generate.events import EventOptions, generate_events
from heptagon.physics.metrics import accuracy, auc, bootstrap
from heptagon.train import train

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
SAMPLE_SEED = 1
RUNS = {
    "bdt": "analysis_bdt.yaml",
    "dnn": "analysis_dnn.yaml",
    "dnn_multiclass": "analysis_dnn_multiclass.yaml",
    "higgs_pt_mlp": "analysis_higgs_pt_mlp.yaml",
    "higgs_pt_cnn": "analysis_higgs_pt_cnn.yaml",
}


def run_one(name: str, seed: int, data: list[Path], out: Path, epochs: int) -> Path:
    """Train and evaluate one experiment (reused when already evaluated; torch runs per
    epoch count)."""
    run = out / (name if name == "bdt" else f"{name}-e{epochs}") / f"seed{seed}"
    if not (run / "eval" / "metrics.json").exists():
        overrides = [f"train.seed={seed}"]
        overrides += [f"model.options.seed={seed}"] if name == "bdt" else [f"train.epochs={epochs}"]
        train(CONFIGS / RUNS[name], data, run, overrides=overrides)
        evaluate(run)
    return run


def skim(files: list[Path], out: Path) -> Path:
    """The loose-region events of ``files`` in ``out`` (same file names, all branches)."""
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        if (out / f.name).exists():
            continue
        events = ak.from_parquet(f)
        n_lep = ak.num(events.Muon_pt) + ak.num(events.Electron_pt)
        keep = (n_lep >= 1) & (ak.num(events.Jet_pt) >= 4)
        tmp = out / f".{f.name}.tmp"
        ak.to_parquet(events[keep], tmp, compression="zstd")
        os.replace(tmp, out / f.name)
    return out


def test_fractions(samples: dict[str, Path]) -> dict[str, float]:
    """The share of each process's generated events in the test split (the split hash);
    ``samples``: the dataset dir each process is taken from."""
    split, share = Split(), {}
    for cls, sample in samples.items():
        manifest = json.loads((sample / "manifest.json").read_text())
        files = [f for f in manifest["files"] if f["class"] == cls]
        n_test = sum(
            int(split.mask("test", Path(f["file"]).stem, np.arange(f["entries"])).sum())
            for f in files
        )
        share[cls] = n_test / sum(f["entries"] for f in files)
    return share


def predictions(run: Path) -> dict[str, np.ndarray]:
    """The test-split predictions ``evaluate`` wrote (``prob_<class>``, label, observers)."""
    table = pq.read_table(run / "eval" / "predictions_test.parquet")
    return {name: table[name].to_numpy() for name in table.column_names}


def binary_figures(run: Path, share: dict[str, float], lumi_fb: float) -> dict[str, Any]:
    """AUC vs each background, and S/sqrt(B) before and after the best score cut."""
    p = predictions(run)
    score, is_tth = p["prob_tth"], p["label"] == 1
    process = np.where(is_tth, "tth", np.where(p["label_dy"] > 0, "dy", "ttbar"))
    out: dict[str, Any] = {}
    for bkg in ("ttbar", "dy"):
        sel = is_tth | (process == bkg)
        s, y = score[sel], is_tth[sel]
        out[f"n_test_{bkg}"] = int((process == bkg).sum())
        if not out[f"n_test_{bkg}"]:
            continue
        boot = bootstrap(lambda i, s=s, y=y: [auc(s[i], y[i])], y, n_boot=50)
        out[f"auc_vs_{bkg}"] = auc(s, y)
        out[f"auc_vs_{bkg}_boot_err"] = float(np.nanstd(boot))
    out["n_test_tth"] = int(is_tth.sum())
    classes = [c.removeprefix("prob_") for c in p if c.startswith("prob_")]
    pred = Predictions.load(run / "eval" / "predictions_test.parquet", classes)
    y = expected_yields(pred, classes.index("tth"), lumi_fb, sample_fraction=share)
    s_region = y.region["tth"]
    b_region = sum(v for k, v in y.region.items() if k != "tth")
    out["S_region"], out["B_region"] = s_region, b_region
    out["S_over_sqrtB_region"] = s_region / float(np.sqrt(b_region))
    out["best_cut"] = y.best_cut
    out["S_best"] = y.passing["tth"]
    out["B_best"] = sum(v for k, v in y.passing.items() if k != "tth")
    out["S_over_sqrtB_best"] = y.s_over_sqrt_b
    return out


def multiclass_accuracy(run: Path) -> float:
    p = predictions(run)
    probs = np.stack([p["prob_tth"], p["prob_ttbar"], p["prob_dy"]], axis=1)
    return accuracy(probs.argmax(1), p["label"])


def regression_figures(run: Path) -> dict[str, Any]:
    m = json.loads((run / "eval" / "metrics.json").read_text())
    return {
        "resolution": m["resolution"]["value"],
        "resolution_boot_err": m["resolution"]["err"],
        "response_median": m["response_median"]["value"],
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--dy-events", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lumi-fb", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/analysis-bench"))
    parser.add_argument("--name", default="analysis")
    args = parser.parse_args()
    sample, dy = args.out / f"sample-{args.events}", args.out / f"dy-{args.dy_events}"
    jobs = min(2, os.cpu_count() or 1)
    t0 = time.perf_counter()
    gen = generate_events(
        EventOptions(
            sample="tth-analysis",
            events=args.events,
            seed=SAMPLE_SEED,
            out=sample,
            jobs=jobs,
            shard_size=1000,
        )
    )
    gen_dy = generate_events(
        EventOptions(
            sample="dy", events=args.dy_events, seed=SAMPLE_SEED + 1, out=dy, jobs=jobs,
            shard_size=2000,
        )
    )  # fmt: skip
    generate_s = time.perf_counter() - t0
    share = test_fractions({"tth": sample, "ttbar": sample, "dy": dy})
    shards = sorted((sample / "shards").glob("tt*.parquet")) + sorted(
        (dy / "shards").glob("*.parquet")
    )
    data = [skim(shards, args.out / f"skim-{args.events}-{args.dy_events}")]
    runs_dir = args.out / f"runs-skim-{args.events}-{args.dy_events}"
    figures: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name in RUNS:
        t = time.perf_counter()
        runs = [run_one(name, s, data, runs_dir, args.epochs) for s in range(args.seeds)]
        timings[name] = time.perf_counter() - t
        if name in ("bdt", "dnn"):
            per_seed = [binary_figures(r, share, args.lumi_fb) for r in runs]
        elif name == "dnn_multiclass":
            per_seed = [{"accuracy": multiclass_accuracy(r)} for r in runs]
        else:
            per_seed = [regression_figures(r) for r in runs]
        figures[name] = {
            k: summary([f[k] for f in per_seed])
            for k in per_seed[0]
            if all(isinstance(f.get(k), int | float) for f in per_seed)
        }
        print(f"{name}: {timings[name]:.0f} s")
    sigma = {c: v.sigma_gen_pb for c, v in gen.manifest.classes.items() if c != "dy"}
    sigma["dy"] = gen_dy.manifest.classes["dy"].sigma_gen_pb
    print(f"\nsample: {args.events} ttH and ttbar, {args.dy_events} DY; sigma_LO [pb] = {sigma}")
    print(f"luminosity {args.lumi_fb:g} fb^-1; test-split shares {share}\n")

    def fmt(d: dict[str, float], digits: int = 3) -> str:
        return f"{d['mean']:.{digits}f} +- {d['std']:.{digits}f}"

    header = ("model", "AUC ttH/ttbar", "AUC ttH/DY", "S/sqrtB region", "S/sqrtB best cut")
    print("{:16} {:>18} {:>18} {:>16} {:>18}".format(*header))
    for name in ("bdt", "dnn"):
        f = figures[name]
        vs_dy = fmt(f["auc_vs_dy"]) if "auc_vs_dy" in f else "no DY"
        row = (fmt(f["auc_vs_ttbar"]), vs_dy, f"{f['S_over_sqrtB_region']['mean']:.2f}")
        print(
            "{:16} {:>18} {:>18} {:>16} {:>18}".format(name, *row, fmt(f["S_over_sqrtB_best"], 2))
        )
    print(f"\nmulti-class DNN accuracy (unweighted): {fmt(figures['dnn_multiclass']['accuracy'])}")
    for name in ("higgs_pt_mlp", "higgs_pt_cnn"):
        f = figures[name]
        print(
            f"{name}: resolution (IQR/2 / median) {fmt(f['resolution'])}, "
            f"median response {fmt(f['response_median'])}"
        )
    path = write_results(
        args.name,
        {
            "events": {"tth": args.events, "ttbar": args.events, "dy": args.dy_events},
            "seeds": args.seeds,
            "epochs": args.epochs,
            "luminosity_fb": args.lumi_fb,
            "region": "loose: >= 1 isolated lepton (pT > 10 GeV), >= 4 jets (pT > 25 GeV)",
            "sigma_lo_pb": sigma,
            "test_split_share": share,
            "generate_s": generate_s,
            "generate_events_per_s": {"tth+ttbar+dy": gen.events_per_s, "dy": gen_dy.events_per_s},
            "train_evaluate_s": timings,
            "machine_shared": "yes: other agents' jobs ran on the same 2 cores (load ~10)",
            "figures": figures,
        },
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
