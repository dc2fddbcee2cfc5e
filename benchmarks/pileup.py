"""Pile-up: jet response and resolution vs mu for none / CHS / PUPPI, the cost of the
overlay, and the memory of a shard at mu = 200 (docs/pileup.md).

- ``response``: W (``Wqq``) and top (``Tbqq``) jets at each mu and mitigation: the soft-drop
  mass peak (mean within 25 GeV of the fullest 10 GeV bin), median and resolution (half the
  16-84% spread, over the peak), the jet-pT median, and the mean rho.
- ``cost``: jets/s and CPU s per jet (the steadier figure on a shared machine) of
  ``top-vs-qcd`` without ``--pileup`` and at each mu (PUPPI), with the share of the shard
  time spent in :func:`heptagon.generate.pileup.reconstruct` (overlay, detector, vertex
  association, PUPPI).
- ``memory``: peak RSS of one process generating ``2 x shard`` jets at mu = 200 for
  several shard sizes (bounded by the shard, not the sample).
- ``taggers``: the top tagger (BDT ``top_bdt``, ParticleNet-Lite ``top_particlenet_lite``
  and, with the pile-up inputs, ``pileup_top_particlenet_lite``) trained at mu = 0 and at
  mu = 200 and evaluated on the samples at every ``--tagger-mu`` (AUC, 1/eps_B at 50%
  signal efficiency) per mitigation, all through the command line a user runs:
  ``heptagon generate top-vs-qcd --pileup MU --mitigation M``, ``heptagon train CONFIG
  --data SAMPLE``, ``heptagon evaluate RUN --data SAMPLE...`` (a run's own sample is
  scored on its test split, the others whole).

    python benchmarks/pileup.py [--jets 40] [--mu 0 60 140 200]
        [--part response|cost|memory|taggers] [--tagger-jets 2000] [--epochs 20]
        [--mitigations puppi none chs] [--train-set KEY=VALUE ...] [--record-as KEY]
        [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from _common import write_results

from heptagon import configs
from heptagon.generate import pileup
from heptagon.generate.run import GenerateOptions, generate

MITIGATIONS = ("none", "chs", "puppi")


def _sample(out: Path, sample: str, jets: int, mu: float | None, mitigation: str) -> Any:
    kw: dict[str, Any] = {} if mu is None else {"pileup": mu, "mitigation": mitigation}
    opts = GenerateOptions(sample=sample, jets=jets, seed=2, out=out, shard_size=jets, **kw)
    return generate(opts, show_progress=False)


def _column(out: Path, summary: Any, name: str) -> np.ndarray:
    return np.concatenate(
        [ak.to_numpy(ak.from_parquet(out / f.file)[name]) for f in summary.manifest.files]
    )


def mass_figures(m: np.ndarray) -> dict[str, float]:
    """Peak (mean within 25 GeV of the fullest 10 GeV bin), median, resolution."""
    hist, edges = np.histogram(m, bins=np.arange(0.0, 1000.0, 10.0))
    centre = edges[np.argmax(hist)] + 5.0
    peak = float(m[np.abs(m - centre) < 25.0].mean())
    q16, q50, q84 = np.percentile(m, [16, 50, 84])
    return {"peak": peak, "median": float(q50), "resolution": float((q84 - q16) / 2 / peak)}


def response(tmp: Path, jets: int, mus: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cls in ("Wqq", "Tbqq"):
        for mu in mus:
            for mitigation in MITIGATIONS:
                d = tmp / f"{cls}-{mu}-{mitigation}"
                s = _sample(d, cls, jets, mu, mitigation)
                m = _column(d, s, "jet_sdmass")
                out[f"{cls}/mu{mu:g}/{mitigation}"] = {
                    "jets": int(m.size),
                    "sdmass": mass_figures(m),
                    "jet_pt_median": float(np.median(_column(d, s, "jet_pt"))),
                    "mean_rho": float(_column(d, s, "jet_rho").mean()),
                }
                print(cls, mu, mitigation, out[f"{cls}/mu{mu:g}/{mitigation}"], flush=True)
    return out


def cost(tmp: Path, jets: int, mus: list[float]) -> dict[str, Any]:
    """jets/s (wall) and CPU s per jet of the shards at each mu (the minimum-bias library,
    made once per sample, left out), with reconstruct's share of the wall time. On a
    shared machine the CPU time is the steadier figure."""
    spent = {"s": 0.0, "library_cpu_s": 0.0}
    reconstruct, library = pileup.reconstruct, pileup.minbias_library

    def timed(*args: Any, **kwargs: Any) -> pileup.PileupCandidates:
        t0 = time.perf_counter()
        try:
            return reconstruct(*args, **kwargs)
        finally:
            spent["s"] += time.perf_counter() - t0

    def timed_library(*args: Any, **kwargs: Any) -> None:
        t0 = time.process_time()
        try:
            library(*args, **kwargs)
        finally:
            spent["library_cpu_s"] += time.process_time() - t0

    # run.py imports both from the module at each use
    pileup.reconstruct = timed  # type: ignore[assignment]
    pileup.minbias_library = timed_library  # type: ignore[assignment]
    out: dict[str, Any] = {}
    try:
        for mu in [None, *mus]:
            spent["s"] = spent["library_cpu_s"] = 0.0
            cpu = time.process_time()
            s = _sample(tmp / f"cost-{mu}", "top-vs-qcd", jets, mu, "puppi")
            cpu = time.process_time() - cpu - spent["library_cpu_s"]
            made = sum(c.jets for c in s.manifest.classes.values())
            key = "no_pileup" if mu is None else f"mu{mu:g}"
            out[key] = {
                "jets_per_s": s.jets_per_s,
                "shard_s": s.wall_s,
                "reconstruct_share": spent["s"] / s.wall_s,
                "cpu_s_per_jet": cpu / made,
            }
            print(key, out[key], flush=True)
    finally:
        pileup.reconstruct, pileup.minbias_library = reconstruct, library  # type: ignore[assignment]
    base = out["no_pileup"]
    for v in out.values():
        v["cost_vs_no_pileup"] = base["jets_per_s"] / v["jets_per_s"]
        v["cpu_cost_vs_no_pileup"] = v["cpu_s_per_jet"] / base["cpu_s_per_jet"]
    return out


_RSS = """
import resource, sys
from pathlib import Path
from heptagon.generate.run import GenerateOptions, generate
shard = int(sys.argv[1])
generate(GenerateOptions(sample="Tbqq", jets=2 * shard, seed=3, out=Path(sys.argv[2]),
         shard_size=shard, pileup=200.0, mitigation="puppi"), show_progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def memory(tmp: Path, shards: list[int]) -> dict[str, Any]:
    out = {}
    for shard in shards:
        res = subprocess.run(
            [sys.executable, "-c", _RSS, str(shard), str(tmp / f"rss-{shard}")],
            capture_output=True,
            text=True,
            check=True,
        )
        out[f"shard{shard}"] = {"jets": 2 * shard, "peak_rss_mb": float(res.stdout.split()[-1])}
        print(shard, out[f"shard{shard}"], flush=True)
    return out


TAGGERS = ("top_bdt", "top_particlenet_lite", "pileup_top_particlenet_lite")


def _heptagon(*argv: str) -> None:
    """Run ``heptagon ARGV`` as a user would (a fresh process); its error line if it fails."""
    res = subprocess.run([sys.executable, "-m", "heptagon", *argv], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"heptagon {' '.join(argv)}: {res.stderr.strip()}")


def _scores(run: Path) -> dict[str, dict[str, float | None]]:
    """AUC and 1/eps_B at 50% of every sample in ``run``'s evaluation."""
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    out = {}
    for name, m in metrics["samples"].items():
        out[name] = {
            "auc": m["auc"]["value"],
            "rejection_at_50": m["rejection_at_eff"]["0.5"]["value"],
            "n_test": m["n_signal"]["raw"] + m["n_background"]["raw"],
        }
    return out


def taggers(
    tmp: Path,
    jets: int,
    mus: list[float],
    epochs: int,
    mitigations: list[str],
    record: Callable[[dict[str, Any]], Any],
    train_set: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Train at mu = 0 and 200, evaluate at every mu, per mitigation (module docstring);
    ``record`` gets the figures so far after each run; ``train_set``: more ``--set
    KEY=VALUE`` overrides for the networks (e.g. a smaller batch on a small sample)."""
    out: dict[str, Any] = {
        "jets_per_class": jets,
        "epochs": epochs,
        "network_overrides": train_set,
        "mu": mus,
        "mitigations": mitigations,
    }
    for mitigation in mitigations:
        samples = {}
        for mu in mus:
            samples[mu] = tmp / f"tag-{mitigation}-mu{mu:g}"
            t0 = time.perf_counter()
            _heptagon(
                "generate", "top-vs-qcd", "--jets", str(jets), "--seed", "11",
                "--out", str(samples[mu]), "--pileup", f"{mu:g}", "--mitigation", mitigation,
            )  # fmt: skip
            print(mitigation, mu, f"generated in {time.perf_counter() - t0:.0f} s", flush=True)
        for config in TAGGERS:
            for train_mu in (0.0, 200.0):
                if train_mu not in samples:
                    continue
                run = tmp / f"run-{config}-{mitigation}-mu{train_mu:g}"
                shutil.rmtree(run, ignore_errors=True)  # left by an interrupted run
                sets = [] if config == "top_bdt" else ["--set", f"train.epochs={epochs}"]
                if config != "top_bdt":
                    sets += [x for kv in train_set for x in ("--set", kv)]
                experiment = Path(configs.__file__).parent / f"{config}.yaml"
                _heptagon("train", str(experiment), "--out", str(run),
                          "--data", str(samples[train_mu]), *sets)  # fmt: skip
                _heptagon("evaluate", str(run))  # its own sample: the test split
                scores = _scores(run)
                others = [str(samples[mu]) for mu in mus if mu != train_mu]
                _heptagon("evaluate", str(run), *(x for o in others for x in ("--data", o)))
                scores |= _scores(run)
                key = f"{config}/{mitigation}/trained_mu{train_mu:g}"
                out[key] = {
                    f"mu{mu:g}": scores["test" if mu == train_mu else samples[mu].name]
                    for mu in mus
                }
                print(key, out[key], flush=True)
                record(out)
                shutil.rmtree(run)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jets", type=int, default=40, help="jets per class and point")
    parser.add_argument("--mu", type=float, nargs="+", default=[0.0, 60.0, 140.0, 200.0])
    parser.add_argument("--shards", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--part", choices=("response", "cost", "memory", "taggers"))
    parser.add_argument("--tagger-jets", type=int, default=2000, help="jets per class")
    parser.add_argument("--tagger-mu", type=float, nargs="+", default=[0.0, 60.0, 200.0])
    parser.add_argument("--epochs", type=int, default=20, help="ParticleNet-Lite epochs")
    parser.add_argument("--mitigations", nargs="+", default=["puppi", "none", "chs"])
    parser.add_argument(
        "--train-set", nargs="+", default=[], metavar="KEY=VALUE",
        help="more --set overrides for the networks' training, e.g. train.batch_size=64",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="keep the samples here (a rerun reuses them)")
    parser.add_argument(
        "--record-as",
        help="results key of the part (default: its name), e.g. cost_before for a run with "
        "PYTHONPATH=<an older checkout>/src",
    )
    args = parser.parse_args()
    parts = {
        "response": lambda tmp: response(tmp, args.jets, args.mu),
        "cost": lambda tmp: cost(tmp, args.jets, args.mu),
        "memory": lambda tmp: memory(tmp, args.shards),
        "taggers": lambda tmp: taggers(
            tmp,
            args.tagger_jets,
            args.tagger_mu,
            args.epochs,
            args.mitigations,
            lambda so_far: write_results("pileup", so_far, part=args.record_as or "taggers"),
            tuple(args.train_set),
        ),
    }
    with tempfile.TemporaryDirectory() as d:
        work = args.workdir or Path(d)
        for name, run in parts.items():
            if args.part in (None, name):
                figures = {"jets_per_point": args.jets, **run(work)}
                path = write_results("pileup", figures, part=args.record_as or name)
    print(json.dumps(json.loads(path.read_text())["figures"], indent=1)[:2000])


if __name__ == "__main__":
    main()
