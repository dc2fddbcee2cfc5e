"""The figures of the PNN, domain-adaptation, weak-supervision, anomaly (incl. the L1
trigger-level AE), trigger QAT / hls and continual top-up benchmarks, reproduced through
the documented user commands, next to the benchmark's own figures.

    python benchmarks/cli_figures.py --part anomaly|trigger|continual|ws|da|pnn
                                     [--out /tmp/cli-figures] [size options of the part]

Each part runs the ``heptagon ...`` command lines of its docs page (docs/anomaly.md,
docs/trigger.md, docs/workflows.md) as a user would, in a subprocess, in a work directory
``OUT/<part>`` where ``configs`` is the shipped configs, at the benchmark's sizes and seeds
(``--set`` / options only where the benchmark's size differs from the config's default),
reads the artifacts they write (``metrics.json``, ``trigger.json``, ``hls.json``,
``ad.json``) and puts each figure beside the benchmark's: the benchmark's value, the CLI's,
their difference and ratio, and the spread they should agree within (the spread over
seeds, or the statistical error where the benchmark has one seed).

The benchmark's figures come from ``benchmarks/results/<benchmark>.json`` when that file
was made at the part's sizes; otherwise the part reruns the benchmark script at them
(``--rerun-benchmark``: its results go to a temporary results name, are folded into this
file and removed). The part's figures replace ``figures[part]`` of
``benchmarks/results/cli_figures.json`` with the exact command lines run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from _common import RESULTS, write_results

from heptagon.io import sha256sum

ROOT = Path(__file__).resolve().parent.parent
HEPTAGON = Path(sys.executable).with_name("heptagon")


class Route:
    """Runs ``heptagon`` command lines in one work directory and records them."""

    def __init__(self, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        configs = work / "configs"
        if configs.is_symlink() and configs.resolve() != (ROOT / "configs").resolve():
            configs.unlink()  # another checkout's (or a removed worktree's): this one's
        if not configs.exists():
            configs.symlink_to(ROOT / "configs")
        self.commands: list[str] = []
        self.wall_s = 0.0

    def __call__(self, *argv: str, done: str | None = None) -> None:
        """Run ``heptagon ARGV`` in the work dir; ``done``: a path that, when it exists
        already, means an earlier call of this run made it (the line is recorded, not rerun)."""
        line = "heptagon " + shlex.join(argv)
        self.commands.append(line)
        if done is not None and (self.work / done).exists():
            return
        print(f"$ {line}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(HEPTAGON), "--quiet", *argv], cwd=self.work, capture_output=True, text=True
        )
        self.wall_s += time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"failed ({proc.returncode}): {line}\n{proc.stderr[-3000:]}")

    def json(self, path: str) -> Any:
        """An artifact the commands wrote, relative to the work dir."""
        return json.loads((self.work / path).read_text())

    def record(self, bench: dict[str, Any], same: bool | None, rows: list[dict]) -> dict[str, Any]:
        """The end of a part's figures (after its sizes and seeds): where the benchmark's
        figures come from, whether both routes made the same jets (:func:`same_jets`),
        the command lines this route ran and their wall time, and the ``rows``."""
        return {
            "benchmark": {k: bench.get(k) for k in ("source", "command", "commit")},
            "same_jets": same,
            "commands": self.commands,
            "cli_wall_s": round(self.wall_s, 1),
            "rows": rows,
        }


def row(figure: str, bench: float, cli: float, spread: float | None, note: str = "") -> dict:
    """One figure: benchmark vs CLI, difference, ratio, and whether the difference is within
    ``spread`` (seed spread or statistical error; None: not known)."""
    diff = cli - bench
    return {
        "figure": figure,
        "benchmark": bench,
        "cli": cli,
        "difference": diff,
        "ratio": cli / bench if bench else None,
        "spread": spread,
        "within_spread": None if spread is None else abs(diff) <= max(spread, 1e-12),
        **({"note": note} if note else {}),
    }


def quadrature(*terms: float) -> float:
    """The terms added in quadrature (independent errors of a difference)."""
    return float(sum(t**2 for t in terms) ** 0.5)


def test_size(jets: int) -> int:
    """The test jets of a benchmark that splits ``jets`` 70 / 30 by position."""
    return jets - int(0.7 * jets)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def benchmark(
    name: str,
    recorded: Callable[[dict[str, Any]], dict[str, Any]],
    sizes: dict[str, Any],
    rerun: list[str] | None,
    part: str | None = None,
) -> dict[str, Any]:
    """The benchmark's figures (``figures``, with ``source``, ``command``, ``commit``):
    with ``rerun`` (the script's argv), from a rerun at the part's sizes on this commit;
    else from ``benchmarks/results/<name>.json`` if ``recorded(payload)`` (the sizes and
    seeds the file records, from its figures and command) equals ``sizes``. ``part``: the
    benchmark writes its figures under that key."""

    def unpack(payload: dict[str, Any]) -> dict[str, Any]:
        if part is None:
            return payload
        inner = payload["figures"][part]
        return {"command": inner["command"], "commit": inner["commit"], "figures": inner}

    path = RESULTS / f"{name}.json"
    if rerun is None:
        payload = unpack(json.loads(path.read_text())) if path.exists() else {}
        try:
            same = recorded(payload) == sizes
        except KeyError:
            same = False
        if same:
            return {**payload, "source": f"benchmarks/results/{name}.json"}
        raise SystemExit(
            f"benchmarks/results/{name}.json was not made at {sizes}: pass --rerun-benchmark"
        )
    tmp = RESULTS / f"_cli_figures_{name}.json"
    running = tmp.with_suffix(".running")  # a rerun an interrupted call started goes on
    while running.exists() and not tmp.exists():
        time.sleep(10)
    payload = unpack(json.loads(tmp.read_text())) if tmp.exists() else {}
    try:
        done = recorded(payload) == sizes  # a rerun an interrupted call left
    except KeyError:
        done = False
    if not done:
        cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *rerun]
        cmd += ["--name", tmp.stem]
        print("$ " + shlex.join(cmd), flush=True)
        running.touch()
        subprocess.run(cmd, cwd=ROOT / "benchmarks", check=True)
        payload = unpack(json.loads(tmp.read_text()))
    tmp.unlink()
    running.unlink(missing_ok=True)
    command = shlex.join(["python", f"{name}.py", *rerun])
    return {**payload, "command": command, "source": "rerun by cli_figures.py at these sizes"}


def same_jets(cli_sample: Path, bench_sample: Path) -> bool | None:
    """Whether the sample the CLI generated and the one a benchmark rerun generated (same
    options and seeds) hold the same shard files byte for byte; None without a rerun."""
    if not bench_sample.exists():
        return None

    def digests(root: Path) -> dict[str, str]:
        return {str(f.relative_to(root)): sha256sum(f) for f in root.rglob("*.parquet")}

    return digests(cli_sample) == digests(bench_sample)


def option(command: str, flag: str, default: int) -> int:
    """The integer value of ``flag`` in a recorded command line, else ``default``."""
    words = command.split()
    return int(words[words.index(flag) + 1]) if flag in words else default


# --------------------------------------------------------------------------- anomaly


def part_anomaly(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """docs/anomaly.md's workflow for both shipped detectors (autoencoder, VAE) at the
    benchmark's events, epochs, QAT epochs and rates, vs benchmarks/anomaly.py."""
    rates = [f"{r:g}" for r in args.rates_khz]
    cli = Route(out / "anomaly")
    cli(
        "generate-events",
        "tth-analysis",
        "--events",
        str(args.events),
        "--seed",
        "1",
        "--jobs",
        "2",
        "--out",
        "ad-sample",
        done="ad-sample/manifest.json",
    )
    bench = benchmark(
        "anomaly",
        lambda p: {k: p["figures"][k] for k in ("events_per_process", "epochs", "qat_epochs")},
        {"events_per_process": args.events, "epochs": args.epochs, "qat_epochs": args.qat_epochs},
        [
            "--events",
            str(args.events),
            "--epochs",
            str(args.epochs),
            "--qat-epochs",
            str(args.qat_epochs),
            "--rates-khz",
            *rates,
            "--out",
            str(out / "bench-anomaly"),
        ]
        if args.rerun_benchmark
        else None,
    )
    rows = []
    for name, config in {"autoencoder": "ad_l1_ae", "vae": "ad_l1_vae"}.items():
        run = f"runs/ad-{name}"
        cli(
            "train",
            f"configs/{config}.yaml",
            "--data",
            "ad-sample",
            "--out",
            run,
            "--set",
            f"train.epochs={args.epochs}",
            done=f"{run}/checkpoints/best.pt",
        )
        figs = bench["figures"]["models"][name]["rates"]
        for rate in rates:
            cli("evaluate", run, "--rate-khz", rate)
            ev = cli.json(f"{run}/eval/metrics.json")
            cli(
                "trigger",
                "ad",
                run,
                "--out",
                f"{run}/l1-{rate}",
                "--bits",
                "8",
                "--integer-bits",
                "3",
                "--qat-epochs",
                str(args.qat_epochs),
                "--rate-khz",
                rate,
                done=f"{run}/l1-{rate}/ad.json",
            )
            ad = cli.json(f"{run}/l1-{rate}/ad.json")
            b = figs[f"{rate} kHz"]
            score = ev["score"]
            pairs = [("evaluate", score, b["evaluate"][score], ev["scores"][score]["tth"])]
            pairs += [
                ("trigger ad", kind, b["trigger"][kind], ad["metrics"]["scores"][kind]["tth"])
                for kind in ("float", "fixed_point", "emulated")
            ]
            for stage, kind, bv, cv in pairs:
                where = f"{name} {stage} {kind} @ {rate} kHz"
                rows.append(row(f"{where}: ttH AUC", bv["auc"], cv["auc"]["value"], bv["auc_err"]))
                rows.append(
                    row(
                        f"{where}: ttH efficiency",
                        bv["signal_eff"],
                        cv["eff_at_rate"]["signal_eff"]["value"],
                        bv["signal_eff_err"],
                        note=f"rate reached: {cv['eff_at_rate']['reached']}",
                    )
                )
            emulation = ad["emulation"] or {}
            rows.append(
                row(
                    f"{name} @ {rate} kHz: emulation max |diff|",
                    b["trigger"]["emulation"]["max_abs_diff"],
                    emulation.get("max_abs_diff", float("nan")),
                    0.0,
                )
            )
    return {
        "sizes": {
            "events_per_process": args.events,
            "epochs": args.epochs,
            "qat_epochs": args.qat_epochs,
            "rates_khz": args.rates_khz,
        },
        "seeds": "sample seed 1; the configs' training seed (one seed): spread = the "
        "figure's statistical error on the test split",
        **cli.record(
            bench,
            same_jets(cli.work / "ad-sample", out / "bench-anomaly" / f"sample-{args.events}"),
            rows,
        ),
    }


# --------------------------------------------------------------------------- trigger

#: benchmarks/_trigger_data.py's classes (its order), window and radius
TRIGGER_CLASSES = ["g", "q", "Wqq", "Zqq", "Tbqq"]
TRIGGER_WINDOW = ["--pt-min", "800", "--pt-max", "1200", "--radius", "0.8"]
#: the 8-bit QAT types of benchmarks/trigger.py (docs/trigger.md)
QAT_8 = [
    "--precision",
    "ap_fixed<8,2>",
    "--result-precision",
    "ap_fixed<8,3>",
    "--input-precision",
    "ap_fixed<16,6>",
    "--layer-precision",
    "net.6:result=ap_fixed<16,6>",
]


def trigger_sample(cli: Route, jets: int) -> str:
    """The nominal trigger sample (``heptagon generate`` per class as _trigger_data makes
    it: seed 1, two shards per class) and its features file."""
    for cls in TRIGGER_CLASSES:
        cli(
            "generate",
            cls,
            "--jets",
            str(jets),
            "--seed",
            "1",
            *TRIGGER_WINDOW,
            "--shard-size",
            str(-(-jets // 2)),
            "--jobs",
            "2",
            "--out",
            f"hlf-{jets}/{cls}",
            done=f"hlf-{jets}/{cls}/manifest.json",
        )
    features = f"hlf-{jets}.parquet"
    cli(
        "trigger",
        "features",
        *(f"hlf-{jets}/{c}" for c in TRIGGER_CLASSES),
        "--out",
        features,
        done=features,
    )
    return features


def part_trigger(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """docs/trigger.md's ``trigger train`` (float, 8-bit QAT, pruned 75 %, both) and
    ``trigger hls`` at benchmarks/trigger.py's jets and epochs, one seed as the benchmark."""
    cli = Route(out / "trigger")
    features = trigger_sample(cli, args.jets)
    bench = benchmark(
        "trigger",
        lambda p: {
            "jets": p["figures"]["sample"]["jets_per_class"],
            "epochs": option(p["command"], "--epochs", 30),
        },
        {"jets": args.jets, "epochs": args.epochs},
        [
            "--jets",
            str(args.jets),
            "--epochs",
            str(args.epochs),
            "--btag-jets",
            "0",
            "--out",
            str(out / "bench-trigger"),
        ]
        if args.rerun_benchmark
        else None,
    )
    prune = ["--prune-to", "0.75", "--prune-steps", "3"]
    variants = {
        "float32": [],
        "qat_8b": QAT_8,
        "pruned_75": prune,
        "pruned_75_qat_8b": [*prune, *QAT_8],
    }
    rows = []
    for name, options in variants.items():
        run = f"runs/{name}"
        cli(
            "trigger",
            "train",
            features,
            "--out",
            run,
            *options,
            "--epochs",
            str(args.epochs),
            done=f"{run}/trigger.json",
        )
        got = cli.json(f"{run}/trigger.json")
        scores = next(iter(got["scores"].values()))
        b = bench["figures"]["mlp"][name]
        for key in ("accuracy", "auc"):
            rows.append(row(f"{name}: test {key}", b[key], scores[key], b["accuracy_err"]))
        if name in bench["figures"]["hls4ml"]:
            cli("trigger", "hls", run, "--out", f"hls/{name}", done=f"hls/{name}/hls.json")
            hls = cli.json(f"hls/{name}/hls.json")["comparison"]
            bh = bench["figures"]["hls4ml"][name]
            for key in ("accuracy_emulated", "argmax_agreement", "max_abs_logit_diff"):
                spread = b["accuracy_err"] if key == "accuracy_emulated" else 0.0
                rows.append(row(f"{name} hls4ml: {key}", bh[key], hls[key], spread))
    return {
        "sizes": {"jets_per_class": args.jets, "epochs": args.epochs},
        "seeds": "sample seed 1, training seed 0 (one seed, as the benchmark): the same "
        "jets, split and initialisation; spread = the test accuracy's statistical error",
        **cli.record(
            bench,
            same_jets(cli.work / f"hlf-{args.jets}", out / "bench-trigger" / f"hlf-{args.jets}"),
            rows,
        ),
    }


# --------------------------------------------------------------------------- continual

#: the top-up strategies of benchmarks/continual.py -> ``trigger topup`` options
STRATEGIES = {
    "finetune": [],
    "ewc_100": ["--ewc", "100"],
    "ewc_10000": ["--ewc", "10000"],
    "replay": ["--replay", "1000"],
}


def part_continual(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """docs/trigger.md's ``trigger topup`` chains (plain, EWC 100 / 10000, replay 1000)
    over the three degraded detectors of benchmarks/continual.py, per seed."""
    import _trigger_data as samples

    cli = Route(out / "trigger")  # the nominal sample of the trigger part, reused
    nominal = trigger_sample(cli, args.jets)
    conditions = list(samples.CONDITIONS)[1:]
    files = {}
    for cond in conditions:
        # the degraded detector: --detector-set, one shard per class, seed 2 (continual.py's)
        degraded = f"continual-{args.topup}/{cond}"
        settings = [
            w
            for item in samples.detector_set(samples.CONDITIONS[cond])
            for w in ("--detector-set", item)
        ]
        for cls in TRIGGER_CLASSES:
            cli(
                "generate",
                cls,
                "--jets",
                str(args.topup),
                "--seed",
                "2",
                *TRIGGER_WINDOW,
                "--shard-size",
                str(args.topup),
                *settings,
                "--jobs",
                "2",
                "--out",
                f"{degraded}/{cls}",
                done=f"{degraded}/{cls}/manifest.json",
            )
        files[cond] = f"{cond}.parquet"
        cli(
            "trigger",
            "features",
            *(f"{degraded}/{c}" for c in TRIGGER_CLASSES),
            "--out",
            files[cond],
            done=files[cond],
        )
    acc: dict[str, dict[str, dict[str, list[float]]]] = {}
    for seed in range(args.seeds):
        base = f"runs/continual/float-s{seed}"
        cli(
            "trigger",
            "train",
            nominal,
            "--out",
            base,
            "--epochs",
            str(args.epochs),
            "--seed",
            str(seed),
            done=f"{base}/trigger.json",
        )
        for strategy, options in STRATEGIES.items():
            previous = base
            for k, cond in enumerate(conditions):
                run = f"runs/continual/{strategy}-s{seed}-{k + 1}"
                cli(
                    "trigger",
                    "topup",
                    previous,
                    files[cond],
                    "--out",
                    run,
                    *options,
                    done=f"{run}/trigger.json",
                )
                scores = cli.json(f"{run}/trigger.json")["scores"]
                step = acc.setdefault(strategy, {}).setdefault(f"after {cond}", {})
                for stem, s in scores.items():
                    name = "nominal" if stem == Path(nominal).stem else stem
                    step.setdefault(name, []).append(s["accuracy"])
                previous = run
    bench = benchmark(
        "continual",
        lambda p: {
            "jets": p["figures"]["jets_per_class"]["nominal"],
            "topup": p["figures"]["jets_per_class"]["per_condition"],
            "seeds": p["figures"]["settings"]["seeds"],
            "epochs": p["figures"]["settings"]["epochs"],
        },
        {"jets": args.jets, "topup": args.topup, "seeds": args.seeds, "epochs": args.epochs},
        [
            "--jets",
            str(args.jets),
            "--topup",
            str(args.topup),
            "--seeds",
            str(args.seeds),
            "--epochs",
            str(args.epochs),
            "--out",
            str(out / "bench-continual"),
        ]
        if args.rerun_benchmark
        else None,
    )
    steps = bench["figures"]["steps"]
    rows = []
    for strategy, by_step in acc.items():
        for label, cells in by_step.items():
            b = bench["figures"]["accuracy"][strategy][steps.index(label)]
            for cond, values in cells.items():
                m, sd = mean_std(values)
                jets = bench["figures"]["test_jets"][cond]
                stat = (m * (1 - m) / jets) ** 0.5
                # seeds > 0 split the jets differently from the benchmark (whose split
                # is seed 0's for every seed): the test sets' statistical error counts
                spread = (b[cond]["spread"] ** 2 + sd**2 + stat**2) ** 0.5
                rows.append(
                    row(f"{strategy} {label}: accuracy on {cond}", b[cond]["mean"], m, spread)
                )
    return {
        "sizes": {
            "jets_per_class": args.jets,
            "topup_jets_per_class": args.topup,
            "epochs": args.epochs,
            "topup_epochs": "20 (trigger topup's default)",
        },
        "seeds": f"training seeds 0..{args.seeds - 1}; mean over seeds; spread = both "
        "seed spreads and the test accuracy's statistical error in quadrature (the CLI's "
        "--seed also seeds the split, the benchmark splits every seed as seed 0)",
        **cli.record(
            bench,
            same_jets(cli.work / f"hlf-{args.jets}", out / "bench-continual" / f"hlf-{args.jets}")
            and same_jets(
                cli.work / f"continual-{args.topup}",
                out / "bench-continual" / f"continual-{args.topup}",
            ),
            rows,
        ),
    }


# --------------------------------------------------------------------------- weak supervision


def part_ws(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """docs/workflows.md's weak supervision (W / QCD): ``data mix`` at each of the
    benchmark's fractions (M2 = 1 - M1), CWoLa and LLP, and the supervised network, per
    seed, scored on a test set of true labels; vs benchmarks/weak_supervision.py."""
    n, test = args.jets, round(0.3 * args.jets)
    cli = Route(out / "w")  # shared with part da
    cli(
        "generate",
        "w-vs-qcd",
        "--jets",
        str(n),
        "--seed",
        "1",
        "--jobs",
        "2",
        "--out",
        "w-jets",
        done="w-jets/manifest.json",
    )
    fractions = [f"{f:g}" for f in args.fractions]
    bench = benchmark(
        "weak_supervision",
        lambda p: {
            "jets": p["figures"]["sample"]["jets_per_class"],
            "epochs": p["figures"]["epochs"],
            "seeds": p["figures"]["seeds"],
            "fractions": sorted(p["figures"]["auc"]["cwola"]),
        },
        {"jets": n, "epochs": args.epochs, "seeds": args.seeds, "fractions": sorted(fractions)},
        [
            "--jets",
            str(n),
            "--seeds",
            str(args.seeds),
            "--epochs",
            str(args.epochs),
            "--fractions",
            *fractions,
            "--out",
            str(out / "bench-ws"),
        ]
        if args.rerun_benchmark
        else None,
        part="w_qcd",
    )
    b = bench["figures"]
    cli(
        "generate",
        "w-vs-qcd",
        "--jets",
        str(test),
        "--seed",
        "11",
        "--jobs",
        "2",
        "--out",
        "w-test",
        done="w-test/manifest.json",
    )
    cli(
        "data",
        "mix",
        "w-test",
        "--signal",
        "label_Wqq",
        "--fractions",
        "1",
        "0",
        "--out",
        "ws-truth",
        done="ws-truth/derived.json",
    )
    for f in fractions:
        cli(
            "data",
            "mix",
            "w-jets",
            "--signal",
            "label_Wqq",
            "--fractions",
            f,
            f"{1 - float(f):g}",
            "--seed",
            "1",
            "--out",
            f"ws-mixed-{f}",
            done=f"ws-mixed-{f}/derived.json",
        )
    got: dict[str, list[float]] = {}

    def auc(key: str, config: str, data: str, seed: int, extra: list[str], test: str) -> None:
        run = f"runs/{key}-s{seed}"
        cli(
            "train",
            f"configs/{config}.yaml",
            "--data",
            data,
            "--out",
            run,
            "--set",
            f"train.seed={seed}",
            "--set",
            f"train.epochs={args.epochs}",
            *extra,
            done=f"{run}/checkpoints/best.pt",
        )
        cli("evaluate", run, "--data", test)
        got.setdefault(key, []).append(cli.json(f"{run}/eval/metrics.json")["auc"]["value"])

    for seed in range(args.seeds):
        auc("supervised", "w_md_nominal", "w-jets", seed, [], "w-test")
        for f in fractions:
            auc(f"cwola-{f}", "ws_cwola", f"ws-mixed-{f}", seed, [], "ws-truth")
            llp = ["--set", f"train.loss.fractions=[{1 - float(f):g}, {f}]"]
            auc(f"llp-{f}", "ws_llp", f"ws-mixed-{f}", seed, llp, "ws-truth")
    rows = []
    for key, values in got.items():
        method, _, f = key.partition("-")
        bv = b["auc"][method][f] if f else b["auc"][method]
        (bm, bs), (cm, cs) = mean_std(bv), mean_std(values)
        # two test samples of the same size: both statistical errors
        stat = quadrature(auc_error(cm, test, test), auc_error(bm, test_size(n), test_size(n)))
        rows.append(
            row(f"{method}{f' {f}' if f else ''}: test AUC", bm, cm, quadrature(bs, cs, stat))
        )
    return {
        "sizes": {
            "jets_per_class": n,
            "test_jets_per_class": test,
            "epochs": args.epochs,
            "fractions": args.fractions,
        },
        "seeds": f"training seeds 0..{args.seeds - 1}, sample seed 1 (test sample: 11); "
        "spread = both seed spreads and both routes' AUC statistical errors (Hanley-McNeil, "
        "each on its own test jets) in quadrature",
        "differences_by_design": "the CLI trains on the whole sample (data mix draws the "
        "mixtures from all of it) and scores an independent test sample of 0.3 x the jets; "
        "the benchmark trains on the first 70 % and scores the other 30 %",
        **cli.record(bench, same_jets(cli.work / "w-jets", out / "bench-ws" / f"sample-{n}"), rows),
    }


def auc_error(auc: float, n_signal: int, n_background: int) -> float:
    """The Hanley-McNeil standard error of an AUC from ``n_signal`` signal and
    ``n_background`` background test jets."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = auc * (1 - auc) + (n_signal - 1) * (q1 - auc**2) + (n_background - 1) * (q2 - auc**2)
    return float((var / (n_signal * n_background)) ** 0.5)


# --------------------------------------------------------------------------- domain adaptation

#: resamplings for the KS distance's statistical error
KS_BOOTSTRAP = 200


def ks_error(a: np.ndarray, b: np.ndarray) -> float:
    """The statistical error of the two-sample KS distance of ``a`` and ``b``: the standard
    deviation over :data:`KS_BOOTSTRAP` resamplings (with replacement) of both, seeded."""
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(0)
    values = [
        ks_2samp(rng.choice(a, len(a)), rng.choice(b, len(b))).statistic
        for _ in range(KS_BOOTSTRAP)
    ]
    return float(np.std(values, ddof=1))


#: benchmarks/domain_adaptation.py's target sample: detector-level w-vs-qcd, seed 1
DA_TARGET_JETS = 10_000
#: its lambda-5 adversary (the config's, with lam 5)
DA_LAM5 = (
    "train.regularisers=[{name: adversary, lam: 5.0, observable: domain, background: [0, 1], "
    "bins: [-0.5, 0.5, 1.5], hidden: [32, 32], lr: 3.0e-3, gradient_reversal: true, "
    "weighted: false}]"
)


def part_da(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """docs/workflows.md's domain adaptation: ``data domains`` of hadron-level (source) and
    detector-level (target) W / QCD, ``configs/da_w_jet.yaml`` with the adversary (lambda
    1 and 5) and without, per seed; target / source AUC and the KS distances of the W
    score between the domains' test jets, vs benchmarks/domain_adaptation.py."""
    from scipy.stats import ks_2samp

    source, source_test = args.jets, round(0.3 * args.jets)
    target_test = round(0.3 * DA_TARGET_JETS)
    bench = benchmark(
        "domain_adaptation",
        lambda p: {
            "jets": p["figures"]["source"]["jets_per_class"],
            "epochs": p["figures"]["epochs"],
            "seeds": p["figures"]["seeds"],
        },
        {"jets": source, "epochs": args.epochs, "seeds": args.seeds},
        [
            "--jets",
            str(source),
            "--seeds",
            str(args.seeds),
            "--epochs",
            str(args.epochs),
            "--out",
            str(out / "bench-da"),
        ]
        if args.rerun_benchmark
        else None,
    )
    cli = Route(out / "w")  # the target samples are part ws's W / QCD samples
    cli(
        "generate",
        "w-vs-qcd",
        "--jets",
        str(source),
        "--seed",
        "4",
        "--detector",
        "none",
        "--jobs",
        "2",
        "--out",
        "w-hadron",
        done="w-hadron/manifest.json",
    )
    cli(
        "generate",
        "w-vs-qcd",
        "--jets",
        str(DA_TARGET_JETS),
        "--seed",
        "1",
        "--jobs",
        "2",
        "--out",
        "w-jets",
        done="w-jets/manifest.json",
    )
    cli("data", "domains", "w-hadron", "w-jets", "--out", "da-train", done="da-train/derived.json")
    cli(
        "generate",
        "w-vs-qcd",
        "--jets",
        str(source_test),
        "--seed",
        "14",
        "--detector",
        "none",
        "--jobs",
        "2",
        "--out",
        "w-hadron-test",
        done="w-hadron-test/manifest.json",
    )
    cli(
        "generate",
        "w-vs-qcd",
        "--jets",
        str(target_test),
        "--seed",
        "11",
        "--jobs",
        "2",
        "--out",
        "w-test",
        done="w-test/manifest.json",
    )
    cli(
        "data",
        "domains",
        "w-hadron-test",
        "w-test",
        "--labelled-target",
        "--out",
        "da-test",
        done="da-test/derived.json",
    )
    variants = {
        "source_only": ["--set", "train.regularisers=[]"],
        "domain_adversarial": [],
        "domain_adversarial_lam5": ["--set", DA_LAM5],
    }
    got: dict[str, dict[str, list[float]]] = {}
    for seed in range(args.seeds):
        for name, extra in variants.items():
            run = f"runs/{name}-s{seed}"
            cli(
                "train",
                "configs/da_w_jet.yaml",
                "--data",
                "da-train",
                "--out",
                run,
                *extra,
                "--set",
                f"train.seed={seed}",
                "--set",
                f"train.epochs={args.epochs}",
                done=f"{run}/checkpoints/best.pt",
            )
            cli(
                "evaluate",
                run,
                "--data-test",
                "target:da-test/shards/target_*.parquet",
                "--data-test",
                "source:da-test/shards/source_*.parquet",
            )
            m = cli.json(f"{run}/eval/metrics.json")["samples"]
            w = {}
            for domain in ("target", "source"):
                t = pq.read_table(cli.work / run / "eval" / f"predictions_{domain}.parquet")
                w[domain] = (t["prob_Wqq"].to_numpy(), t["label"].to_numpy())
            (s_t, y_t), (s_s, y_s) = w["target"], w["source"]
            figures = {
                "target_auc": m["target"]["auc"]["value"],
                "source_auc": m["source"]["auc"]["value"],
                "ks_all": float(ks_2samp(s_s, s_t).statistic),
                "ks_qcd": float(ks_2samp(s_s[y_s == 0], s_t[y_t == 0]).statistic),
                "ks_all_err": ks_error(s_s, s_t),
                "ks_qcd_err": ks_error(s_s[y_s == 0], s_t[y_t == 0]),
            }
            for key, value in figures.items():
                got.setdefault(name, {}).setdefault(key, []).append(value)
    rows = []
    for name, by_key in got.items():
        for key, values in by_key.items():
            if key.endswith("_err"):
                continue
            b = bench["figures"]["table"][name][key]
            cm, cs = mean_std(values)
            jets = target_test if key == "target_auc" else source_test
            if key.endswith("auc"):
                stat = quadrature(auc_error(cm, jets, jets), auc_error(b["mean"], jets, jets))
            else:  # the benchmark's test jets are as many: its error taken as the CLI's
                stat = 2**0.5 * statistics.fmean(by_key[f"{key}_err"])
            spread = quadrature(b["std"], cs, stat)
            rows.append(row(f"{name}: {key}", b["mean"], cm, spread))
    return {
        "sizes": {
            "source_jets_per_class": source,
            "target_jets_per_class": DA_TARGET_JETS,
            "test_jets_per_class": {"source": source_test, "target": target_test},
            "epochs": args.epochs,
        },
        "seeds": f"training seeds 0..{args.seeds - 1}; samples: source 4, target 1, tests 14 "
        "and 11; spread = both seed spreads and both routes' statistical errors (each on its "
        "own test jets, as many in both) in quadrature (AUCs: Hanley-McNeil; KS distances: "
        f"the CLI's bootstrap standard deviation, {KS_BOOTSTRAP} resamplings of both "
        "domains' test jets, mean over seeds, taken for the benchmark's too)",
        "differences_by_design": "the CLI trains on the whole source and target samples and "
        "scores independent test samples of 0.3 x their jets; the benchmark trains on 70 % "
        "of each and scores the other 30 %",
        **cli.record(
            bench,
            same_jets(cli.work / "w-jets", out / "bench-da" / f"sample-{DA_TARGET_JETS}"),
            rows,
        ),
    }


# --------------------------------------------------------------------------- PNN

QCD_WINDOW = ["--pt-min", "500", "--pt-max", "1000", "--no-mpi"]


def part_pnn(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """docs/workflows.md's PNN: ``data pnn`` with the 100 GeV mass held out, the PNN, the
    same network without the parameter, and that network trained on a 100 GeV sample alone
    (the dedicated network), per seed, evaluated at the held-out mass (``evaluate
    --pnn-mass``), vs benchmarks/pnn.py's ``pnn``, ``plain_all_masses`` and ``dedicated``."""
    jets, qcd, qcd_test = args.jets, args.qcd_jets, round(0.3 * args.qcd_jets)
    dedicated = round(0.7 * jets)
    bench = benchmark(
        "pnn",
        lambda p: {
            "jets": p["figures"]["jets_per_mass"],
            "qcd": p["figures"]["qcd_jets"],
            "epochs": p["figures"]["epochs"],
            "seeds": len(p["figures"]["per_seed"]),
        },
        {"jets": jets, "qcd": qcd, "epochs": args.epochs, "seeds": args.seeds},
        [
            "--jets",
            str(jets),
            "--qcd-jets",
            str(qcd),
            "--seeds",
            str(args.seeds),
            "--epochs",
            str(args.epochs),
            "--out",
            str(out / "bench-pnn"),
        ]
        if args.rerun_benchmark
        else None,
    )
    cli = Route(out / "pnn")
    cli(
        "generate",
        "xbb-scan",
        "--jets",
        str(jets),
        "--seed",
        "3",
        "--jobs",
        "2",
        "--out",
        "xbb",
        done="xbb/manifest.json",
    )
    cli(
        "generate",
        "QCD",
        "--jets",
        str(qcd),
        "--seed",
        "2",
        *QCD_WINDOW,
        "--jobs",
        "2",
        "--out",
        "qcd",
        done="qcd/manifest.json",
    )
    cli(
        "generate",
        "QCD",
        "--jets",
        str(qcd_test),
        "--seed",
        "12",
        *QCD_WINDOW,
        "--jobs",
        "2",
        "--out",
        "qcd-test",
        done="qcd-test/manifest.json",
    )
    cli(
        "data",
        "pnn",
        "xbb",
        "qcd",
        "--hold-out",
        "100",
        "--seed",
        "0",
        "--out",
        "pnn-train",
        done="pnn-train/derived.json",
    )
    # the dedicated network's signal: the 100 GeV class alone in xbb-scan's window, as
    # many jets as the benchmark trains it on (its 70 %)
    cli(
        "generate",
        "Xbb100",
        "--jets",
        str(dedicated),
        "--seed",
        "13",
        *QCD_WINDOW,
        "--jobs",
        "2",
        "--out",
        "xbb100",
        done="xbb100/manifest.json",
    )
    cli(
        "data",
        "pnn",
        "xbb100",
        "qcd",
        "--seed",
        "0",
        "--out",
        "dedicated-train",
        done="dedicated-train/derived.json",
    )
    networks = {
        "pnn": ("pnn_xbb", "pnn-train"),
        "plain_all_masses": ("pnn_xbb_plain", "pnn-train"),
        "dedicated": ("pnn_xbb_plain", "dedicated-train"),
    }
    got: dict[str, dict[str, list[float]]] = {}
    for seed in range(args.seeds):
        for name, (config, data) in networks.items():
            run = f"runs/{name}-s{seed}"
            cli(
                "train",
                f"configs/{config}.yaml",
                "--data",
                data,
                "--out",
                run,
                "--set",
                f"train.seed={seed}",
                "--set",
                f"train.epochs={args.epochs}",
                done=f"{run}/checkpoints/best.pt",
            )
            if name == "pnn":
                cli("evaluate", run, "--pnn-mass", "100", "--data", "xbb", "--data", "qcd-test")
            else:
                cli("evaluate", run, "--data", "runs/pnn-s0/eval/pnn-m100")
            m = cli.json(f"{run}/eval/metrics.json")
            by = got.setdefault(name, {})
            by.setdefault("rejection", []).append(m["rejection_at_eff"]["0.5"]["value"])
            by.setdefault("rejection_err", []).append(m["rejection_at_eff"]["0.5"]["err"])
            by.setdefault("auc", []).append(m["auc"]["value"])
    rows = []
    for name, by_key in got.items():
        b = bench["figures"]["table"][name]
        per_seed = bench["figures"]["per_seed"]
        rm, rs = mean_std(by_key["rejection"])
        stat = quadrature(
            statistics.fmean(by_key["rejection_err"]),
            statistics.fmean(r[name]["rejection_err"] for r in per_seed),
        )
        rows.append(
            row(
                f"{name}: 1/eps_B at 50 % signal efficiency",
                b["rejection_mean"],
                rm,
                quadrature(b["rejection_std"], rs, stat),
            )
        )
        (bm, bs), (cm, cs) = mean_std([r[name]["auc"] for r in per_seed]), mean_std(by_key["auc"])
        stat = quadrature(
            auc_error(cm, jets, qcd_test), auc_error(bm, test_size(jets), test_size(qcd))
        )
        rows.append(row(f"{name}: AUC", bm, cm, quadrature(bs, cs, stat)))
    return {
        "sizes": {
            "jets_per_mass": jets,
            "qcd_jets": qcd,
            "qcd_test_jets": qcd_test,
            "dedicated_signal_jets": dedicated,
            "held_out_mass_gev": 100,
            "epochs": args.epochs,
        },
        "seeds": f"training seeds 0..{args.seeds - 1}; samples: xbb-scan 3, QCD 2, QCD "
        "test 12, Xbb100 13; spread = both seed spreads and both routes' statistical errors "
        "(each on its own test jets: the rejection's bootstrap error, mean over seeds; the "
        "AUC's Hanley-McNeil error) in quadrature",
        "differences_by_design": "the CLI trains on the whole QCD sample and scores every "
        "100 GeV jet of xbb (none trained on) against an independent QCD sample of 0.3 x "
        "its jets; the benchmark trains on 70 % of the QCD jets and scores 30 % of the "
        "100 GeV jets and of the QCD jets. The dedicated network trains on an Xbb100 "
        "sample of its own (seed 13, 0.7 x the jets per mass: the benchmark's 70 % of the "
        "100 GeV jets) with the whole QCD sample, and is scored on the PNN's test set",
        **cli.record(bench, same_jets(cli.work / "xbb", out / "bench-pnn" / f"xbb-{jets}"), rows),
    }


#: the benchmarks' default sizes, per part
DEFAULTS: dict[str, dict[str, int]] = {
    "anomaly": {"epochs": 10},
    "trigger": {"jets": 3000, "epochs": 30},
    "continual": {"jets": 3000, "epochs": 30, "seeds": 3},
    "ws": {"jets": 10000, "epochs": 10, "seeds": 2},
    "da": {"jets": 4000, "epochs": 10, "seeds": 2},
    "pnn": {"jets": 1500, "epochs": 15, "seeds": 3},
}

PARTS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "anomaly": part_anomaly,
    "trigger": part_trigger,
    "continual": part_continual,
    "ws": part_ws,
    "da": part_da,
    "pnn": part_pnn,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=sorted(PARTS), required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/cli-figures"))
    parser.add_argument(
        "--rerun-benchmark",
        action="store_true",
        help="rerun the benchmark at the part's sizes on this commit (reusing the samples "
        "the CLI generated) instead of reading benchmarks/results/<benchmark>.json",
    )
    parser.add_argument("--epochs", type=int, help="default: the part's benchmark's")
    parser.add_argument("--seeds", type=int, help="default: the part's benchmark's")
    parser.add_argument("--jets", type=int, help="default: the part's benchmark's")
    anomaly = parser.add_argument_group("anomaly (benchmarks/anomaly.py's defaults)")
    anomaly.add_argument("--events", type=int, default=4000, help="events per process")
    anomaly.add_argument("--qat-epochs", type=int, default=5)
    anomaly.add_argument("--rates-khz", type=float, nargs="+", default=[1.0, 1000.0])
    continual = parser.add_argument_group("continual (benchmarks/continual.py's defaults)")
    continual.add_argument("--topup", type=int, default=400, help="jets per class per condition")
    ws = parser.add_argument_group("ws (benchmarks/weak_supervision.py's defaults)")
    ws.add_argument("--fractions", type=float, nargs="+", default=[0.8, 0.65, 0.55])
    pnn = parser.add_argument_group("pnn (benchmarks/pnn.py's defaults)")
    pnn.add_argument("--qcd-jets", type=int, default=30_000)
    args = parser.parse_args()
    for key, value in DEFAULTS[args.part].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    t0 = time.perf_counter()
    figures = PARTS[args.part](args, args.out.resolve())
    figures["wall_s"] = round(time.perf_counter() - t0, 1)
    figures["load_average_end"] = os.getloadavg()
    out = [r for r in figures["rows"] if r["within_spread"] is False]
    print(json.dumps(figures["rows"], indent=1))
    print(f"{len(figures['rows'])} figures, {len(out)} outside the spread")
    print(write_results("cli_figures", figures, part=args.part))


if __name__ == "__main__":
    main()
