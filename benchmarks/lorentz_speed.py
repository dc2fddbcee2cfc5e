"""Training speed and size of the Lorentz-invariant taggers next to ParticleNet-Lite.

    python benchmarks/lorentz_speed.py --data SAMPLE [--batches 3] [--reps 3] [--threads 2]
                                       [--batch-size 64] [--models particlenet-lite ...]

What is timed: one training step = forward, cross entropy, backward, AdamW step, on the
first ``--batches`` training batches (``--batch-size`` jets; 64 keeps PELICAN's and
LorentzNet's pair arrays, 10 MB per channel at 256 jets of 100 constituents and several
kept per layer for the backward pass, within a shared machine's memory) of ``--data``
(a generated top-vs-QCD sample, e.g. ``heptagon generate top-vs-qcd --jets 2500``), each
model with its shipped experiment's data config (ParticleNet-Lite: ``top_kinematic``, the
Lorentz models: ``top_lorentz``, up to 100 constituents) through ``JetDataset`` as
``heptagon train`` reads them (bucketed, padding trimmed to each batch's longest jet).
The batches are loaded before timing. The models alternate, ``--reps`` times (order
flipped each rep), so that load from other processes affects them alike; reported: the
best and median jets/s, the parameters, and the mean number of slots per batch. Results
go to ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import write_results
from torch import Tensor

from heptagon.data import JetDataset, compute_preprocess, load_config
from heptagon.models import build_model

CONFIGS = Path(__file__).resolve().parent.parent / "src" / "heptagon" / "configs"
#: model -> the shipped experiment whose data config it reads
EXPERIMENTS = {
    "particlenet-lite": "top_particlenet_lite.yaml",
    "lorentznet-lite": "top_lorentznet.yaml",
    "pelican-lite": "top_pelican.yaml",
    "lorentznet": "top_lorentznet.yaml",
    "pelican": "top_pelican.yaml",
}
DATA = {
    "top_particlenet_lite.yaml": "data/top_kinematic.yaml",
    "top_lorentznet.yaml": "data/top_lorentz.yaml",
    "top_pelican.yaml": "data/top_lorentz.yaml",
}


def batches(
    data: Path, data_config: str, n: int, size: int
) -> list[tuple[dict[str, Tensor], Tensor]]:
    """The first ``n`` training batches of ``size`` jets of ``data`` read with
    ``data_config``."""
    config = load_config(CONFIGS / data_config)
    preprocess = compute_preprocess(data, config)
    out = []
    for batch in JetDataset(data, config, preprocess, split="train", batch_size=size, seed=0):
        assert batch.label is not None
        out.append((batch.tensors(), batch.label))
        if len(out) == n:
            break
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["particlenet-lite", "lorentznet-lite", "pelican-lite"],
        choices=list(EXPERIMENTS),
    )
    parser.add_argument("--name", default="lorentz_speed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = {
        m: batches(args.data, DATA[EXPERIMENTS[m]], args.batches, args.batch_size)
        for m in args.models
    }
    steps = {}
    for name, data in loaded.items():
        torch.manual_seed(0)
        tensors = data[0][0]
        dims = {k: v.shape[1] for k, v in tensors.items() if v.dim() >= 2}
        model = build_model(name, dims, 2)
        assert isinstance(model, torch.nn.Module)
        steps[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))

    def epoch(name: str) -> float:
        model, opt = steps[name]
        model.train()
        jets, start = 0, time.perf_counter()
        for tensors, labels in loaded[name]:
            logits = model(*(tensors[k] for k in model.input_names))
            loss = F.cross_entropy(logits, labels.long())
            opt.zero_grad()
            loss.backward()
            opt.step()
            jets += len(labels)
        return jets / (time.perf_counter() - start)

    for name in args.models:  # warm-up
        epoch(name)
    rates: dict[str, list[float]] = {name: [] for name in args.models}
    for rep in range(args.reps):
        for name in args.models if rep % 2 == 0 else args.models[::-1]:
            rates[name].append(epoch(name))
            print(f"rep {rep} {name}: {rates[name][-1]:.1f} jets/s", flush=True)
    figures: dict[str, Any] = {
        "threads": args.threads,
        "batch_size": args.batch_size,
        "batches": args.batches,
        "reps": args.reps,
        "sample": str(args.data),
        "models": {},
    }
    for name in args.models:
        model = steps[name][0]
        figures["models"][name] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "jets_per_s": {"best": max(rates[name]), "median": statistics.median(rates[name])},
            "mean_slots": statistics.fmean(float(t["pf_mask"].shape[2]) for t, _ in loaded[name]),
        }
        print(name, figures["models"][name], flush=True)
    print("wrote", write_results(args.name, figures))


if __name__ == "__main__":
    main()
