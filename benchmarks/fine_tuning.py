"""Fine-tuning: ParT-lite pre-trained on JetClass-like jets, then fine-tuned on a small
top-vs-QCD sample, against the same model trained from scratch on that sample.

    python benchmarks/fine_tuning.py [--pre-jets 400] [--jets 500] [--seeds 3]
                                     [--pre-epochs 3] [--epochs 6] [--out /tmp/fine-tuning]

What runs, all in this process, through heptagon's own stages (docs/fine-tuning.md):

- ``jetclass-like`` (ten classes, pT 500-1000 GeV, MPI on), ``--pre-jets`` per class,
  seed 1; ``top-vs-qcd`` (pT 550-650 GeV), ``--jets`` per class, seed 2;
- pre-training: ``configs/top_part_lite.yaml`` with the ten JetClass labels,
  ``--pre-epochs`` epochs, seed 0;
- per seed (0 .. ``--seeds`` - 1), on the top sample: fine-tuning from the pre-trained
  best checkpoint (``--load-model-weights``, ``--no-strict``: the ten-class head is
  skipped and a new two-class one trained; lr 3e-4, the recipe's) and training from
  scratch (the config's lr, 1e-3); both ``--epochs`` epochs, batches of 64, 10 warm-up
  steps, early stopping off, the best validation loss's checkpoint scored on the test
  split (``heptagon.evaluate``).

Printed and written to ``benchmarks/results/fine_tuning.json``: the test AUC per seed,
mean and standard deviation over seeds, for both, and the wall time of each stage.
``--out`` is resumable: finished samples and runs are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from _common import write_results

from heptagon.evaluate.run import evaluate
from heptagon.generate.run import GenerateOptions, generate
from heptagon.train import train
from heptagon.train.experiment import ModelFlags

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = ROOT / "configs" / "top_part_lite.yaml"
JETCLASS = ("QCD", "Hbb", "Hcc", "Hgg", "H4q", "Hqql", "Zqq", "Wqq", "Tbqq", "Tbl")
FINE_TUNE_LR = 3e-4


def _sample(name: str, jets: int, seed: int, out: Path) -> tuple[Path, float]:
    t0 = time.perf_counter()
    generate(GenerateOptions(sample=name, jets=jets, seed=seed, out=out), show_progress=False)
    return out, time.perf_counter() - t0


def _run(
    data: Path, out: Path, settings: list[str], flags: ModelFlags | None = None
) -> tuple[float, float]:
    """Train (unless finished) and evaluate on the test split: (test AUC, wall s)."""
    t0 = time.perf_counter()
    if not (out / "eval" / "metrics.json").exists():
        resume = (out / "checkpoints" / "last.pt").exists()
        train(EXPERIMENT, data, out, overrides=settings, resume=resume, flags=flags)
        evaluate(out, n_boot=20)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    return float(metrics["auc"]["value"]), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pre-jets", type=int, default=400, help="JetClass-like jets per class")
    parser.add_argument("--jets", type=int, default=500, help="top-vs-QCD jets per class")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pre-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fine-tuning"))
    args = parser.parse_args()
    out: Path = args.out
    common = ["train.batch_size=64", "train.warmup_steps=10", "train.patience=null",
              "train.progress=false"]  # fmt: skip
    jetclass, gen_pre_s = _sample("jetclass-like", args.pre_jets, 1, out / "jetclass")
    top, gen_top_s = _sample("top-vs-qcd", args.jets, 2, out / "top")
    labels = "data.labels=[" + ", ".join(f"label_{c}" for c in JETCLASS) + "]"
    pre_settings = [*common, f"train.epochs={args.pre_epochs}", labels]
    pre_auc, pre_s = _run(jetclass, out / "pretrained", pre_settings)
    print(f"pre-trained on {args.pre_jets} x 10 JetClass-like jets: macro AUC {pre_auc:.4f}")

    auc: dict[str, list[float]] = {"fine_tuned": [], "scratch": []}
    wall: dict[str, list[float]] = {"fine_tuned": [], "scratch": []}
    for seed in range(args.seeds):
        settings = [*common, f"train.epochs={args.epochs}", f"train.seed={seed}"]
        flags = ModelFlags(weights=out / "pretrained", strict=False)
        runs = {
            "fine_tuned": ([*settings, f"train.lr={FINE_TUNE_LR}"], flags),
            "scratch": (settings, None),
        }
        for name, (run_settings, run_flags) in runs.items():
            value, seconds = _run(top, out / f"{name}-{seed}", run_settings, run_flags)
            auc[name].append(value)
            wall[name].append(seconds)
            print(f"seed {seed} {name}: test AUC {value:.4f} ({seconds:.0f} s)")

    summary: dict[str, Any] = {}
    for name, values in auc.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[name] = {"auc": values, "mean": statistics.mean(values), "std": spread,
                         "wall_s": wall[name]}  # fmt: skip
        print(f"{name}: AUC {summary[name]['mean']:.4f} +- {spread:.4f} over {len(values)} seeds")
    gain = summary["fine_tuned"]["mean"] - summary["scratch"]["mean"]
    print(f"fine-tuning - scratch: {gain:+.4f}")
    write_results(
        "fine_tuning",
        {
            "model": "part-lite",
            "pretraining": {"sample": "jetclass-like", "jets_per_class": args.pre_jets,
                            "epochs": args.pre_epochs, "test_macro_auc": pre_auc,
                            "wall_s": pre_s, "generate_s": gen_pre_s},
            "fine_tuning_sample": {"sample": "top-vs-qcd", "jets_per_class": args.jets,
                                   "epochs": args.epochs, "generate_s": gen_top_s,
                                   "fine_tune_lr": FINE_TUNE_LR, "scratch_lr": 1e-3,
                                   "batch_size": 64},
            "test_auc": summary,
            "auc_gain_fine_tuned_minus_scratch": gain,
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
