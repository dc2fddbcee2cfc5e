"""MLPF vs the rule-based PF on ttbar, and MLPF's inference scaling vs a dense graph.

    python benchmarks/mlpf.py [--train-events 400] [--test-events 200] [--epochs 15]
                              [--lr 2e-3] [--pileup 0 10]
                              [--sizes 256 512 1024 2048 4096] [--dense-max 4096]
                              [--workdir DIR] [--name mlpf] [--record-as KEY]

1. **Scaling**: MLPF (LSH bins of 64, width 64, 3 layers, random weights) and the same
   network with a dense Gaussian-kernel graph over all elements (``graph="dense"``, an
   ``N^2`` adjacency; only up to ``--dense-max`` elements) are exported to ONNX (dynamic
   element axis) and timed in ONNX Runtime (one thread, batch 1, best of ``--repeats``)
   at each number of elements; the exponent ``b`` of ``t = a N^b`` is fitted in log-log
   for each. At mu = 200 a ttbar event has ~10^4 elements: ``--sizes`` up to 16384 with
   the default ``--dense-max 4096`` (a dense 16384^2 graph does not fit in memory).
2. **Physics**: for each mean pile-up in ``--pileup``, ttbar element samples are generated
   (``heptagon mlpf generate``; 14 TeV, Pythia 8 with MPI, pile-up from a minimum-bias
   library), MLPF is trained on ``--train-events`` (the :class:`MLPFTrainOptions` defaults:
   a tenth of them held out to choose the particle-probability threshold) and both MLPF
   and the rule-based PF are evaluated on ``--test-events`` other events: jet pT response
   median and IQR (anti-kT 0.4, matched to generator jets with pT > 25 GeV), MET
   resolution, per-class efficiency and fake rate. The targets themselves are evaluated as
   the ceiling. With pile-up, MLPF and the rule-based PF are also evaluated with PUPPI on
   their particles (``mlpf_puppi``, ``pf_puppi``:
   :func:`heptagon.apps.mlpf.metrics.with_puppi`).

``--record-as KEY`` writes the figures under ``KEY`` of ``results/<name>.json`` and keeps
the file's other figures (e.g. ``--pileup 60 200 --record-as pileup``).

The machine is shared with other jobs (recorded in the JSON with the load average); torch
and ONNX Runtime run on one thread.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from _common import write_results

from heptagon.apps.mlpf.run import FEATURES, evaluate_mlpf, export_mlpf
from heptagon.apps.mlpf.training import MLPFTrainOptions, train_mlpf
from heptagon.generate.elements import ElementOptions, generate_elements
from heptagon.models import build_model
from heptagon.models.mlpf import MLPF

#: what evaluate_mlpf scores (the PUPPI ones with pile-up only)
ALGOS = ("mlpf", "mlpf_puppi", "pf", "pf_puppi", "truth")


def _time_onnx(path: Path, n: int, repeats: int) -> tuple[float, float]:
    """Best wall and CPU seconds of one event of ``n`` elements (one thread: ONNX Runtime
    runs it on the calling thread, whose CPU time a busy machine does not inflate)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(n)
    feed = {
        "el_features": rng.standard_normal((1, len(FEATURES), n)).astype(np.float32),
        "el_mask": np.ones((1, 1, n), np.float32),
    }
    session.run(None, feed)  # warm-up
    best, best_cpu = np.inf, np.inf
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.thread_time()
        session.run(None, feed)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.thread_time() - cpu)
    return float(best), float(best_cpu)


def scaling(sizes: list[int], repeats: int, workdir: Path, dense_max: int) -> dict[str, Any]:
    """ONNX Runtime time per event vs elements, LSH vs dense, with fitted exponents."""
    out: dict[str, Any] = {"sizes": sizes}
    for graph in ("lsh", "dense"):
        model = build_model("mlpf", {"el_features": len(FEATURES), "el_mask": 1}, 6, graph=graph)
        assert isinstance(model, MLPF)
        path = export_mlpf(model, workdir / f"mlpf-{graph}.onnx")
        ns = [n for n in sizes if graph == "lsh" or n <= dense_max]
        wall, cpu = zip(*(_time_onnx(path, n, repeats) for n in ns), strict=True)
        slope, _ = np.polyfit(np.log(ns), np.log(wall), 1)
        cpu_slope, _ = np.polyfit(np.log(ns), np.log(cpu), 1)
        out[graph] = {
            "sizes": ns,
            "ms_per_event": [1e3 * t for t in wall],
            "exponent": float(slope),
            "cpu_ms_per_event": [1e3 * t for t in cpu],
            "cpu_exponent": float(cpu_slope),
        }
        print(
            f"{graph:5s} CPU ms/event: "
            + ", ".join(f"{n}: {1e3 * t:.2f}" for n, t in zip(ns, cpu, strict=True))
        )
        print(f"{graph:5s} fitted exponent: {slope:.2f} (wall), {cpu_slope:.2f} (CPU)")
    largest = len(out["dense"]["sizes"]) - 1
    out["dense_over_lsh_at_largest"] = (
        out["dense"]["ms_per_event"][-1] / out["lsh"]["ms_per_event"][largest]
    )
    out["dense_over_lsh_at_largest_cpu"] = (
        out["dense"]["cpu_ms_per_event"][-1] / out["lsh"]["cpu_ms_per_event"][largest]
    )
    return out


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    per_class = m["particles"]["per_class"]
    return {
        "jet_response_median": m["jets"].get("response_median"),
        "jet_response_iqr": m["jets"].get("response_iqr"),
        "jets_matched": m["jets"].get("matched"),
        "met_resolution_xy_gev": m["met"]["resolution_xy_gev"],
        "met_response_median": m["met"].get("response_median"),
        "efficiency": {c: v["efficiency"] for c, v in per_class.items()},
        "fake_rate": {c: v["fake_rate"] for c, v in per_class.items()},
    }


def physics(args: argparse.Namespace, pileup: float, workdir: Path) -> dict[str, Any]:
    """Train MLPF and compare it with the rule-based PF at one pile-up."""
    tag = f"pu{pileup:g}"
    start = time.perf_counter()
    samples = {}
    for split, n, seed in (("train", args.train_events, 1), ("test", args.test_events, 2)):
        samples[split] = workdir / f"ttbar-{tag}-{split}"
        generate_elements(
            ElementOptions(
                sample="ttbar", events=n, seed=seed, out=samples[split], pileup=pileup,
                shard_size=100,
            ),
            show_progress=False,
        )  # fmt: skip
    gen_s = time.perf_counter() - start
    run = workdir / f"run-{tag}"
    start = time.perf_counter()
    opts = MLPFTrainOptions(data=samples["train"], out=run, epochs=args.epochs, lr=args.lr)
    train_mlpf(opts, resume=(run / "options.json").exists())  # a --workdir run: continue it
    train_s = time.perf_counter() - start
    m = evaluate_mlpf(run, samples["test"])
    result = {
        "pileup": pileup,
        "mean_elements": m["mean_elements"],
        "generate_s": gen_s,
        "train_s": train_s,
        "mlpf_torch_ms_per_event": m["mlpf_ms_per_event"],
        "mlpf_decoding": m["mlpf_decoding"],
        **{algo: _summary(m[algo]) for algo in ALGOS if algo in m},
    }
    print(f"pile-up {pileup:g}: {m['mean_elements']:.0f} elements/event")
    for algo in (a for a in ALGOS if a in m):
        s = result[algo]
        eff = ", ".join(f"{c}={v:.2f}" for c, v in s["efficiency"].items() if v is not None)
        print(
            f"  {algo:5s} jet response {s['jet_response_median']:.3f}"
            f" IQR {s['jet_response_iqr']:.3f}"
            f"  MET res {s['met_resolution_xy_gev']:.1f} GeV  eff {eff}"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-events", type=int, default=400)
    parser.add_argument("--test-events", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--pileup", type=float, nargs="*", default=[0.0, 10.0], help="none: scaling only"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dense-max", type=int, default=4096, help="largest dense graph")
    parser.add_argument("--record-as", help="results key (the file's other figures kept)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--name", default="mlpf")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        figures: dict[str, Any] = {
            "machine_shared": True,
            "load_average_start": os.getloadavg(),
            "scaling": scaling(args.sizes, args.repeats, workdir, args.dense_max),
            "physics": [physics(args, pu, workdir) for pu in args.pileup],
            "load_average_end": os.getloadavg(),
        }
    print(f"results in {write_results(args.name, figures, part=args.record_as)}")


if __name__ == "__main__":
    main()
