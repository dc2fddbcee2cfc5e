"""Heavy-flavour tagging (issue 21): BDT, DeepJet, ParticleNet-AK4 and ParT-AK4 on one
``ak4-flavour`` sample, with and without secondary-vertex inputs; the vertex finder's
efficiency and fake rate; ONNX Runtime inference cost per jet at 1 thread.

    python benchmarks/flavour.py [--jets 1500] [--seeds 1] [--epochs 3] [--warmup-steps N]
                                 [--batch-size N]
                                 [--models bdt deepjet particlenet part] [--sample DIR]
                                 [--out /tmp/flavour] [--timing-jets 300] [--n-boot 100]
                                 [--no-nosv] [--split 0.7 0.15 0.15]
                                 [--pileup 60 --mitigation chs] [--results NAME]

What runs, all in this process:

- one ``ak4-flavour`` sample (``--jets`` per class, seed 21; with ``--pileup MU``
  ``--mitigation M`` pile-up overlaid and mitigated, seed 22) generated into
  ``OUT/sample-<jets>[-pu<MU>-<M>]``, or the dataset dir ``--sample``;
- the vertex finder on it: the fraction of jets with at least one SV per class, with and
  without the V0 veto (``jet_nv0``: vertices removed by it alone), overall and in bins
  of jet pT for b, c and light (uds + g) jets, with binomial errors (the SV-finding
  efficiency and the fake rate);
- per model, SV variant (``configs/ak4_<model>.yaml`` and ``ak4_<model>_nosv.yaml``;
  ``--no-nosv``: with SVs only) and seed (0 .. ``--seeds`` - 1): ``heptagon.train.train``
  with ``--epochs`` full epochs (early stopping off; the BDT its own early stopping;
  ``--warmup-steps`` and ``--batch-size`` replace the configs' learning-rate warm-up and
  batch size, for short runs on small samples;
  ``--split``: train / val / test fractions instead of the configs' 0.7 / 0.15 / 0.15,
  for a larger test split), into ``OUT/runs-<hash of the sample and settings>`` (a
  finished run there is reused), ``heptagon.evaluate.evaluate`` on the run's test split
  (``--n-boot`` bootstrap resamples), and its ``flavour`` metrics (docs/flavour.md): AUC
  and light rejection at 70% b efficiency of BvsAll (b vs uds + g), c rejection at 70% b
  efficiency (b vs c), b efficiency at 1% and 0.1% light mistag, the c efficiency of CvsL
  at 10% / 1% light mistag and of CvsB at 10% / 1% b mistag;
- seed 0 of each is exported (``heptagon export``) and timed in ONNX Runtime with one
  thread at batch size 1 (the first ``--timing-jets`` test jets, each padded to its own
  length, as CMSSW evaluates jet by jet): the median time of ``session.run`` per jet.

Printed and written to ``benchmarks/results/flavour.json`` (``flavour_pu<MU>.json`` with
pile-up; ``--results NAME``: ``NAME.json``, for a reference run beside a committed table,
such as the same jets per class without pile-up; the taggers a run with the same sample
and settings wrote are kept, so that ``--models`` subsets can run one after the other or
side by side; rewritten after each tagger, so an interrupted run keeps what it finished):
per model and variant the mean and spread (standard deviation over seeds) of each figure,
the SV gain (with minus without), the inference cost, the vertex-finder table, the sample
size and the epochs.
The published ordering to compare with: BDT < DeepJet < ParticleNet-AK4 < ParT-AK4.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from _common import RESULTS, write_results

from heptagon.data.io import open_reader
from heptagon.data.loader import pad_table
from heptagon.data.pipeline import iter_tables
from heptagon.data.transform import Table, Transform
from heptagon.evaluate.run import evaluate
from heptagon.generate.run import GenerateOptions, generate
from heptagon.infer.predict import Scorer
from heptagon.io import write_json_atomic
from heptagon.publish.bundle import export_run
from heptagon.train import train

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("bdt", "deepjet", "particlenet", "part")
CLASSES = ("b", "c", "uds", "g_ak4")
#: jet pT bin edges (GeV) of the SV-finding efficiency
PT_BINS = (30.0, 50.0, 80.0, 120.0, 200.0, 1000.0)


def experiment(model: str, sv: bool) -> Path:
    return ROOT / "configs" / f"ak4_{model}{'' if sv else '_nosv'}.yaml"


def binomial(passed: np.ndarray) -> dict[str, float | int | None]:
    """The fraction of ``passed`` (booleans), its binomial error and, where none passed,
    the 95% CL upper limit ``1 - 0.05^(1/n)``."""
    n, k = int(passed.size), int(passed.sum())
    if n == 0:
        return {"value": None, "err": None, "upper_95": None, "jets": 0, "passed": 0}
    f = k / n
    return {
        "value": f,
        "err": float(np.sqrt(f * (1 - f) / n)),
        "upper_95": float(1 - 0.05 ** (1 / n)) if k == 0 else None,
        "jets": n,
        "passed": k,
    }


def vertex_finder(sample: Path) -> dict[str, Any]:
    """Fraction of jets with >= 1 SV per class and for light (uds + g) jets, with the V0
    veto (the sample's SVs) and without it (an SV or a vertex the veto alone removed,
    ``jet_nv0``), overall and in jet-pT bins."""
    out: dict[str, Any] = {"with_v0_veto": {}, "without_v0_veto": {}, "vs_pt": {}}
    has: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for cls in CLASSES:
        jets = ak.concatenate(
            [
                ak.from_parquet(f, columns=["jet_pt", "sv_mass", "jet_nv0"])
                for f in sorted((sample / "shards").glob(f"{cls}_*.parquet"))
            ]
        )
        sv = ak.to_numpy(ak.num(jets.sv_mass) > 0)
        has[cls] = (ak.to_numpy(jets.jet_pt), sv, sv | (ak.to_numpy(jets.jet_nv0) > 0))
    has["light"] = tuple(  # type: ignore[assignment]
        np.concatenate([has["uds"][i], has["g_ak4"][i]]) for i in range(3)
    )
    for cls, (pt, veto, no_veto) in has.items():
        out["with_v0_veto"][cls] = binomial(veto)
        out["without_v0_veto"][cls] = binomial(no_veto)
        if cls in ("b", "c", "light"):
            out["vs_pt"][cls] = [
                {
                    "pt_min": lo,
                    "pt_max": hi,
                    "with_v0_veto": binomial(veto[(pt >= lo) & (pt < hi)]),
                    "without_v0_veto": binomial(no_veto[(pt >= lo) & (pt < hi)]),
                }
                for lo, hi in itertools.pairwise(PT_BINS)
            ]
    return out


def flavour_figures(run: Path) -> dict[str, float | None]:
    m = json.loads((run / "eval" / "metrics.json").read_text())["flavour"]
    return {
        "auc_b_vs_light": m["b_vs_light"]["auc"]["value"],
        "light_rejection_at_b70": m["b_vs_light"]["rejection_at_eff"]["0.7"]["value"],
        "light_rejection_at_b70_lower_limit": m["b_vs_light"]["rejection_at_eff"]["0.7"][
            "lower_limit"
        ],
        "c_rejection_at_b70": m["b_vs_c"]["rejection_at_eff"]["0.7"]["value"],
        "b_eff_at_light_1pc": m["b_vs_light"]["eff_at_mistag"]["0.01"]["value"],
        "b_eff_at_light_0.1pc": m["b_vs_light"]["eff_at_mistag"]["0.001"]["value"],
        "auc_c_vs_light": m["c_vs_light"]["auc"]["value"],
        "cvsl_c_eff_at_light_10pc": m["c_vs_light"]["eff_at_mistag"]["0.1"]["value"],
        "cvsl_c_eff_at_light_1pc": m["c_vs_light"]["eff_at_mistag"]["0.01"]["value"],
        "auc_c_vs_b": m["c_vs_b"]["auc"]["value"],
        "cvsb_c_eff_at_b_10pc": m["c_vs_b"]["eff_at_mistag"]["0.1"]["value"],
        "cvsb_c_eff_at_b_1pc": m["c_vs_b"]["eff_at_mistag"]["0.01"]["value"],
    }


def test_table(model_path: Path, sample: Path, jets: int) -> tuple[Scorer, Table]:
    """A scorer on the export (1 thread) and the first ``jets`` jets of each class."""
    scorer = Scorer(model_path, threads=1, batch_size=1)
    transform = Transform(scorer.config, scorer.model.preprocess, with_labels=False)
    tables = []
    for cls in CLASSES:
        path = sorted((sample / "shards").glob(f"{cls}_*.parquet"))[-1]
        with open_reader(path) as reader:
            units = list(reader.units(jets))[:1]
        table = Table.concatenate(list(iter_tables(units, transform, jets, files_at_once=1)))
        tables.append(table.take(np.arange(min(jets, len(table)))))
    return scorer, Table.concatenate(tables)


def inference_cost(run: Path, sample: Path, jets: int) -> dict[str, float]:
    """Median ONNX Runtime time per jet (batch 1, 1 thread) of the run's export."""
    export_run(run)
    scorer, table = test_table(run / "model.onnx", sample, max(1, jets // len(CLASSES)))
    names = scorer.model.input_names
    feeds = []
    for i in range(len(table)):
        tensors = pad_table(table, scorer.model.preprocess, index=np.array([i])).tensors()
        feeds.append({n: tensors[n].numpy() for n in names})
    session = scorer.session
    for feed in feeds[:20]:  # warm-up
        session.run(None, feed)
    times = []
    for feed in feeds:
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return {
        "ms_per_jet_median": 1e3 * float(np.median(times)),
        "ms_per_jet_p90": 1e3 * float(np.percentile(times, 90)),
        "jets_timed": len(times),
    }


def summarise(values: list[float | None]) -> dict[str, float | None]:
    good = [v for v in values if v is not None]
    return {
        "mean": statistics.fmean(good) if good else None,
        "spread": statistics.stdev(good) if len(good) > 1 else None,
        "n": len(good),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jets", type=int, default=1500, help="jets per class")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--sample", type=Path, help="an existing ak4-flavour dataset dir")
    parser.add_argument("--out", type=Path, default=Path("/tmp/flavour"))
    parser.add_argument("--timing-jets", type=int, default=300)
    parser.add_argument("--warmup-steps", type=int, help="learning-rate warm-up steps")
    parser.add_argument("--batch-size", type=int, help="training batch size (networks)")
    parser.add_argument("--n-boot", type=int, default=100, help="evaluation bootstrap")
    parser.add_argument("--no-nosv", action="store_true", help="skip the no-SV variants")
    parser.add_argument(
        "--split", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="fractions"
    )
    parser.add_argument("--pileup", type=float, help="mean pile-up of a generated sample")
    parser.add_argument("--mitigation", choices=("none", "chs", "puppi"), default="chs")
    parser.add_argument(
        "--results", help="results file name (default flavour, or flavour_pu<MU> with pile-up)"
    )
    args = parser.parse_args()

    tag = "" if args.pileup is None else f"-pu{args.pileup:g}-{args.mitigation}"
    sample = args.sample or args.out / f"sample-{args.jets}{tag}"
    if args.sample is None and not (sample / "manifest.json").exists():
        pu: dict[str, Any] = {}
        if args.pileup is not None:
            pu = {"pileup": args.pileup, "mitigation": args.mitigation}
        seed = 21 if args.pileup is None else 22
        generate(GenerateOptions(sample="ak4-flavour", jets=args.jets, seed=seed, out=sample, **pu))
    manifest = json.loads((sample / "manifest.json").read_text())
    pileup = manifest.get("pileup")
    figures: dict[str, Any] = {
        "sample": {
            "path": str(sample),
            "jets_per_class": {c: manifest["classes"][c].get("jets") for c in CLASSES}
            if isinstance(manifest.get("classes"), dict)
            else None,
            "pileup": None
            if pileup is None
            else {k: pileup.get(k) for k in ("mu", "mitigation") if k in pileup},
            "epochs": args.epochs,
            "warmup_steps": args.warmup_steps,
            "batch_size": args.batch_size,
            "split": args.split,
            "seeds": args.seeds,
        },
        "vertex_finder": vertex_finder(sample),
        "taggers": {},
    }
    print(json.dumps(figures["vertex_finder"], indent=1), flush=True)
    name = args.results or ("flavour" if pileup is None else f"flavour_pu{float(pileup['mu']):g}")
    runs = runs_dir(args.out, figures["sample"])
    mine: dict[str, Any] = {}
    for model in args.models:
        for sv in (True,) if args.no_nosv else (True, False):
            key = f"{model}{'' if sv else '_nosv'}"
            per_seed = []
            for seed in range(args.seeds):
                run = runs / f"{key}-seed{seed}"
                overrides = [f"train.seed={seed}"]
                if args.split is not None:
                    overrides += [
                        f"split.{part}={frac}"
                        for part, frac in zip(("train", "val", "test"), args.split, strict=True)
                    ]
                if model == "bdt":
                    overrides.append(f"model.options.seed={seed}")
                else:
                    overrides += [f"train.epochs={args.epochs}", "train.patience=null"]
                    if args.warmup_steps is not None:
                        overrides.append(f"train.warmup_steps={args.warmup_steps}")
                    if args.batch_size is not None:
                        overrides.append(f"train.batch_size={args.batch_size}")
                start, wall = time.perf_counter(), None  # None: a finished run reused
                if not (run / "eval" / "metrics.json").exists():
                    train(experiment(model, sv), sample, run, overrides)
                    evaluate(run, n_boot=args.n_boot)
                    wall = time.perf_counter() - start
                per_seed.append({**flavour_figures(run), "wall_s": wall})
                print(key, seed, per_seed[-1], flush=True)
            entry: dict[str, Any] = {
                "command": " ".join(["python", *sys.argv]),
                "config": experiment(model, sv).relative_to(ROOT).as_posix(),
                "per_seed": per_seed,
                "summary": {k: summarise([s[k] for s in per_seed]) for k in per_seed[0]},
            }
            entry["onnx_1thread_batch1"] = inference_cost(
                runs / f"{key}-seed0", sample, args.timing_jets
            )
            mine[key] = entry
            figures["taggers"] = merged_taggers(name, figures["sample"], mine)
            figures["sv_gain_with_minus_without"] = sv_gains(figures["taggers"])
            path = write_results(name, figures)
    print(json.dumps(figures["sv_gain_with_minus_without"], indent=1))
    print(f"written: {path}")


def merged_taggers(name: str, sample: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
    """This run's taggers plus those that a run with the same sample and settings (other
    ``--models``, perhaps at the same time) wrote to ``results/<name>.json`` before."""
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text())["figures"] if path.exists() else {}
    kept = old.get("taggers", {}) if old.get("sample") == sample else {}
    return {**kept, **mine}


def runs_dir(out: Path, sample: dict[str, Any]) -> Path:
    """Where the runs of one sample and set of training settings live: ``OUT/runs-<hash>``
    of ``figures["sample"]`` less ``seeds``, with that dict as ``settings.json``. A
    finished run is reused only from here, so a call with another sample (``--pileup``,
    ``--jets``, ``--sample``) or other settings (``--epochs``, ``--split``, ...) never
    reports the runs of an earlier one; more ``--seeds`` add to the same dir."""
    settings = {k: v for k, v in sample.items() if k != "seeds"}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    runs = out / f"runs-{digest[:12]}"
    runs.mkdir(parents=True, exist_ok=True)
    write_json_atomic(runs / "settings.json", settings)
    return runs


def sv_gains(taggers: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """With minus without SV inputs, per model run in both variants (means over seeds)."""
    gains = {}
    for key in taggers:
        if key.endswith("_nosv") or f"{key}_nosv" not in taggers:
            continue
        with_sv, without = taggers[key]["summary"], taggers[f"{key}_nosv"]["summary"]
        gains[key] = {
            k: None
            if with_sv[k]["mean"] is None or without[k]["mean"] is None
            else with_sv[k]["mean"] - without[k]["mean"]
            for k in (
                "auc_b_vs_light",
                "light_rejection_at_b70",
                "c_rejection_at_b70",
                "auc_c_vs_light",
            )
        }
    return gains


if __name__ == "__main__":
    main()
