"""Pile-up: jet response and resolution vs mu for none / CHS / PUPPI, the cost of the
overlay, and the memory of a shard at mu = 200 (docs/pileup.md).

- ``response``: W (``Wqq``) and top (``Tbqq``) jets at each mu and mitigation: the soft-drop
  mass peak (mean within 25 GeV of the fullest 10 GeV bin), median and resolution (half the
  16-84% spread, over the peak), the jet-pT median, and the mean rho.
- ``cost``: jets/s of ``top-vs-qcd`` without ``--pileup`` and at each mu (PUPPI), with the
  share of the shard time spent in :func:`heptagon.generate.pileup.reconstruct` (overlay,
  detector, vertex association, PUPPI).
- ``memory``: peak RSS of one process generating ``2 x shard`` jets at mu = 200 for
  several shard sizes (bounded by the shard, not the sample).

The top-tagger part of issue 18 (trained at mu = 0, evaluated at 60 / 200) is not here.

    python benchmarks/pileup.py [--jets 40] [--mu 0 60 140 200] [--part response|cost|memory]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from _common import write_results

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
    spent = {"s": 0.0}
    reconstruct = pileup.reconstruct

    def timed(*args: Any, **kwargs: Any) -> pileup.PileupCandidates:
        t0 = time.perf_counter()
        try:
            return reconstruct(*args, **kwargs)
        finally:
            spent["s"] += time.perf_counter() - t0

    pileup.reconstruct = timed  # type: ignore[assignment]  # run.py imports it per batch
    out: dict[str, Any] = {}
    try:
        for mu in [None, *mus]:
            spent["s"] = 0.0
            s = _sample(tmp / f"cost-{mu}", "top-vs-qcd", jets, mu, "puppi")
            key = "no_pileup" if mu is None else f"mu{mu:g}"
            out[key] = {
                "jets_per_s": s.jets_per_s,
                "shard_s": s.wall_s,
                "reconstruct_share": spent["s"] / s.wall_s,
            }
            print(key, out[key], flush=True)
    finally:
        pileup.reconstruct = reconstruct  # type: ignore[assignment]
    base = out["no_pileup"]["jets_per_s"]
    for v in out.values():
        v["cost_vs_no_pileup"] = base / v["jets_per_s"]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jets", type=int, default=40, help="jets per class and point")
    parser.add_argument("--mu", type=float, nargs="+", default=[0.0, 60.0, 140.0, 200.0])
    parser.add_argument("--shards", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--part", choices=("response", "cost", "memory"))
    args = parser.parse_args()
    parts = {
        "response": lambda tmp: response(tmp, args.jets, args.mu),
        "cost": lambda tmp: cost(tmp, args.jets, args.mu),
        "memory": lambda tmp: memory(tmp, args.shards),
    }
    with tempfile.TemporaryDirectory() as d:
        for name, run in parts.items():
            if args.part in (None, name):
                figures = {"jets_per_point": args.jets, **run(Path(d))}
                path = write_results("pileup", figures, part=name)
    print(json.dumps(json.loads(path.read_text())["figures"], indent=1)[:2000])


if __name__ == "__main__":
    main()
