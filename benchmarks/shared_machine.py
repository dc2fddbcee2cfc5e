"""Training and predict speed on a shared machine: heptagon's thread choice vs the defaults.

    python benchmarks/shared_machine.py [--steps 20] [--batches 20] [--reps 3]
                                        [--name shared_machine]

Each figure is measured in a fresh worker process (``--worker``), so that its thread pools
and OpenMP settings are its own, for two contenders:

- ``default``: torch's and ONNX Runtime's own choices (torch's default thread count,
  OpenMP's default waiting, ONNX Runtime's one thread per physical core);
- ``heptagon``: what ``heptagon train`` / ``predict`` do: :func:`heptagon.cpu.configure_threads`
  and :func:`heptagon.publish.onnx.make_session` with ``threads=None`` (the CPU affinity,
  lowered to the cgroup CPU quota), and :func:`heptagon.cpu.set_wait_policy` as the
  ``heptagon`` command calls it (``OMP_WAIT_POLICY=PASSIVE`` when the machine looks shared;
  the worker records whether it did);

in four conditions: ``idle``; ``busy1`` and ``busy2``, with 1 and 2 single-threaded busy
processes (``while True: pass``, killed at the end); ``quota1``: the worker pinned to one
core with ``taskset -c 0``, the stand-in here for a cgroup quota of 1 core (a cgroup
cannot be made without privileges; note that torch's default reads the affinity too).

Workloads: training = ParticleNet-Lite steps (forward, cross-entropy, backward, AdamW),
batch 64, synthetic top-like jets with 50 particles in 128 slots
(``train_speed.synthetic_jets``); predict = ONNX Runtime on heptagon's export of the same
model (random weights), batches of 256 such jets. Reported: the median jets/s over
``--reps`` repetitions, and its ratio to the fair share: with k busy processes on C CPUs
the idle rate x C / (C + k), under a quota of q cores the idle rate x q / C, the idle rate
being the better contender's. The goal is >= 0.9 for ``heptagon`` in every condition.
Run it on an otherwise idle machine. Results go to ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONTENDERS = ("default", "heptagon")
CONDITIONS = ("idle", "busy1", "busy2", "quota1")
WORKLOADS = ("train", "predict")
TRAIN_BATCH = 64
PREDICT_BATCH = 256
REAL_PARTICLES = 50


def worker(workload: str, contender: str, steps: int, reps: int) -> dict[str, Any]:
    """jets/s of ``reps`` repetitions of ``steps`` steps (batches) of ``workload``, torch's
    threads and the OpenMP wait policy it ran with."""
    from heptagon.cpu import configure_threads, set_wait_policy

    if contender == "heptagon":
        set_wait_policy()  # before torch starts OpenMP, as the heptagon command does
    import torch

    if contender == "heptagon":
        configure_threads(None)
    torch.manual_seed(0)
    batch = TRAIN_BATCH if workload == "train" else PREDICT_BATCH
    from train_speed import synthetic_jets

    jets = synthetic_jets(batch, REAL_PARTICLES, seed=1)
    if workload == "train":
        from train_speed import heptagon_step

        _, step = heptagon_step("particlenet-lite", fused=False)
        labels = torch.randint(0, 2, (batch,))

        def run() -> None:
            step(jets, labels)
    else:
        run = _predict_step(contender, {k: v.numpy() for k, v in jets.items()})
    for _ in range(3):  # warm-up: allocator, thread pools, ONNX Runtime's first calls
        run()
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(steps):
            run()
        rates.append(steps * batch / (time.perf_counter() - start))
    return {
        "jets_per_s": rates,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }


def _predict_step(contender: str, inputs: dict[str, Any]) -> Any:
    """One ONNX Runtime call on ``inputs`` with the contender's session."""
    import onnxruntime as ort

    from heptagon.models import build_model
    from heptagon.publish.onnx import export_torch, make_session

    model = build_model("particlenet-lite", {k: v.shape[1] for k, v in inputs.items()}, 2)
    names = model.input_names  # type: ignore[attr-defined]
    proto, _ = export_torch(model, names, inputs, "softmax", 17)  # type: ignore[arg-type]
    if contender == "heptagon":
        session = make_session(proto.SerializeToString())
    else:  # make_session's options with ONNX Runtime's default thread count
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(
            proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    feed = {name: inputs[name] for name in names}
    return lambda: session.run(None, feed)


def measure(condition: str, workload: str, contender: str, args: argparse.Namespace) -> Any:
    """Run one worker process in ``condition`` (the busy processes already running)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    steps = args.steps if workload == "train" else args.batches
    command = [sys.executable, __file__, "--worker", workload, contender]
    command += ["--steps", str(steps), "--reps", str(args.reps)]
    if condition == "quota1":
        command = ["taskset", "-c", str(min(os.sched_getaffinity(0))), *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    figure = json.loads(done.stdout.strip().splitlines()[-1])
    return {"median_jets_per_s": statistics.median(figure["jets_per_s"]), **figure}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per repetition")
    parser.add_argument("--batches", type=int, default=20, help="predict calls per repetition")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--name", default="shared_machine")
    parser.add_argument("--worker", nargs=2, metavar=("WORKLOAD", "CONTENDER"))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.worker:
        print(json.dumps(worker(*args.worker, args.steps, args.reps)))
        return
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed for the quota1 condition")
    from _common import write_results

    from heptagon.cpu import available_cpus

    cpus = available_cpus()
    figures: dict[str, Any] = {"cpus": cpus, "conditions": {}}
    for condition in CONDITIONS:
        k = int(condition[-1]) if condition.startswith("busy") else 0
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]
        try:
            figures["conditions"][condition] = {
                w: {c: measure(condition, w, c, args) for c in CONTENDERS} for w in WORKLOADS
            }
        finally:
            for process in busy:
                process.kill()
                process.wait()
    for workload in WORKLOADS:
        idle = max(
            figures["conditions"]["idle"][workload][c]["median_jets_per_s"] for c in CONTENDERS
        )
        for condition in CONDITIONS:
            k = int(condition[-1]) if condition.startswith("busy") else 0
            share = idle / cpus if condition == "quota1" else idle * cpus / (cpus + k)
            for contender in CONTENDERS:
                figure = figures["conditions"][condition][workload][contender]
                figure["fair_share_jets_per_s"] = share
                figure["fraction_of_fair_share"] = figure["median_jets_per_s"] / share
                print(
                    f"{workload:8s} {condition:7s} {contender:9s} "
                    f"{figure['median_jets_per_s']:8.0f} jets/s  "
                    f"{figure['fraction_of_fair_share']:.2f} of fair share ({share:.0f})"
                )
    print(f"wrote {write_results(args.name, figures)}")


if __name__ == "__main__":
    main()
