"""Continual learning for a trigger model on a degrading detector: no retraining, plain
fine-tuning, EWC and experience replay, each scored on every condition seen so far.

    python benchmarks/continual.py [--jets 3000] [--topup 400] [--seeds 3] [--epochs 30]
                                   [--out /tmp/trigger-bench] [--jobs 2] [--name continual]

What runs, all in this process:

- the model: the 64-32-32-5 MLP on the 16 high-level features (g / q / W / Z / t, R = 0.8,
  pT 800-1200 GeV; ``benchmarks/trigger.py``'s sample and split), trained on the nominal
  detector (``--jets`` per class; best validation epoch of ``--epochs``);
- three successively degraded detectors (``_trigger_data.CONDITIONS``, generated with
  ``heptagon generate``'s ``--detector-set``; docs/trigger.md): tracker
  inefficiency (charged-hadron track efficiency -0.2), + worse ECAL/HCAL resolution, +
  HCAL towers twice as coarse and 3x worse track pT resolution; ``--topup`` jets per class
  each (another seed), half a small top-up training set, half its test set; the
  features are standardised as for the nominal model (the deployed preprocessing);
- after each top-up, per strategy: ``none`` (the nominal model kept), ``finetune``
  (Adam at a tenth of the learning rate, 20 epochs on the top-up only), ``ewc_<s>`` (the
  same plus online EWC of strength ``s``, each of ``--ewc``, default 100 and 10000; Fisher
  from each condition's training data)
  and ``replay`` (the same fine-tuning on the top-up plus a memory of 1000 earlier jets,
  an equal share per condition seen), each scored (accuracy) on the test sets of every
  condition so far; mean and spread over ``--seeds`` (initialisation and batch order).

Forgetting shows as a drop on the nominal (and earlier) columns. Results go to
``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import _trigger_data as samples
import numpy as np
import torch
from _common import write_results
from torch import Tensor, nn

from heptagon.apps.trigger.loop import fit, predict_proba, score, split, train_best
from heptagon.models import build_model
from heptagon.train.continual import EWC, ReplayMemory

TOPUP_EPOCHS = 20
TOPUP_LR = 3e-4
MEMORY = 1000


def accuracy(model: nn.Module, data: tuple[Tensor, Tensor]) -> float:
    return score(predict_proba(model, [data[0]]), data[1].numpy()).accuracy


def run_seed(
    seed: int,
    nominal: dict[str, tuple[Tensor, Tensor]],
    conditions: dict[str, dict[str, tuple[Tensor, Tensor]]],
    epochs: int,
    strategies: list[str],
) -> dict[str, list[dict[str, float]]]:
    """Per strategy, after each step (nominal, then each top-up): accuracy per condition."""
    torch.manual_seed(seed)
    base = build_model("mlp", {"jet_features": 16}, 5)
    xs = {k: [v[0]] for k, v in nominal.items()}
    ys = {k: v[1] for k, v in nominal.items()}
    train_best(base, xs, ys, epochs, 3e-3)
    tests = {"nominal": nominal["test"]}
    out: dict[str, list[dict[str, float]]] = {}
    for strategy in strategies:
        model = build_model("mlp", {"jet_features": 16}, 5)
        model.load_state_dict(base.state_dict())
        ewc = EWC(float(strategy.split("_")[1]) if strategy.startswith("ewc") else 0.0)
        memory = ReplayMemory(MEMORY, seed=seed)
        ewc.consolidate(model, [nominal["train"][0]], nominal["train"][1])
        memory.add([nominal["train"][0]], nominal["train"][1])
        steps = [{"nominal": accuracy(model, nominal["test"])}]
        seen = dict(tests)
        for name, data in conditions.items():
            x, y = data["topup"]
            if strategy == "finetune":
                fit(model, [x], y, epochs=TOPUP_EPOCHS, lr=TOPUP_LR, seed=seed)
            elif strategy.startswith("ewc"):
                fit(model, [x], y, epochs=TOPUP_EPOCHS, lr=TOPUP_LR, seed=seed, penalty=ewc.penalty)
                ewc.consolidate(model, [x], y)
            elif strategy == "replay":
                mx, my = memory.mix([x], y)
                fit(model, mx, my, epochs=TOPUP_EPOCHS, lr=TOPUP_LR, seed=seed)
                memory.add([x], y)
            seen[name] = data["test"]
            steps.append({c: accuracy(model, d) for c, d in seen.items()})
        out[strategy] = steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jets", type=int, default=3000)
    parser.add_argument("--topup", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--ewc", type=float, nargs="+", default=[100.0, 10000.0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/trigger-bench"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--name", default="continual")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()

    files = samples.nominal(args.out / f"hlf-{args.jets}", args.jets, seed=1, jobs=args.jobs)
    x_all, y_all = samples.features(files)
    parts = split(len(y_all))
    mean = x_all[parts["train"]].mean(0)
    std = x_all[parts["train"]].std(0) + 1e-6

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[Tensor, Tensor]:
        return torch.from_numpy((x - mean) / std), torch.from_numpy(y)

    nominal = {k: tensors(x_all[i], y_all[i]) for k, i in parts.items()}
    conditions = {}
    for name, knobs in list(samples.CONDITIONS.items())[1:]:
        cfiles = samples.modified(
            args.out / f"continual-{args.topup}" / name, args.topup, 2, args.jobs, knobs
        )
        x, y = samples.features(cfiles)
        order = np.random.default_rng(0).permutation(len(y))
        half = len(y) // 2
        conditions[name] = {
            "topup": tensors(x[order[:half]], y[order[:half]]),
            "test": tensors(x[order[half:]], y[order[half:]]),
        }
    print(f"samples ready: {time.perf_counter() - start:.0f} s")

    strategies = ["none", "finetune", *(f"ewc_{lam:g}" for lam in args.ewc), "replay"]
    runs = [run_seed(s, nominal, conditions, args.epochs, strategies) for s in range(args.seeds)]
    table: dict[str, list[dict[str, dict[str, float]]]] = {}
    for strategy in strategies:
        table[strategy] = []
        for step in range(len(conditions) + 1):
            cells = {}
            for cond in runs[0][strategy][step]:
                values = [r[strategy][step][cond] for r in runs]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cells[cond] = {"mean": statistics.mean(values), "spread": spread}
            table[strategy].append(cells)
    after = ["nominal only", *(f"after {c}" for c in conditions)]
    names = ["nominal", *conditions]
    print("\naccuracy (mean +- spread over seeds) on each condition's test set")
    print(f"{'strategy':9s} {'step':26s} " + " ".join(f"{n:>16s}" for n in names))
    for strategy, steps in table.items():
        for label, cells in zip(after, steps, strict=True):
            row = " ".join(
                f"{cells[n]['mean']:.3f}+-{cells[n]['spread']:.3f}".rjust(16)
                if n in cells
                else " " * 16
                for n in names
            )
            print(f"{strategy:9s} {label:26s} {row}")
    fig = {
        "machine_shared": "yes: 2 cores shared with 3 other agents' work",
        "conditions": {n: samples.detector_set(k) for n, k in samples.CONDITIONS.items()},
        "jets_per_class": {"nominal": args.jets, "per_condition": args.topup},
        "topup_jets": {n: len(c["topup"][1]) for n, c in conditions.items()},
        "test_jets": {
            "nominal": len(nominal["test"][1]),
            **{n: len(c["test"][1]) for n, c in conditions.items()},
        },
        "settings": {
            "seeds": args.seeds,
            "epochs": args.epochs,
            "topup_epochs": TOPUP_EPOCHS,
            "topup_lr": TOPUP_LR,
            "ewc_strengths": args.ewc,
            "replay_memory": MEMORY,
        },
        "steps": after,
        "accuracy": table,
        "wall_s": time.perf_counter() - start,
        "load_average_end": os.getloadavg(),
    }
    print(f"results: {write_results(args.name, fig)}")


if __name__ == "__main__":
    main()
