"""FastSim vs FullSim, and the refinement of FastSim to FullSim quality (docs/refinement.md).

- ``cost``: jets/s of the detector step alone (``apply_detector`` vs ``fast_response`` on
  the same Pythia particles, interleaved, jets counted after clustering each chain's
  candidates) and of the whole chain (Pythia + detector + jet building, Pythia timed
  once per batch and counted in both), for light-quark (``uds``) and b (``ttbar``) events
  of the ``ak4-flavour`` definition (after one untimed batch: the look-up tables each
  chain builds once per process); also the wall-clock jets/s of the two
  ``heptagon generate ak4-flavour`` runs of ``agreement``.
- ``agreement``: ``ak4-flavour`` generated with ``--detector full`` and ``fast`` (the
  same seed: the same events), a flavour tagger (``configs/ak4_bdt.yaml``, trained on a
  FullSim sample of another seed, exported, and run with ``heptagon predict`` on the
  others) and its four CMS-style discriminants BvsAll = b, CvsL = c / (c + uds + g),
  CvsB = c / (c + b), QvsG = uds / (uds + g). A second pair of samples (``--train-jets``,
  another seed) trains the refinement (``heptagon refine``'s ``train_refiner``, MDMM,
  ``--seeds`` seeds), the first pair (``--jets``) tests it: per flavour and generator-pT
  bin the 1D Wasserstein distance and the KS statistic of each discriminant to FullSim
  (FastSim vs refined), per flavour the
  largest absolute difference of the 4 x 4 correlation matrices, and the tagging
  efficiency at FullSim working points (BvsAll and CvsL cuts giving 10% and 1% FullSim
  light-jet (uds + g) efficiency) with FullSim's binomial error; the bins where FastSim
  is off by more than that error, and how many of them the refinement brings within it.
- ``scan``: MDMM against a fixed-weight sum ``mse + w mmd`` for a scan of ``w`` (one
  seed): the test-set MMD (FullSim standardised latent space, the constraint's own
  measure) and MSE of each, and whether it meets MDMM's bound.

    python benchmarks/refinement.py [--jets 250] [--train-jets 500] [--seeds 0 1 2]
        [--epochs 60] [--part cost|agreement|all] [--batches 8] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from _common import write_results

from heptagon.apps.refine.jets import Jets, paired_jets
from heptagon.apps.refine.train import RefineOptions, Refiner, train_refiner
from heptagon.generate.detector import DetectorConfig, apply_detector
from heptagon.generate.fastsim import FastDetectorConfig, fast_response
from heptagon.generate.jets import FLAVOURS, JetSelection, build_jets
from heptagon.generate.processes import get_process, get_sample_set
from heptagon.generate.run import (
    BATCH_EVENTS,
    GenerateOptions,
    generate,
    make_pythia,
    pythia_settings,
)
from heptagon.generate.truth import EventRecord
from heptagon.train.mdmm import mmd

DISCRIMINANTS = ("BvsAll", "CvsL", "CvsB", "QvsG")
PT_BINS = (30.0, 50.0, 100.0, 1000.0)
OBSERVERS = "event,jet_pt,jet_gen_pt,jet_gen_eta,jet_gen_phi,label_b,label_c,label_uds,label_g"
SCAN_WEIGHTS = (0.0, 1.0, 10.0, 100.0)


def _heptagon(*args: str) -> None:
    cmd = [sys.executable, "-m", "heptagon", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


# ------------------------------------------------------------------------------- cost
def cost(batches: int) -> dict[str, Any]:
    """Detector-step and whole-chain jets/s of both chains on the same events."""
    ak4 = get_sample_set("ak4-flavour")
    sel = JetSelection(ak4.radius, ak4.pt_min, ak4.pt_max, ak4.eta_max)
    chains = {
        "full": (apply_detector, DetectorConfig()),
        "fast": (fast_response, FastDetectorConfig()),
    }
    out: dict[str, Any] = {"events_per_batch": BATCH_EVENTS, "batches": batches}
    for cls in ("uds", "b"):
        pythia = make_pythia(tuple(pythia_settings(get_process(cls), ak4.pt_min, True, 5)))
        t_pythia = 0.0
        t_det = dict.fromkeys(chains, 0.0)
        t_jets = dict.fromkeys(chains, 0.0)
        n_jets = dict.fromkeys(chains, 0)
        rngs = {c: np.random.default_rng(1) for c in chains}
        # one untimed batch: the look-up tables both chains build once per process
        warm = EventRecord.from_batch(pythia.nextBatch(BATCH_EVENTS).prt).final_state()
        for response, cfg in chains.values():
            response(warm, cfg, np.random.default_rng(0))  # type: ignore[operator]
        for _ in range(batches):
            t0 = time.perf_counter()
            particles = EventRecord.from_batch(pythia.nextBatch(BATCH_EVENTS).prt).final_state()
            t_pythia += time.perf_counter() - t0
            for name, (response, cfg) in chains.items():
                t0 = time.perf_counter()
                candidates = response(particles, cfg, rngs[name])  # type: ignore[operator]
                t1 = time.perf_counter()
                jets = build_jets(candidates, sel)
                t_jets[name] += time.perf_counter() - t1
                t_det[name] += t1 - t0
                n_jets[name] += len(jets["jet_pt"])
        out[cls] = {
            name: {
                "jets": n_jets[name],
                "detector_s": t_det[name],
                "detector_jets_per_s": n_jets[name] / t_det[name],
                "chain_s": t_pythia + t_det[name] + t_jets[name],
                "chain_jets_per_s": n_jets[name] / (t_pythia + t_det[name] + t_jets[name]),
            }
            for name in chains
        } | {
            "pythia_s": t_pythia,
            "detector_speedup": (n_jets["fast"] / t_det["fast"]) / (n_jets["full"] / t_det["full"]),
            "chain_speedup": _chain_speedup(n_jets, t_pythia, t_det, t_jets),
        }
    return out


def _chain_speedup(
    n: dict[str, int], pythia: float, det: dict[str, float], jets: dict[str, float]
) -> float:
    """Whole-chain jets/s of fast over full."""
    rate = {c: n[c] / (pythia + det[c] + jets[c]) for c in n}
    return rate["fast"] / rate["full"]


# -------------------------------------------------------------------------- samples
def samples(work: Path, jets: int, train_jets: int) -> dict[str, Any]:
    """The test pair (seed 11), the training pair (seed 13) and the tagger's own FullSim
    sample (seed 12); reused when present."""
    made = {}
    plan = (
        ("ak4-full", 11, "full", jets),
        ("ak4-fast", 11, "fast", jets),
        ("ak4-train-full", 13, "full", train_jets),
        ("ak4-train-fast", 13, "fast", train_jets),
        ("ak4-tagger", 12, "full", jets),
    )
    for name, seed, chain, n in plan:
        opts = GenerateOptions(
            sample="ak4-flavour",
            jets=n,
            seed=seed,
            out=work / name,
            shard_size=n,
            detector=chain,
        )
        summary = generate(opts, show_progress=False)
        made[name] = {
            "jets_per_class": n,
            "wall_s": summary.wall_s,
            "jets_per_s": summary.jets_per_s,
            "reused": summary.skipped_shards == len(summary.manifest.files),
        }
    return made


def tagger(work: Path) -> float:
    """Train, export and run the BDT tagger; write the discriminant files
    ``disc-<chain>-<train|test>``; return its wall time."""
    t0 = time.perf_counter()
    run = work / "tagger-run"
    if not (run / "model.onnx").exists():
        configs = Path(__file__).resolve().parents[1] / "src" / "heptagon" / "configs"
        _heptagon(
            "train", str(configs / "ak4_bdt.yaml"), "--data", str(work / "ak4-tagger"),
            "--out", str(run),
        )  # fmt: skip
        _heptagon("export", str(run))
    for chain in ("full", "fast"):
        for part, sample in (("test", f"ak4-{chain}"), ("train", f"ak4-train-{chain}")):
            scores = work / f"scores-{part}-{chain}"
            _heptagon(
                "predict", str(run / "model.onnx"), str(work / sample), "--out", str(scores),
                "--observers", OBSERVERS,
            )  # fmt: skip
            out = work / f"disc-{chain}-{part}"
            out.mkdir(exist_ok=True)
            for f in sorted(scores.glob("*.parquet")):
                t = pq.read_table(f)
                p = {k: t[f"score_{k}"].to_numpy().astype(np.float64) for k in FLAVOURS}
                disc = {
                    "BvsAll": p["b"] / (p["b"] + p["c"] + p["uds"] + p["g"]),
                    "CvsL": p["c"] / (p["c"] + p["uds"] + p["g"]),
                    "CvsB": p["c"] / (p["c"] + p["b"]),
                    "QvsG": p["uds"] / (p["uds"] + p["g"]),
                }
                for k, v in disc.items():
                    t = t.append_column(k, pa.array(np.nan_to_num(v, nan=0.5).astype(np.float32)))
                pq.write_table(t, out / f.name)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------ agreement
def _ks(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    ca = np.searchsorted(np.sort(a), grid, side="right") / a.size
    cb = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.abs(ca - cb).max())


def _w1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.sort(a) - np.sort(b)).mean())


def _wps(full: Jets) -> dict[str, float]:
    """FullSim cuts on BvsAll and CvsL at 10% and 1% light-jet (uds + g) efficiency."""
    light = full.flavour >= 2
    out = {}
    for i, disc in ((0, "BvsAll"), (1, "CvsL")):
        for eff in (0.10, 0.01):
            out[f"{disc}>{eff:g}L"] = float(np.quantile(full.values[light, i], 1 - eff))
    return out


def agreement(full: Jets, fast: np.ndarray, refined: np.ndarray) -> dict[str, Any]:
    """Distances, correlations and efficiencies of FastSim and refined vs FullSim."""
    bins: list[dict[str, Any]] = []
    wps = _wps(full)
    off = fixed = 0
    for f, flav in enumerate(FLAVOURS):
        for lo, hi in pairwise(PT_BINS):
            sel = (full.flavour == f) & (full.gen_pt >= lo) & (full.gen_pt < hi)
            n = int(sel.sum())
            if n < 5:
                continue
            row: dict[str, Any] = {"flavour": flav, "gen_pt": [lo, hi], "jets": n}
            for i, d in enumerate(DISCRIMINANTS):
                a = full.values[sel, i]
                row[d] = {
                    "w1_fast": _w1(fast[sel, i], a),
                    "w1_refined": _w1(refined[sel, i], a),
                    "ks_fast": _ks(fast[sel, i], a),
                    "ks_refined": _ks(refined[sel, i], a),
                }
            effs = {}
            for wp, cut in wps.items():
                i = DISCRIMINANTS.index(wp.split(">")[0])
                e = {
                    k: float(np.mean(v[sel, i] > cut))
                    for k, v in (("full", full.values), ("fast", fast), ("refined", refined))
                }
                err = float(np.sqrt(max(e["full"] * (1 - e["full"]), 1.0 / n) / n))
                fast_off = abs(e["fast"] - e["full"]) > err
                ref_in = abs(e["refined"] - e["full"]) <= err
                off += fast_off
                fixed += fast_off and ref_in
                effs[wp] = e | {"full_err": err, "fast_off": fast_off, "refined_within": ref_in}
            row["efficiency"] = effs
            bins.append(row)
    corr = {}
    for f, flav in enumerate(FLAVOURS):
        sel = full.flavour == f
        if sel.sum() < 5:
            continue
        c_full = np.corrcoef(full.values[sel].T)
        corr[flav] = {
            "max_abs_diff_fast": float(np.nanmax(np.abs(np.corrcoef(fast[sel].T) - c_full))),
            "max_abs_diff_refined": float(np.nanmax(np.abs(np.corrcoef(refined[sel].T) - c_full))),
        }
    w1 = {
        k: float(np.mean([b[d][k] for b in bins for d in DISCRIMINANTS]))
        for k in ("w1_fast", "w1_refined", "ks_fast", "ks_refined")
    }
    return {
        "working_points": wps,
        "mean_over_bins": w1,
        "correlation": corr,
        "efficiency_bins_fast_off": off,
        "of_which_refined_within_error": fixed,
        "bins": bins,
    }


def _test_mmd(refiner: Refiner, full: Jets, values: np.ndarray) -> tuple[float, float]:
    """MMD and MSE of ``values`` vs FullSim in the refiner's standardised latent space."""
    net = refiner.net
    with torch.no_grad():
        z_full = net.standardised(net.to_latent(torch.as_tensor(full.values, dtype=torch.float32)))
        z = net.standardised(net.to_latent(torch.as_tensor(values, dtype=torch.float32)))
        return float(mmd(z, z_full)), float((z - z_full).pow(2).mean())


def refine_runs(work: Path, seeds: list[int], epochs: int) -> dict[str, Any]:
    """MDMM refinement per seed, and the fixed-weight scan (first seed)."""
    cols = DISCRIMINANTS
    full, fast = paired_jets(str(work / "disc-full-test"), str(work / "disc-fast-test"), cols)
    train_pairs = paired_jets(str(work / "disc-full-train"), str(work / "disc-fast-train"), cols)
    out: dict[str, Any] = {
        "train_pairs": int(train_pairs[0].event.size),
        "test_pairs": int(full.event.size),
        "seeds": {},
    }
    m = fast.matched
    assert m.all()
    for seed in seeds:
        opts = RefineOptions(columns=cols, bounded=cols, epochs=epochs, batch=128, seed=seed)
        t0 = time.perf_counter()
        refiner = train_refiner(str(work / "disc-full-train"), str(work / "disc-fast-train"), opts)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        refined = refiner.refine(fast.values, fast.conditions())
        apply_s = time.perf_counter() - t0
        test_mmd, test_mse = _test_mmd(refiner, full, refined)
        fast_mmd, fast_mse = _test_mmd(refiner, full, fast.values)
        out["seeds"][str(seed)] = {
            "train_s": train_s,
            "apply_jets_per_s": fast.event.size / apply_s,
            "mmd_max": refiner.mmd_max,
            "final_multiplier": refiner.history[-1]["multiplier"],
            "test_mmd": {"fast": fast_mmd, "refined": test_mmd},
            "test_mse": {"fast": fast_mse, "refined": test_mse},
            "agreement": agreement(full, fast.values, refined),
        }
    scan = {}
    first = seeds[0]
    for w in SCAN_WEIGHTS:
        opts = RefineOptions(
            columns=cols, bounded=cols, epochs=epochs, batch=128, seed=first, mmd_weight=w
        )
        refiner = train_refiner(str(work / "disc-full-train"), str(work / "disc-fast-train"), opts)
        test_mmd, test_mse = _test_mmd(
            refiner, full, refiner.refine(fast.values, fast.conditions())
        )
        scan[f"w={w:g}"] = {"test_mmd": test_mmd, "test_mse": test_mse}
    mdmm = out["seeds"][str(first)]
    out["scan"] = {
        "fixed_weight": scan,
        "mdmm": {
            "test_mmd": mdmm["test_mmd"]["refined"],
            "test_mse": mdmm["test_mse"]["refined"],
            "mmd_max": mdmm["mmd_max"],
        },
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jets", type=int, default=250, help="jets per class: test, tagger")
    parser.add_argument("--train-jets", type=int, default=500, help="jets per class: training")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batches", type=int, default=8, help="Pythia batches for cost")
    parser.add_argument("--part", choices=("cost", "agreement", "all"), default="all")
    parser.add_argument("--workdir", type=Path, default=None, help="keep samples here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part in ("cost", "all"):
        figures = {"sizes": {"batches": args.batches}, **cost(args.batches)}
        write_results("refinement", figures, part="cost")
    if args.part in ("agreement", "all"):
        work = args.workdir or Path(tempfile.mkdtemp(prefix="refinement-"))
        work.mkdir(parents=True, exist_ok=True)
        sizes = {"jets_per_class": args.jets, "train_jets_per_class": args.train_jets,
                 "seeds": args.seeds, "epochs": args.epochs}  # fmt: skip
        figures = {"sizes": sizes, "generate": samples(work, args.jets, args.train_jets)}
        figures["tagger_s"] = tagger(work)
        figures["refinement"] = refine_runs(work, args.seeds, args.epochs)
        write_results("refinement", figures, part="agreement")


if __name__ == "__main__":
    main()
