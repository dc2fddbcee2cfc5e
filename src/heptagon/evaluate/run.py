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

from heptagon.artifacts.metrics import (
    DdtMetrics,
    Evaluation,
    RegressionMetrics,
    SampleMetrics,
    Yields,
    evaluation,
    read_evaluation,
)
from heptagon.data.config import DataConfig
from heptagon.data.io import expand_files, open_reader
from heptagon.data.loader import JetDataset
from heptagon.data.split import parse_groups
from heptagon.errors import ConfigError, DataError
from heptagon.evaluate.analysis import analyse, draw, signal_class
from heptagon.evaluate.anomaly import DEFAULT_RATE_HZ, evaluate_anomaly_sample
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
from heptagon.io import atomic_path
from heptagon.logs import get_logger
from heptagon.models.autoencoder import ReconstructionModel
from heptagon.physics.ddt import DDT_FILE, DDTMap
from heptagon.physics.experiment import Experiment, dataset_experiment
from heptagon.physics.metrics import Roc, roc_curve
from heptagon.train.device import select_device
from heptagon.train.rundir import LoadedRun, load_run

__all__ = ["CompareResult", "EvalResult", "compare", "current_evaluation", "evaluate"]

EVAL_DIR = "eval"
_log = get_logger("evaluate")


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate`` wrote: ``eval_dir`` and its ``metrics.json``."""

    eval_dir: Path
    metrics: Evaluation

    def table(self) -> Table:
        """The headline numbers per sample."""
        return rich_table(f"evaluation: {self.eval_dir.parent}", self.metrics.samples)


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


def _pnn_sample(
    loaded: LoadedRun,
    data: Sequence[str | Path] | None,
    data_test: Sequence[str | Path],
    mass: float,
    param: str,
) -> Path:
    """Derive the PNN test set at ``mass`` from ``data`` = (signal scan, background) into
    the run's eval dir (:func:`~heptagon.data.derive.add_pnn_parameter` with ``at``);
    the run must read ``param`` and have two classes ``label_<signal>`` /
    ``label_<background>``."""
    from heptagon.data.derive import add_pnn_parameter

    if data_test or not data or len(data) != 2:
        raise ConfigError(
            "needs --data SIGNAL --data BACKGROUND (a mass scan and a background sample, as "
            "'heptagon data pnn' takes them)",
            "--pnn-mass",
        )
    config = loaded.config.data
    if not any(v.name == param for group in config.inputs.values() for v in group.vars):
        raise ConfigError(f"the run's model does not read '{param}': not a PNN", "--pnn-mass")
    names = list(loaded.class_names)
    labels = config.labels
    if (
        labels is None
        or len(names) != 2
        or labels.expressions != [f"label_{n}" for n in names]
    ):
        raise ConfigError(
            "a PNN evaluation needs a two-class run on label_<signal> / label_<background>",
            "--pnn-mass",
        )
    signal = signal_class(names)
    out = loaded.root / EVAL_DIR / f"pnn-m{mass:g}"
    add_pnn_parameter(
        data[0], data[1], out, param=param, at=mass,
        signal_label=names[signal], background_label=names[1 - signal],
    )  # fmt: skip
    _log.info("PNN test set at m = %g GeV: %s", mass, out)
    return out


#: what evaluation computes from each observer role
_ROLE_USE = {
    "jet_pt": "efficiency maps",
    "jet_eta": "efficiency maps",
    "jet_sdmass": "mass sculpting",
}


def _eval_config(loaded: LoadedRun, files: list[Path], extra: Sequence[str] = ()) -> DataConfig:
    """The run's data config with the observers evaluation reads: the config's, ``extra``
    and each role of EVAL_OBSERVERS whose source (``observer_roles``, else the role's
    name) the files or ``new_variables`` provide, read under the role's name. A role
    without a source is logged with what is then not computed."""
    data = loaded.config.data
    with open_reader(files[0], data.treename) as reader:
        present = set(reader.branches)
    for name in extra:
        if name not in present:
            raise DataError(f"no branch '{name}' (needed for the yields)", files[0], name)
    wanted = list(data.entry_observers)  # weaver's monitor_variables are observers here
    wanted += [o for o in extra if o not in wanted]
    aliases: dict[str, str] = {}
    roles: dict[str, str] = {str(k): v for k, v in data.observer_roles.items()}
    for role in EVAL_OBSERVERS:
        source = roles.get(role, role)
        if role in wanted and source == role:
            continue
        if source in present or source in data.new_variables:
            wanted += [] if role in wanted else [role]
            if source != role:
                aliases[role] = source
        else:
            _log.info(
                "no '%s' in %s (name its branch with observer_roles.%s): %s not computed",
                source, files[0].name, role, _ROLE_USE[role],
            )  # fmt: skip
    dumped = data.model_dump()
    dumped["observers"], dumped["monitor_variables"] = wanted, []
    dumped["new_variables"] = {**data.new_variables, **aliases}
    return DataConfig.model_validate(dumped)


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


@dataclass(frozen=True)
class _Setup:
    """What every sample of one ``evaluate`` call shares."""

    loaded: LoadedRun
    eval_dir: Path
    plot_dir: Path
    task: str
    ddt: DDTMap | None
    batch_size: int
    n_boot: int
    lumi_fb: float | None  # None: no yields
    xsec_weight: str
    rate_hz: float = DEFAULT_RATE_HZ  # an anomaly detector's fixed background rate


def _dataset(setup: _Setup, files: Any, split: Any) -> JetDataset:
    """The sample's entries (the run's data config, observers for evaluation added)."""
    cfg = setup.loaded.config
    paths = expand_files(files)
    extra = [] if setup.lumi_fb is None else [setup.xsec_weight]
    config = _eval_config(setup.loaded, paths, extra)
    return JetDataset(
        paths,
        config,
        setup.loaded.preprocess,
        split=split,
        split_fractions=cfg.split.fractions,
        batch_size=setup.batch_size,
        buffer_size=max(setup.batch_size, 10_000),
        shuffle=False,
        seed=cfg.train.seed,
    )


def _yields(
    setup: _Setup, pred: Predictions, split: Any, plots: list[Path], experiment: Experiment
) -> Yields:
    """The sample's expected yields at ``setup.lumi_fb`` (the test split's scaled by its
    fraction), with their stacked score plot added to ``plots``."""
    assert setup.lumi_fb is not None
    class_names = list(pred.class_names)
    sig = signal_class(class_names) if len(class_names) == 2 else 0
    fraction = setup.loaded.config.split.test if split == "test" else 1.0
    yields = expected_yields(
        pred, sig, setup.lumi_fb, weight=setup.xsec_weight, sample_fraction=fraction
    )
    plots += plot_stacked_yields(
        yields.histograms, setup.plot_dir / f"{pred.name}_yields", lumi_fb=setup.lumi_fb,
        cut=yields.best_cut, experiment=experiment,
    )  # fmt: skip
    return Yields.model_validate(yields.to_dict())


def _evaluate_sample(
    setup: _Setup, name: str, files: Any, split: Any, plots: list[Path]
) -> SampleMetrics:
    """Score one sample, write its predictions, ROC and plots (added to ``plots``) and
    return its metrics."""
    if setup.task == "anomaly":
        model, cfg = setup.loaded.model, setup.loaded.config
        assert isinstance(model, ReconstructionModel)  # train checks it
        anomaly, roc, drawn = evaluate_anomaly_sample(
            model, _dataset(setup, files, split), name=name,
            class_names=list(setup.loaded.class_names), background=cfg.train.background,
            eval_dir=setup.eval_dir, plot_dir=setup.plot_dir, rate_hz=setup.rate_hz,
            n_boot=setup.n_boot, seed=cfg.train.seed,
        )  # fmt: skip
        plots += drawn
        if roc is not None:
            _write_roc(roc, setup.eval_dir / f"roc_{name}.csv")
        return anomaly
    pred = predict_batches(
        setup.loaded.model, _dataset(setup, files, split), name=name,
        class_names=list(setup.loaded.class_names), regression=setup.task == "regression",
    )  # fmt: skip
    if len(pred) == 0:
        raise DataError(f"no entries to evaluate in sample '{name}'", files[0])
    result = analyse(
        pred, task=setup.task, n_boot=setup.n_boot, seed=setup.loaded.config.train.seed
    )
    experiment = dataset_experiment(expand_files(files), setup.lumi_fb)
    plots += draw(result, pred, setup.plot_dir, experiment)
    metrics = result.metrics
    if not isinstance(metrics, RegressionMetrics):
        if setup.ddt is not None:
            metrics.ddt = DdtMetrics.model_validate(apply_ddt(setup.ddt, pred))
        if setup.lumi_fb is not None:
            metrics.yields = _yields(setup, pred, split, plots, experiment)
    pred.save(setup.eval_dir / f"predictions_{name}.parquet")
    first = next(iter(result.rocs.values()), None)  # binary; multi-class: first vs rest
    if first is not None:
        _write_roc(first, setup.eval_dir / f"roc_{name}.csv")
    return metrics


def evaluate(
    run_dir: str | Path,
    data: Sequence[str | Path] | None = None,
    *,
    data_test: Sequence[str | Path] = (),
    batch_size: int = 1024,
    n_boot: int = 100,
    lumi_fb: float | None = None,
    xsec_weight: str = XSEC_WEIGHT,
    rate_hz: float = DEFAULT_RATE_HZ,
    pnn_mass: float | None = None,
    pnn_param: str = "pnn_mass",
) -> EvalResult:
    """Evaluate a trained run on its test split, or on each sample in ``data`` (each
    group of ``data_test``: weaver's ``name:glob`` entries, unnamed ones form ``test``).

    With ``lumi_fb`` [fb^-1] a classifier also gets the expected yields per process
    (:mod:`heptagon.evaluate.yields`, per-event cross-section weights [pb] from the
    observer ``xsec_weight``; the test split's yields are divided by its fraction): under
    ``yields`` in the metrics, a table in the report and a stacked score plot. An
    anomaly detector's signal efficiencies are quoted at the background rate ``rate_hz``
    [Hz] out of 40 MHz (:mod:`heptagon.evaluate.anomaly`).

    ``pnn_mass`` [GeV]: a parameterised network at that mass hypothesis, on ``data`` =
    ``[SIGNAL, BACKGROUND]`` (a resonance-mass scan and a background sample): the test set
    of ``heptagon data pnn SIGNAL BACKGROUND --at M`` (the signal of that mass alone and
    the whole background, every jet's ``pnn_param`` M) is derived into
    ``RUN/eval/pnn-m<M>/`` and evaluated, as sample ``pnn-m<M>``."""
    loaded = load_run(run_dir)
    if pnn_mass is not None:
        data = [_pnn_sample(loaded, data, data_test, pnn_mass, pnn_param)]
    start = time.perf_counter()
    _log.info("evaluating %s", loaded.root)
    eval_dir = loaded.root / EVAL_DIR
    plot_dir = eval_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(loaded.model, torch.nn.Module):
        loaded.model.to(select_device())
    task = loaded.info.task
    ddt_path = loaded.root / DDT_FILE
    setup = _Setup(
        loaded, eval_dir, plot_dir, task,
        DDTMap.load(ddt_path) if ddt_path.exists() and task == "classification" else None,
        batch_size, n_boot, lumi_fb if task == "classification" else None, xsec_weight,
        rate_hz,
    )  # fmt: skip
    plots: list[Path] = []
    samples = {
        name: _evaluate_sample(setup, name, files, split, plots)
        for name, (files, split) in _samples(loaded, data, data_test).items()
    }
    metrics = evaluation(samples, next(iter(samples)), loaded.checkpoint_sha256())
    metrics.write(eval_dir / "metrics.json")
    report = markdown_report(
        f"Evaluation of {loaded.info.name} ({loaded.root.name})",
        samples,
        plots,
        eval_dir,
        notes=[f"Classes: {', '.join(loaded.class_names)}. Samples: {', '.join(samples)}."],
    )
    with atomic_path(eval_dir / "report.md") as tmp:
        tmp.write_text(report)
    _log.info(
        "evaluated %s on %s: %s (%.1f s)",
        loaded.root, ", ".join(samples), eval_dir / "report.md", time.perf_counter() - start,
    )  # fmt: skip
    return EvalResult(eval_dir, metrics)


def _stale(loaded: LoadedRun, metrics: Evaluation) -> str | None:
    """Why ``metrics`` (``RUN/eval/metrics.json``) and the test predictions beside them are
    not an evaluation of the run's best checkpoint on its test split, or None when they are."""
    if metrics.sample != "test":
        return "eval/metrics.json is not of the test split"
    if metrics.checkpoint_sha256 != loaded.checkpoint_sha256():
        return "eval/ was made from another checkpoint"
    if not (loaded.root / EVAL_DIR / "predictions_test.parquet").is_file():
        return "eval/predictions_test.parquet is missing"
    return None


def current_evaluation(
    loaded: LoadedRun, *, say: Callable[[str], None] | None = None
) -> Evaluation:
    """The metrics of the run's best checkpoint on its test split, as ``RUN/eval/metrics.json``
    holds them, evaluating first when they are missing, unreadable, of another sample or of
    another checkpoint (the reason passed to ``say``): what publish and compare quote."""
    file = loaded.root / EVAL_DIR / "metrics.json"
    if file.exists():
        try:
            metrics = read_evaluation(file)
        except DataError as err:
            why: str | None = f"eval/metrics.json is unreadable ({err})"
        else:
            why = _stale(loaded, metrics)
            if why is None:
                return metrics
        if say is not None:
            say(f"{loaded.root}: {why}: re-evaluated on the test split")
    evaluate(loaded.root)
    return read_evaluation(file)  # as the file orders the keys, like a later call


@dataclass(frozen=True)
class CompareResult:
    """What ``compare`` wrote: the overlaid ROC and the table."""

    out: Path
    metrics: dict[str, Evaluation]
    plots: list[Path]

    def table(self) -> Table:
        """The headline numbers per run."""
        return rich_table("comparison", self.metrics)


def compare(runs: Sequence[str | Path], out: str | Path) -> CompareResult:
    """Overlay the test-split ROCs of several runs (evaluating those not evaluated at their
    best checkpoint: :func:`current_evaluation`) and
    tabulate their numbers in ``out/compare.md`` (binary classifiers' ROCs; an anomaly
    detector's AUC in the table)."""
    out = Path(out)
    rocs: dict[str, Roc] = {}
    metrics: dict[str, Evaluation] = {}
    for run in runs:
        loaded = load_run(run)
        run_metrics = current_evaluation(loaded)
        class_names = list(loaded.class_names)
        label = f"{loaded.root.name} ({loaded.info.name})"
        if len(class_names) == 2 and loaded.info.task == "classification":
            pred = Predictions.load(
                loaded.root / EVAL_DIR / "predictions_test.parquet", class_names
            )
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
