"""``heptagon evaluate RUN [--data FILES...]`` and ``heptagon compare RUN... --out DIR``.

``evaluate`` scores the run's held-out test split (or each sample named by ``--data``: the
robustness check across e.g. shifted detector settings) and writes ``RUN/eval/``:
``metrics.json`` (the nominal sample's numbers at the top level, docs/design.md keys, and every
sample under ``samples``), ``roc_<sample>.csv``, ``predictions_<sample>.parquet`` (what
publish rebuilds its tables from), ``plots/*.png|pdf`` and ``report.md``. A run with a
DDT map (``RUN/ddt.json``, :mod:`heptagon.evaluate.ddt`) gets the DDT cut's numbers under
``ddt`` in each sample's metrics.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from heptagon.data.io import expand_files, open_reader
from heptagon.data.loader import JetDataset
from heptagon.data.split import parse_groups
from heptagon.errors import ConfigError, DataError
from heptagon.evaluate.analysis import SampleResult, analyse, draw, signal_class
from heptagon.evaluate.ddt import apply_ddt
from heptagon.evaluate.inference import EVAL_OBSERVERS, Predictions, predict_batches
from heptagon.evaluate.plots import plot_roc, plot_stacked_yields
from heptagon.evaluate.report import (
    SUMMARY_COLUMNS,
    markdown_report,
    markdown_table,
    rich_table,
    summary_rows,
)
from heptagon.evaluate.yields import XSEC_WEIGHT, expected_yields
from heptagon.io import atomic_path, read_json, write_json_atomic
from heptagon.logs import get_logger
from heptagon.physics.ddt import DDT_FILE, DDTMap
from heptagon.physics.metrics import Roc, roc_curve
from heptagon.train.device import select_device
from heptagon.train.rundir import LoadedRun, load_run

__all__ = ["CompareResult", "EvalResult", "compare", "current_evaluation", "evaluate"]

#: the metrics.json key of the sha256 of the checkpoint that was evaluated
CHECKPOINT_KEY = "checkpoint_sha256"

EVAL_DIR = "eval"
_log = get_logger("evaluate")


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate`` wrote and found."""

    eval_dir: Path
    metrics: dict[str, Any]
    samples: dict[str, dict[str, Any]]

    def table(self) -> Table:
        """The headline numbers per sample."""
        return rich_table(f"evaluation: {self.eval_dir.parent}", self.samples)


def _samples(
    loaded: LoadedRun, data: Sequence[str | Path] | None, data_test: Sequence[str | Path] = ()
) -> dict[str, tuple[Any, Any]]:
    """Sample name -> (files, split): each ``data_test`` group (weaver's ``name:glob``),
    or each ``data`` entry whole; by default the run's test split: of its hash split, or,
    for a run on explicit files, its ``--data-test`` files as ``test`` (and each group too
    when there are several)."""
    if data and data_test:
        raise ConfigError("give --data or --data-test, not both", "--data-test")
    if data_test:
        return {name: (files, None) for name, files in parse_groups(data_test).items()}
    if not data:
        config = loaded.config
        if config.files_val is None:
            return {"test": (list(config.files), "test")}
        if not config.files_test:
            raise ConfigError(
                "the run was trained on explicit files without --data-test: name the test "
                "files with --data-test (or --data)",
                "--data-test",
            )
        groups = config.files_test
        out: dict[str, tuple[Any, Any]] = {
            "test": ([f for files in groups.values() for f in files], None)
        }
        if len(groups) > 1:
            out |= {name: (files, None) for name, files in groups.items() if name != "test"}
        return out
    out = {}
    for entry in data:
        name = Path(str(entry).rstrip("/")).name.split(".")[0] or "sample"
        while name in out:
            name += "_"
        out[name] = ([entry], None)
    return out


def _observers(loaded: LoadedRun, files: list[Path], extra: Sequence[str] = ()) -> list[str]:
    """The data config's observers plus ``extra`` and those of EVAL_OBSERVERS the files
    provide."""
    with open_reader(files[0], loaded.config.data.treename) as reader:
        present = set(reader.branches)
    for name in extra:
        if name not in present:
            raise DataError(f"no branch '{name}' (needed for the yields)", files[0], name)
    wanted = list(loaded.config.data.observers)
    wanted += [o for o in extra if o not in wanted]
    return wanted + [o for o in EVAL_OBSERVERS if o in present and o not in wanted]


def _write_roc(roc: Roc, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["threshold", "signal_eff", "signal_eff_err", "background_eff", "background_eff_err"]
        )
        for row in zip(
            roc.thresholds,
            roc.signal_eff,
            roc.signal_eff_err,
            roc.background_eff,
            roc.background_eff_err,
            strict=True,
        ):
            writer.writerow([f"{v:.8g}" for v in row])


def evaluate(
    run_dir: str | Path,
    data: Sequence[str | Path] | None = None,
    *,
    data_test: Sequence[str | Path] = (),
    batch_size: int = 1024,
    n_boot: int = 100,
    lumi_fb: float | None = None,
    xsec_weight: str = XSEC_WEIGHT,
) -> EvalResult:
    """Evaluate a trained run on its test split, or on each sample in ``data`` (each
    group of ``data_test``: weaver's ``name:glob`` entries, unnamed ones form ``test``).

    With ``lumi_fb`` [fb^-1] a classifier also gets the expected yields per process
    (:mod:`heptagon.evaluate.yields`, per-event cross-section weights [pb] from the
    observer ``xsec_weight``; the test split's yields are divided by its fraction): under
    ``yields`` in the metrics, a table in the report and a stacked score plot."""
    loaded = load_run(run_dir)
    start = time.perf_counter()
    _log.info("evaluating %s", loaded.root)
    eval_dir = loaded.root / EVAL_DIR
    plot_dir = eval_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    model = loaded.model
    if isinstance(model, torch.nn.Module):
        model.to(select_device())
    task = loaded.info.get("task", "classification")
    class_names = list(loaded.class_names)
    cfg = loaded.config
    results: dict[str, SampleResult] = {}
    ddt_path = loaded.root / DDT_FILE
    ddt = DDTMap.load(ddt_path) if ddt_path.exists() and task == "classification" else None
    plots: list[Path] = []
    with_yields = lumi_fb is not None and task == "classification"
    extra = [xsec_weight] if with_yields else []
    for name, (files, split) in _samples(loaded, data, data_test).items():
        paths = expand_files(files)
        config = cfg.data.model_copy(update={"observers": _observers(loaded, paths, extra)})
        dataset = JetDataset(
            paths,
            config,
            loaded.preprocess,
            split=split,
            split_fractions=cfg.split.fractions,
            batch_size=batch_size,
            buffer_size=max(batch_size, 10_000),
            shuffle=False,
            seed=cfg.train.seed,
        )
        pred = predict_batches(
            model, dataset, name=name, class_names=class_names,
            regression=task == "regression",
        )  # fmt: skip
        if len(pred) == 0:
            raise DataError(f"no entries to evaluate in sample '{name}'", files[0])
        result = analyse(pred, task=task, n_boot=n_boot, seed=cfg.train.seed)
        if ddt is not None:
            result.metrics["ddt"] = apply_ddt(ddt, pred)
        plots += draw(result, pred, plot_dir)
        if with_yields and lumi_fb is not None:
            sig = signal_class(class_names) if len(class_names) == 2 else 0
            fraction = cfg.split.test if split == "test" else 1.0
            yields = expected_yields(
                pred, sig, lumi_fb, weight=xsec_weight, sample_fraction=fraction
            )
            result.metrics["yields"] = yields.to_dict()
            plots += plot_stacked_yields(
                yields.histograms, plot_dir / f"{name}_yields", lumi_fb=lumi_fb,
                cut=yields.best_cut,
            )  # fmt: skip
        pred.save(eval_dir / f"predictions_{name}.parquet")
        first = next(iter(result.rocs.values()), None)  # binary; multi-class: first vs rest
        if first is not None:
            _write_roc(first, eval_dir / f"roc_{name}.csv")
        results[name] = result
    samples = {name: r.metrics for name, r in results.items()}
    nominal = next(iter(samples))
    metrics = {
        **samples[nominal],
        "sample": nominal,
        "samples": samples,
        CHECKPOINT_KEY: loaded.checkpoint_sha256(),
    }
    write_json_atomic(eval_dir / "metrics.json", metrics)
    report = markdown_report(
        f"Evaluation of {loaded.info['name']} ({loaded.root.name})",
        samples,
        plots,
        eval_dir,
        notes=[f"Classes: {', '.join(class_names)}. Samples: {', '.join(samples)}."],
    )
    with atomic_path(eval_dir / "report.md") as tmp:
        tmp.write_text(report)
    _log.info(
        "evaluated %s on %s: %s (%.1f s)",
        loaded.root, ", ".join(samples), eval_dir / "report.md", time.perf_counter() - start,
    )  # fmt: skip
    return EvalResult(eval_dir, metrics, samples)


def _stale(loaded: LoadedRun, metrics: dict[str, Any]) -> str | None:
    """Why ``metrics`` (``RUN/eval/metrics.json``) and the test predictions beside them are
    not an evaluation of the run's best checkpoint on its test split, or None when they are."""
    if metrics.get("sample") != "test":
        return "eval/metrics.json is not of the test split"
    if metrics.get(CHECKPOINT_KEY) != loaded.checkpoint_sha256():
        return "eval/ was made from another checkpoint"
    if not (loaded.root / EVAL_DIR / "predictions_test.parquet").is_file():
        return "eval/predictions_test.parquet is missing"
    return None


def current_evaluation(
    loaded: LoadedRun, *, say: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The metrics of the run's best checkpoint on its test split, as ``RUN/eval/metrics.json``
    holds them, evaluating first when they are missing, unreadable, of another sample or of
    another checkpoint (the reason passed to ``say``): what publish and compare quote."""
    file = loaded.root / EVAL_DIR / "metrics.json"
    if file.exists():
        try:
            metrics = read_json(file, "evaluation")
        except DataError:
            why: str | None = "eval/metrics.json is unreadable"
        else:
            why = _stale(loaded, metrics)
            if why is None:
                return metrics
        if say is not None:
            say(f"{loaded.root}: {why}: re-evaluated on the test split")
    evaluate(loaded.root)
    return read_json(file, "evaluation")


@dataclass(frozen=True)
class CompareResult:
    """What ``compare`` wrote: the overlaid ROC and the table."""

    out: Path
    metrics: dict[str, dict[str, Any]]
    plots: list[Path]

    def table(self) -> Table:
        """The headline numbers per run."""
        return rich_table("comparison", self.metrics)


def compare(runs: Sequence[str | Path], out: str | Path) -> CompareResult:
    """Overlay the test-split ROCs of several runs (evaluating those not evaluated at their
    best checkpoint: :func:`current_evaluation`) and
    tabulate their numbers in ``out/compare.md``."""
    out = Path(out)
    rocs: dict[str, Roc] = {}
    metrics: dict[str, dict[str, Any]] = {}
    for run in runs:
        loaded = load_run(run)
        run_metrics = current_evaluation(loaded)
        class_names = list(loaded.class_names)
        pred = Predictions.load(loaded.root / EVAL_DIR / "predictions_test.parquet", class_names)
        label = f"{loaded.root.name} ({loaded.info['name']})"
        if len(class_names) == 2:
            sig = signal_class(class_names)
            rocs[label] = roc_curve(pred.probs[:, sig], pred.labels == sig, pred.weights)
        metrics[label] = run_metrics
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_roc(rocs, out / "roc") if rocs else []
    text = "\n".join(
        [
            "# Comparison (test splits)",
            "",
            markdown_table(["run", *SUMMARY_COLUMNS[1:]], summary_rows(metrics)),
            "",
            *(f"![roc]({p.name})" for p in plots if p.suffix == ".png"),
            "",
        ]
    )
    with atomic_path(out / "compare.md") as tmp:
        tmp.write_text(text)
    return CompareResult(out, metrics, plots)
