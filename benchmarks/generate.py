"""Generation speed: accepted jets/s per core for each class, the overhead of heptagon's
pipeline (detector, clustering, substructure, writing) over bare ``Pythia.nextBatch`` of the
same events (same settings, same seeds, measured in the same run), and the speed-up of two
processes over one.

    python benchmarks/generate.py [--jets 300] [--classes Tbqq QCD Wqq Hbb] [--repeat 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import write_results

from heptagon.generate.run import (
    BATCH_EVENTS,
    GenerateOptions,
    _plan,
    generate,
    make_pythia,
    run_shard,
)

# the class's natural sample: top-vs-QCD (MPI off) for Tbqq / QCD, JetClass-like otherwise
SAMPLE_OF = {"Tbqq": "top-vs-qcd", "QCD": "top-vs-qcd"}


def bench_class(cls: str, n_jets: int, tmp: Path, repeat: int) -> dict[str, float]:
    """Best of ``repeat`` alternating runs of the pipeline and of bare Pythia (same
    settings, same seed, the same number of events)."""
    sample = SAMPLE_OF.get(cls, cls)
    t_pipeline, t_bare = [], []
    for i in range(repeat):
        out = tmp / f"{cls}-{i}"
        opts = GenerateOptions(sample=sample, jets=n_jets, seed=1, out=out, shard_size=n_jets)
        (spec,) = [s for s in _plan(opts)[0] if s.cls == cls]
        (out / "shards").mkdir(parents=True)
        t0 = time.perf_counter()
        record = run_shard(spec)
        t_pipeline.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        pythia = make_pythia(spec.settings)
        for _ in range((record.events_generated or 0) // BATCH_EVENTS):
            pythia.nextBatch(BATCH_EVENTS)
        t_bare.append(time.perf_counter() - t0)
    events = record.events_generated or 0
    return {
        "sample": sample,
        "mpi": opts.use_mpi(),
        "jets": n_jets,
        "events": events,
        "pipeline_s": min(t_pipeline),
        "bare_pythia_s": min(t_bare),
        "jets_per_s_per_core": n_jets / min(t_pipeline),
        "bare_events_per_s": events / min(t_bare),
        "overhead": min(t_pipeline) / min(t_bare) - 1.0,
    }


def bench_jobs(n_jets: int, tmp: Path) -> dict[str, float]:
    times = {}
    for jobs in (1, 2):
        opts = GenerateOptions(
            sample="top-vs-qcd",
            jets=n_jets,
            seed=2,
            out=tmp / f"jobs{jobs}",
            shard_size=n_jets // 2,
            jobs=jobs,
        )
        t0 = time.perf_counter()
        generate(opts, show_progress=False)
        times[jobs] = time.perf_counter() - t0
    return {
        "jets_per_class": n_jets,
        "one_process_s": times[1],
        "two_processes_s": times[2],
        "speedup": times[1] / times[2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=300, help="jets per class")
    parser.add_argument("--classes", nargs="+", default=["Tbqq", "QCD", "Wqq", "Hbb"])
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs, best kept")
    args = parser.parse_args()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        per_class = {}
        print(
            f"{'class':6s} {'sample':13s} {'jets/s/core':>11s} {'bare ev/s':>10s} "
            f"{'pipeline s':>10s} {'bare s':>7s} {'overhead':>8s}"
        )
        for cls in args.classes:
            r = bench_class(cls, args.jets, tmp, args.repeat)
            per_class[cls] = r
            print(
                f"{cls:6s} {r['sample']:13s} {r['jets_per_s_per_core']:11.1f} "
                f"{r['bare_events_per_s']:10.1f} {r['pipeline_s']:10.1f} "
                f"{r['bare_pythia_s']:7.1f} {r['overhead']:8.1%}"
            )
        figures["per_class"] = per_class
        jobs = bench_jobs(args.jets, tmp)
        figures["two_processes"] = jobs
        print(
            f"2 processes vs 1 (top-vs-qcd, {args.jets} jets/class, 4 shards): "
            f"{jobs['speedup']:.2f}x ({jobs['one_process_s']:.1f} s -> "
            f"{jobs['two_processes_s']:.1f} s)"
        )
    print("results:", write_results("generate", figures))


if __name__ == "__main__":
    main()
