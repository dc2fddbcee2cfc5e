"""Data/simulation scale factors of the demo's ParticleNet-Lite top tagger (issue 19).

1. the demo (``heptagon demo --jets JETS``): top-vs-QCD sample, ParticleNet-Lite, bundle;
2. tag-and-probe samples (``heptagon sf generate``): the nominal semileptonic-ttbar
   simulation with the ISR / FSR weight columns, its HCAL-energy-scale up / down
   variations (same seed: same generator events) and the pseudo-data (hidden shower and
   detector settings from ``--pseudo-seed``);
3. ``sf measure`` at the tagger's 50% working point (the score cut keeping 50% of the
   simulated merged tops) in three probe-pT bins, ``sf closure`` against the pseudo-data's
   sealed truth, ``sf toys`` (coverage of the SF uncertainty over ``--toys`` toys per bin).

Writes ``benchmarks/results/scale_factors.json``: the efficiency table (simulation, stat.
and syst. per group and their quadratic sum), the SFs with the breakdown, the closure
pulls, the toy pulls, the sample sizes and the hidden settings (revealed after the fit).
Every stage resumes from what ``--work`` already holds. The sizes are small on a shared
2-core machine: run with larger ``--sim-probes`` / ``--data-probes`` / ``--jets`` on an
idle one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_results

from heptagon.apps.demo import run_demo
from heptagon.apps.sf.measure import closure, measure, toys
from heptagon.generate.tagprobe import TagProbeOptions, generate_tag_probe, read_sealed

VARIATIONS = ("jes_hcal_up", "jes_hcal_down")


def _samples(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    plans: dict[str, dict[str, Any]] = {
        "sim": {"probes": args.sim_probes, "weight_variations": True},
        # the nominal's options but the variation: the same generator events (Pythia's
        # shower-weight settings change its random sequence, so they are kept too)
        **{
            v: {"probes": args.sim_probes, "variation": v, "weight_variations": True}
            for v in VARIATIONS
        },
        "pseudo": {"probes": args.data_probes, "pseudo_data": args.pseudo_seed, "seed": 2},
    }
    out = {}
    for name, plan in plans.items():
        opts = TagProbeOptions(
            **{"seed": 1, "out": work / name, "shard_size": 500, "jobs": args.jobs, **plan}
        )
        start = time.perf_counter()
        generate_tag_probe(opts, show_progress=False)
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
        out[name] = work / name
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("sf-benchmark"))
    parser.add_argument("--jets", type=int, default=1500, help="demo jets per class")
    parser.add_argument("--sim-probes", type=int, default=1500)
    parser.add_argument("--data-probes", type=int, default=1000)
    parser.add_argument("--pseudo-seed", type=int, default=42)
    parser.add_argument("--toys", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()

    start = time.perf_counter()
    demo = run_demo(args.work / "demo", jets=args.jets, show_progress=False)
    samples = _samples(args.work, args)
    out = args.work / "sf"
    measure(
        demo.bundle,
        samples["sim"],
        samples["pseudo"],
        out,
        variations=[samples[v] for v in VARIATIONS],
        working_point=0.5,
    )
    closure(out)
    table = toys(out, n_toys=args.toys, seed=1)
    _, hidden = read_sealed(samples["pseudo"])
    assert table.closure is not None
    assert table.toys is not None
    efficiency = [
        {
            "pt_gev": [b.pt_low, b.pt_high],
            "eff_sim": b.eff_sim,
            "stat": b.eff_sim_stat,
            "syst": b.eff_sim_syst,
            "syst_total": float(np.sqrt(sum(v**2 for v in b.eff_sim_syst.values()))),
        }
        for b in table.bins
    ]
    scale_factors = [
        {
            "pt_gev": [b.pt_low, b.pt_high],
            "eff_data": b.eff_data,
            "eff_data_err": b.eff_data_err,
            "sf": b.sf,
            "sf_err": b.sf_err,
            "breakdown": b.breakdown,
            "data_pass_fail": [b.n_data_pass, b.n_data_fail],
        }
        for b in table.bins
    ]
    figures = {
        "tagger": "the demo's ParticleNet-Lite (heptagon demo), score_Tbqq",
        "demo_jets_per_class": args.jets,
        "demo_test_auc": demo.metrics["particlenet_lite"].auc.value,  # type: ignore[union-attr]
        "working_point": {"signal_efficiency": 0.5, "threshold": table.threshold},
        "sizes": {
            "simulation_probes": args.sim_probes,
            "variation_probes": args.sim_probes,
            "pseudo_data_probes": args.data_probes,
            "toys_per_bin": args.toys,
            "note": "small: a shared 2-core machine; rerun larger on an idle one",
        },
        "variations": table.variations,
        "efficiency_simulation": efficiency,
        "scale_factors": scale_factors,
        "closure": table.closure.model_dump(),
        "toys": table.toys.model_dump(),
        "pseudo_data_hidden_settings": hidden,
        "wall_s": time.perf_counter() - start,
    }
    print(write_results("scale_factors", figures))


if __name__ == "__main__":
    main()
