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

    python benchmarks/refinement.py [--jets 250] [--train-jets 500] [--tagger-jets 250]
        [--shard-size N] [--seeds 0 1 2] [--epochs 60] [--part cost|agreement|all]
        [--batches 8] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
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
from heptagon.apps.refine.train import RefineOptions, Refiner, distance, train_refiner
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
def samples(
    work: Path, jets: int, train_jets: int, tagger_jets: int, shard_size: int | None
) -> dict[str, Any]:
    """The test pair (seed 11), the training pair (seed 13) and the tagger's own FullSim
    sample (seed 12), in shards of ``shard_size`` jets (default: one per class); reused
    when present (finished shards too: a larger sample of the same seed and shard size
    keeps them)."""
    made = {}
    plan = (
        ("ak4-full", 11, "full", jets),
        ("ak4-fast", 11, "fast", jets),
        ("ak4-train-full", 13, "full", train_jets),
        ("ak4-train-fast", 13, "fast", train_jets),
        ("ak4-tagger", 12, "full", tagger_jets),
    )
    for name, seed, chain, n in plan:
        opts = GenerateOptions(
            sample="ak4-flavour",
            jets=n,
            seed=seed,
            out=work / name,
            shard_size=min(n, shard_size or n),
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


#: a flavour x pT bin is evaluated with at least this many jets (fewer: a binomial error
#: of a handful of jets means nothing)
MIN_BIN_JETS = 20
#: bootstrap resamplings of a bin's jets for the error of an efficiency difference
BOOTSTRAP = 400


def _efficiency_bin(
    full: np.ndarray, fast: np.ndarray, refined: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    """Efficiencies of one bin's jets passing a cut (boolean arrays of the same jets) and
    the two criteria: the issue's (FastSim off by more than FullSim's binomial error; the
    refined value within it) and the statistical one (the difference to FullSim over its
    own error, from resampling the bin's jets with their pairs: FastSim significantly off
    at |z| > 2, refined consistent at |z| <= 2). A perfect refinement still differs from
    FullSim on the same jets by FullSim's own detector noise, of the order of its error:
    the issue's criterion is expected to fail in some bins even then, the statistical one
    in ~5%."""
    n = full.size
    e = {k: float(v.mean()) for k, v in (("full", full), ("fast", fast), ("refined", refined))}
    err = float(np.sqrt(max(e["full"] * (1 - e["full"]), 1.0 / n) / n))
    idx = rng.integers(0, n, size=(BOOTSTRAP, n))
    boot_full = full[idx].mean(1)
    sd = {
        k: max(float(np.std(v[idx].mean(1) - boot_full)), 1.0 / n)
        for k, v in (("fast", fast), ("refined", refined))
    }
    z = {k: (e[k] - e["full"]) / sd[k] for k in sd}
    return e | {
        "full_err": err,
        "fast_off": abs(e["fast"] - e["full"]) > err,
        "refined_within": abs(e["refined"] - e["full"]) <= err,
        "z_fast": z["fast"],
        "z_refined": z["refined"],
        "fast_significant": abs(z["fast"]) > 2,
        "refined_consistent": abs(z["refined"]) <= 2,
    }


def agreement(full: Jets, fast: np.ndarray, refined: np.ndarray) -> dict[str, Any]:
    """Distances, correlations and efficiencies of FastSim and refined vs FullSim, on the
    test pairs (row i of each the same generator jet), per flavour and generator-pT bin."""
    bins: list[dict[str, Any]] = []
    wps = _wps(full)
    rng = np.random.default_rng(0)
    counts = dict.fromkeys(("off", "off_fixed", "significant", "significant_fixed", "all"), 0)
    counts["refined_within_all"] = 0
    counts["refined_significant_all"] = 0
    left: dict[str, list[str]] = {"issue": [], "statistical": [], "refined_significant": []}
    for f, flav in enumerate(FLAVOURS):
        for lo, hi in pairwise(PT_BINS):
            sel = (full.flavour == f) & (full.gen_pt >= lo) & (full.gen_pt < hi)
            n = int(sel.sum())
            if n < MIN_BIN_JETS:
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
                e = _efficiency_bin(
                    full.values[sel, i] > cut, fast[sel, i] > cut, refined[sel, i] > cut, rng
                )
                counts["all"] += 1
                counts["refined_within_all"] += e["refined_within"]
                counts["off"] += e["fast_off"]
                counts["off_fixed"] += e["fast_off"] and e["refined_within"]
                counts["significant"] += e["fast_significant"]
                counts["significant_fixed"] += e["fast_significant"] and e["refined_consistent"]
                counts["refined_significant_all"] += not e["refined_consistent"]
                where = f"{flav} {lo:g}-{hi:g} GeV {wp}"
                if e["fast_off"] and not e["refined_within"]:
                    left["issue"].append(where)
                if e["fast_significant"] and not e["refined_consistent"]:
                    left["statistical"].append(where)
                if not e["refined_consistent"]:
                    left["refined_significant"].append(where)
                effs[wp] = e
            row["efficiency"] = effs
            bins.append(row)
    corr = {}
    for f, flav in enumerate(FLAVOURS):
        sel = full.flavour == f
        if sel.sum() < MIN_BIN_JETS:
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
        "efficiency_points": counts["all"],
        "efficiency_bins_fast_off": counts["off"],
        "of_which_refined_within_error": counts["off_fixed"],
        "refined_within_error_all_points": counts["refined_within_all"],
        "fast_significantly_off": counts["significant"],
        "of_which_refined_consistent": counts["significant_fixed"],
        "refined_significantly_off": counts["refined_significant_all"],
        "not_brought_back": left,
        "bins": bins,
    }


def _test_distance(
    refiner: Refiner, full: Jets, fast: Jets, values: np.ndarray
) -> dict[str, float]:
    """The paired conditional and marginal MMD and the MSE of ``values`` (FastSim or
    refined, row i the test pair i) vs FullSim in the refiner's standardised latent
    space."""
    net = refiner.net
    cond = torch.as_tensor(fast.conditions())
    with torch.no_grad():
        z_full = net.standardised(net.to_latent(torch.as_tensor(full.values, dtype=torch.float32)))
        z = net.standardised(net.to_latent(torch.as_tensor(values, dtype=torch.float32)))
        return {
            "mmd_conditional": float(distance(net, z, z_full, cond, conditional=True)),
            "mmd_marginal": float(distance(net, z, z_full, cond, conditional=False)),
            "mse": float((z - z_full).pow(2).mean()),
        }


def _summary(ag: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "efficiency_points", "efficiency_bins_fast_off", "of_which_refined_within_error",
        "refined_within_error_all_points", "fast_significantly_off",
        "of_which_refined_consistent", "refined_significantly_off", "mean_over_bins",
    )  # fmt: skip
    return {k: ag[k] for k in keys}


def refine_runs(work: Path, seeds: list[int], epochs: int) -> dict[str, Any]:
    """MDMM refinement per seed (conditional MMD, the default), the marginal MMD and the
    fixed-weight scan (first seed)."""
    cols = DISCRIMINANTS
    train = (str(work / "disc-full-train"), str(work / "disc-fast-train"))
    full, fast = paired_jets(str(work / "disc-full-test"), str(work / "disc-fast-test"), cols)
    train_pairs = paired_jets(*train, cols)
    out: dict[str, Any] = {
        "train_pairs": int(train_pairs[0].event.size),
        "test_pairs": int(full.event.size),
        "seeds": {},
    }
    assert fast.matched.all()

    def run(**kw: Any) -> tuple[Refiner, np.ndarray, dict[str, Any]]:
        opts = RefineOptions(columns=cols, bounded=cols, epochs=epochs, batch=128, **kw)
        t0 = time.perf_counter()
        refiner = train_refiner(*train, opts)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        refined = refiner.refine(fast.values, fast.conditions())
        apply_s = time.perf_counter() - t0
        record = {
            "train_s": train_s,
            "apply_jets_per_s": fast.event.size / apply_s,
            "mmd_max": refiner.mmd_max,
            "final_multiplier": refiner.history[-1]["multiplier"],
            "test": {
                "fast": _test_distance(refiner, full, fast, fast.values),
                "refined": _test_distance(refiner, full, fast, refined),
            },
        }
        return refiner, refined, record

    for seed in seeds:
        _, refined, record = run(seed=seed)
        out["seeds"][str(seed)] = record | {"agreement": agreement(full, fast.values, refined)}
    first = seeds[0]
    _, refined, record = run(seed=first, conditional=False)
    out["marginal_mmd"] = record | {"agreement": _summary(agreement(full, fast.values, refined))}
    scan = {}
    for w in SCAN_WEIGHTS:
        _, refined, record = run(seed=first, mmd_weight=w)
        scan[f"w={w:g}"] = record["test"]["refined"] | _summary(
            agreement(full, fast.values, refined)
        )
    mdmm = out["seeds"][str(first)]
    out["scan"] = {
        "fixed_weight": scan,
        "mdmm": mdmm["test"]["refined"]
        | {"mmd_max": mdmm["mmd_max"]}
        | _summary(mdmm["agreement"]),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jets", type=int, default=250, help="jets per class: test, tagger")
    parser.add_argument("--train-jets", type=int, default=500, help="jets per class: training")
    parser.add_argument("--tagger-jets", type=int, default=250, help="jets per class: tagger")
    parser.add_argument("--shard-size", type=int, default=None, help="jets per shard")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batches", type=int, default=8, help="Pythia batches for cost")
    parser.add_argument("--part", choices=("cost", "agreement", "all"), default="all")
    parser.add_argument("--workdir", type=Path, default=None, help="keep samples here")
    parser.add_argument(
        "--no-generate",
        action="store_true",
        help="analyse the samples already in --workdir as they are (made by an earlier "
        "heptagon: their manifests record how), without checking them against this one's "
        "sample definitions",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part in ("cost", "all"):
        figures = {"sizes": {"batches": args.batches}, **cost(args.batches)}
        write_results("refinement", figures, part="cost")
    if args.part in ("agreement", "all"):
        work = args.workdir or Path(tempfile.mkdtemp(prefix="refinement-"))
        work.mkdir(parents=True, exist_ok=True)
        sizes = {"jets_per_class": args.jets, "train_jets_per_class": args.train_jets,
                 "tagger_jets_per_class": args.tagger_jets, "shard_size": args.shard_size,
                 "seeds": args.seeds, "epochs": args.epochs}  # fmt: skip
        if args.no_generate:
            keys = ("jets_per_class", "seed", "shard_size", "detector_chain", "detector")
            made = {p.name: {k: json.loads((p / "manifest.json").read_text()).get(k) for k in keys}
                    for p in sorted(work.glob("ak4-*"))}  # fmt: skip
        else:
            made = samples(work, args.jets, args.train_jets, args.tagger_jets, args.shard_size)
        figures = {"sizes": sizes, "generate": made}
        figures["tagger_s"] = tagger(work)
        figures["refinement"] = refine_runs(work, args.seeds, args.epochs)
        write_results("refinement", figures, part="agreement")


if __name__ == "__main__":
    main()
