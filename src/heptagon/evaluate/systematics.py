"""``heptagon evaluate RUN --data NOMINAL --systematics VARIED ...``: a binary tagger's
efficiency and mistag rate at its working points, per jet-pT bin, with the statistical,
each systematic and the total uncertainty (``docs/systematics.md``).

- The **nominal** sample is a dataset dir made by ``heptagon generate`` (``--data``); the
  working points are cuts on the signal probability that keep :data:`WORKING_POINTS` of
  its signal jets; the pT bins are :data:`N_PT_BINS` bins holding equal numbers of its
  jets (interior edges rounded to 1 GeV; the outer bins take under- and overflow, so a
  scale variation moves jets between bins but never out of the table).
- Each **varied** sample (``--systematics DIR``, repeatable) is a dataset dir made with
  ``--variation NAME`` (:mod:`heptagon.physics.systematics`) by the nominal's command
  (checked in the manifests: sample, seed, size, shards, selection, generator settings
  and ``--weight-variations``, which changes Pythia's random sequence): its rates with
  the nominal cuts, in its own reconstructed pT, minus the nominal rates are the
  variation's shifts. A generator variation (another
  tune) is a statistically independent sample: its shift includes its statistical noise.
- The nominal's **weight columns** (``--weight-variations``: ``weight_isr_up``, ...) give
  the shower-scale variations as the nominal rates with the jets reweighted.

Per source of uncertainty (an up / down pair, or a one-sided variation) the uncertainty
is the larger |shift|; ``syst`` is their sum in quadrature and ``total`` adds the
binomial statistical error of the nominal rate (with the effective number of jets).
Written: ``RUN/eval/systematics.json`` (:class:`~heptagon.artifacts.systematics.SystematicsTable`),
``RUN/eval/systematics.md`` and ``RUN/eval/plots/systematics_wp<eff>.png|pdf`` (the
rates vs pT with the statistical error bars and the total uncertainty as a band).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from rich.table import Table

from heptagon.artifacts.manifest import JetManifest, load_manifest
from heptagon.artifacts.systematics import (
    RateBin,
    SystematicsTable,
    VariationInput,
    WorkingPointTable,
)
from heptagon.data.io import expand_files
from heptagon.data.loader import JetDataset
from heptagon.errors import ConfigError, DataError
from heptagon.evaluate.analysis import signal_class
from heptagon.evaluate.inference import Predictions, predict_batches
from heptagon.evaluate.plots import _label, _save, _style
from heptagon.evaluate.report import markdown_table
from heptagon.evaluate.run import EVAL_DIR, _eval_config
from heptagon.io import atomic_path
from heptagon.logs import get_logger
from heptagon.physics.experiment import dataset_experiment
from heptagon.physics.roc import roc_curve
from heptagon.physics.stats import binomial_err, finite_or_none, n_eff
from heptagon.physics.systematics import Variation, get_variation
from heptagon.train.device import select_device
from heptagon.train.rundir import LoadedRun, load_run

__all__ = [
    "N_PT_BINS",
    "WORKING_POINTS",
    "SystematicsInputs",
    "SystematicsResult",
    "evaluate_systematics",
    "systematics_inputs",
]

#: the nominal signal efficiencies of the working points
WORKING_POINTS = (0.3, 0.5, 0.7)
#: jet-pT bins (equal numbers of nominal jets)
N_PT_BINS = 3
TABLE_FILE = "systematics.json"
_COLUMNS = ("WP", "rate", "pT [GeV]", "value", "stat", "syst", "total")
#: what a varied sample shares with its nominal (the same generator events)
_SAME_EVENTS = (
    "sample", "seed", "jets_per_class", "shard_size", "selection", "generator",
    "weight_variations",
)  # fmt: skip
_log = get_logger("evaluate")


@dataclass(frozen=True)
class SystematicsResult:
    """What :func:`evaluate_systematics` wrote: the table and its files."""

    table: SystematicsTable
    json: Path
    report: Path
    plots: list[Path]

    def rich_table(self) -> Table:
        """Rates at each working point and pT bin with their uncertainties."""
        t = Table(title=f"systematics: {self.json}")
        for col in _COLUMNS:
            t.add_column(col)
        for row in _rows(self.table):
            t.add_row(*row)
        return t


def _manifest(path: str | Path) -> JetManifest:
    manifest = load_manifest(path)
    if not isinstance(manifest, JetManifest):
        raise DataError("--systematics needs jet samples (heptagon generate)", file=path)
    return manifest


def _check_varied(nominal: JetManifest, varied: JetManifest, path: str | Path) -> Variation:
    """The variation of the dataset ``path``, checked against the nominal one."""
    if varied.variation is None:
        raise DataError(
            "not a varied sample (no variation in its manifest: heptagon generate "
            "--variation NAME)",
            file=path,
            key="variation",
        )
    variation = get_variation(str(varied.variation["name"]))
    for key in _SAME_EVENTS:
        if getattr(varied, key) != getattr(nominal, key):
            raise DataError(
                f"its {key} is not the nominal's: a variation repeats the nominal's command "
                "(and its --weight-variations: they change Pythia's random sequence), "
                "adding --variation",
                file=path,
                key=key,
            )
    return variation


def _predict(loaded: LoadedRun, source: str | Path, name: str, extra: list[str]) -> Predictions:
    """The run's predictions on every entry of ``source``, with the ``jet_pt`` observer
    and the ``extra`` columns."""
    paths = expand_files(source)
    config = _eval_config(loaded, paths, extra)
    dataset = JetDataset(
        paths,
        config,
        loaded.preprocess,
        split=None,
        split_fractions=loaded.config.split.fractions,
        batch_size=1024,
        buffer_size=10_000,
        shuffle=False,
        seed=loaded.config.train.seed,
    )
    pred = predict_batches(loaded.model, dataset, name=name, class_names=list(loaded.class_names))
    if "jet_pt" not in pred.observers:
        raise DataError(
            "no jet pT to bin in (name its branch with observer_roles.jet_pt)",
            file=paths[0],
            key="jet_pt",
        )
    if len(pred) == 0:
        raise DataError("no entries", file=paths[0])
    return pred


@dataclass(frozen=True)
class _Rates:
    """Weighted rates per pT bin of the jets of one class passing each working point."""

    value: NDArray[np.float64]  # (working points, bins)
    stat: NDArray[np.float64]
    n_jets: NDArray[np.int64]  # (bins,)


def _rates(
    score: NDArray[np.float64],
    pt: NDArray[np.float64],
    weight: NDArray[np.float64],
    thresholds: Sequence[float],
    inner_edges: NDArray[np.float64],
) -> _Rates:
    bins = np.digitize(pt, inner_edges)
    n_bins = inner_edges.size + 1
    value = np.full((len(thresholds), n_bins), np.nan)
    stat = np.full_like(value, np.nan)
    for b in range(n_bins):
        w = weight[bins == b]
        total = w.sum()
        if total <= 0:
            continue
        for i, cut in enumerate(thresholds):
            value[i, b] = w[score[bins == b] >= cut].sum() / total
            stat[i, b] = binomial_err(value[i, b], n_eff(w))
    return _Rates(value, stat, np.bincount(bins, minlength=n_bins))


def _pt_edges(pt: NDArray[np.float64]) -> NDArray[np.float64]:
    """N_PT_BINS + 1 edges holding equal numbers of jets (interior ones rounded to GeV)."""
    inner = np.round(np.quantile(pt, np.linspace(0, 1, N_PT_BINS + 1)[1:-1]))
    return np.concatenate([[np.floor(pt.min())], np.unique(inner), [np.ceil(pt.max())]])


def _classes(pred: Predictions) -> tuple[int, NDArray[np.bool_]]:
    sig = signal_class(pred.class_names)
    return sig, pred.labels == sig


def _bins(
    nominal: _Rates,
    shifts: dict[str, NDArray[np.float64]],
    groups: dict[str, list[str]],
    wp: int,
    edges: NDArray[np.float64],
) -> list[RateBin]:
    out = []
    for b in range(edges.size - 1):
        stat = nominal.stat[wp, b]
        shift = {name: s[wp, b] for name, s in shifts.items()}
        syst = {
            group: float(np.max(np.abs([shift[n] for n in names])))
            for group, names in groups.items()
        }
        quad = float(np.sqrt(sum(v**2 for v in syst.values())))
        out.append(
            RateBin(
                pt_low=float(edges[b]),
                pt_high=float(edges[b + 1]),
                value=finite_or_none(nominal.value[wp, b]),
                n_jets=int(nominal.n_jets[b]),
                stat=finite_or_none(stat),
                shifts={k: finite_or_none(v) for k, v in shift.items()},
                systematics={k: finite_or_none(v) for k, v in syst.items()},
                syst=finite_or_none(quad),
                total=finite_or_none(float(np.hypot(stat, quad))),
            )
        )
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _rows(table: SystematicsTable) -> list[list[str]]:
    rows = []
    for wp in table.working_points:
        for kind, bins in (("efficiency", wp.efficiency), ("mistag", wp.mistag)):
            for b in bins:
                rows.append(
                    [
                        f"{wp.target_efficiency:g}",
                        kind,
                        f"{b.pt_low:g}-{b.pt_high:g}",
                        _fmt(b.value),
                        _fmt(b.stat),
                        _fmt(b.syst),
                        _fmt(b.total),
                    ]
                )
    return rows


def _plot(table: SystematicsTable, wp: WorkingPointTable, stem: Path, source: str) -> list[Path]:
    """Efficiency and mistag rate vs pT: points with statistical error bars, the total
    uncertainty as a band."""
    from matplotlib.figure import Figure

    edges = np.asarray(table.pt_edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    with _style():
        fig = Figure(figsize=(8, 9), layout="constrained")
        axes = fig.subplots(2, 1, sharex=True)
        for ax, (kind, bins) in zip(
            axes, (("efficiency", wp.efficiency), ("mistag rate", wp.mistag)), strict=True
        ):
            val = np.array([np.nan if b.value is None else b.value for b in bins])
            stat = np.array([np.nan if b.stat is None else b.stat for b in bins])
            tot = np.array([np.nan if b.total is None else b.total for b in bins])
            ax.stairs(val + tot, edges, baseline=val - tot, fill=True, alpha=0.3,
                      label="total uncertainty")  # fmt: skip
            ax.errorbar(centres, val, yerr=stat, xerr=0.5 * np.diff(edges), fmt="o",
                        color="black", label="nominal (stat.)")  # fmt: skip
            ax.set_ylabel(f"{kind} ({table.signal if kind == 'efficiency' else table.background})")
        axes[0].legend(fontsize="small", title=f"WP {wp.target_efficiency:g} (score >= "
                       f"{wp.threshold:.3g})", title_fontsize="small")  # fmt: skip
        axes[1].set_xlabel(r"jet $p_T$ [GeV]")
        _label(axes[0], dataset_experiment(expand_files(source), None))
        paths = _save(fig, stem)
    return paths


def _write(loaded: LoadedRun, table: SystematicsTable, source: str) -> SystematicsResult:
    eval_dir = loaded.root / EVAL_DIR
    plot_dir = eval_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    path = eval_dir / TABLE_FILE
    table.write(path)
    plots: list[Path] = []
    for wp in table.working_points:
        plots += _plot(table, wp, plot_dir / f"systematics_wp{wp.target_efficiency:g}", source)
    sources = list(dict.fromkeys(v.group for v in table.variations))
    per_source = [
        [f"{wp.target_efficiency:g}", f"{b.pt_low:g}-{b.pt_high:g}"]
        + [_fmt(b.systematics.get(g)) for g in sources]
        for wp in table.working_points
        for b in wp.efficiency
    ]
    lines = [
        f"# Systematic uncertainties of {loaded.info.name} ({loaded.root.name})",
        "",
        f"Nominal sample: {table.nominal}. {table.signal} efficiency and {table.background} "
        f"mistag rate at the working points (cuts on {table.score}) per jet-pT bin; "
        "syst: the sources below in quadrature; total: with stat.",
        "",
        markdown_table(_COLUMNS, _rows(table)),
        "",
        "Variations: "
        + ", ".join(f"{v.name} ({v.kind}: {v.origin})" for v in table.variations)
        + ".",
        "",
        "Per source (efficiency at each working point and pT bin):",
        "",
        markdown_table(["WP", "pT [GeV]", *sources], per_source),
        "",
        *(f"![{p.stem}](plots/{p.name})" for p in plots if p.suffix == ".png"),
        "",
    ]
    report = eval_dir / "systematics.md"
    with atomic_path(report) as tmp:
        tmp.write_text("\n".join(lines))
    _log.info("systematics of %s: %s", loaded.root, path)
    return SystematicsResult(table, path, report, plots)


@dataclass(frozen=True)
class SystematicsInputs:
    """The checked inputs of :func:`evaluate_systematics`."""

    nominal: str  # the nominal dataset dir
    columns: list[str]  # its weight columns
    variations: list[VariationInput]  # the varied samples', then the weight columns'


def systematics_inputs(
    data: Sequence[str] | None, varied: Sequence[str | Path]
) -> SystematicsInputs:
    """The nominal sample (the one ``--data`` entry) and the variations (each ``varied``
    dataset dir's, then the nominal's weight columns), checked: manifests present, each
    varied sample made with a variation from the nominal's sample, seed and size, no
    variation twice, at least one. Cheap: what ``evaluate`` checks before it runs."""
    if not data or len(data) != 1:
        raise ConfigError(
            "give the nominal sample of the variations as the one --data DIR",
            "--systematics",
        )
    manifests = [(path, _manifest(path)) for path in varied]
    nominal = _manifest(data[0])
    inputs = []
    for path, manifest in manifests:
        v = _check_varied(nominal, manifest, path)
        inputs.append(VariationInput(name=v.name, kind=v.kind, group=v.group,
                                     direction=v.direction, origin=str(path)))  # fmt: skip
    columns = []
    for name in nominal.weight_variations:
        v = get_variation(name)
        assert v.column is not None  # generate writes weight variations only
        columns.append(v.column)
        inputs.append(VariationInput(name=v.name, kind=v.kind, group=v.group,
                                     direction=v.direction, origin=v.column))  # fmt: skip
    if len({i.name for i in inputs}) != len(inputs):
        raise ConfigError("a variation is given twice", "--systematics")
    if not inputs:
        raise ConfigError(
            "no variation: give varied samples with --systematics, or a nominal made with "
            "--weight-variations",
            "--systematics",
        )
    return SystematicsInputs(data[0], columns, inputs)


def evaluate_systematics(run_dir: str | Path, inputs: SystematicsInputs) -> SystematicsResult:
    """The efficiency / mistag table of the binary classifier ``run_dir`` on the nominal
    sample of ``inputs`` with its variations (module docstring)."""
    loaded = load_run(run_dir)
    if loaded.info.task != "classification" or len(loaded.class_names) != 2:
        raise ConfigError("needs a binary classifier (signal vs background)", "--systematics")
    if isinstance(loaded.model, torch.nn.Module):
        loaded.model.to(select_device())
    nominal = inputs.nominal
    pred = _predict(loaded, nominal, "nominal", inputs.columns)
    sig, is_sig = _classes(pred)
    score = pred.probs[:, sig]
    roc = roc_curve(score, is_sig, pred.weights)
    thresholds = [float(roc.at_signal_eff(eff).threshold) for eff in WORKING_POINTS]
    pt = np.asarray(pred.observers["jet_pt"], dtype=np.float64)
    edges = _pt_edges(pt)
    inner = edges[1:-1]

    def rates(p: Predictions, weight: NDArray[np.float64]) -> tuple[_Rates, _Rates]:
        s, is_s = _classes(p)
        x, pts = p.probs[:, s], np.asarray(p.observers["jet_pt"], dtype=np.float64)
        return (
            _rates(x[is_s], pts[is_s], weight[is_s], thresholds, inner),
            _rates(x[~is_s], pts[~is_s], weight[~is_s], thresholds, inner),
        )

    nom_eff, nom_mis = rates(pred, pred.weights)
    eff_shift: dict[str, NDArray[np.float64]] = {}
    mis_shift: dict[str, NDArray[np.float64]] = {}
    for item in inputs.variations:
        if item.kind == "weight":
            weight = pred.weights * np.asarray(pred.observers[item.origin], dtype=np.float64)
            eff, mis = rates(pred, weight)
        else:
            other = _predict(loaded, item.origin, item.name, [])
            eff, mis = rates(other, other.weights)
        eff_shift[item.name] = eff.value - nom_eff.value
        mis_shift[item.name] = mis.value - nom_mis.value
        _log.info("variation %s (%s): done", item.name, item.origin)
    groups: dict[str, list[str]] = {}
    for item in inputs.variations:
        groups.setdefault(item.group, []).append(item.name)
    names = list(loaded.class_names)
    table = SystematicsTable(
        signal=names[sig],
        background=names[1 - sig],
        nominal=str(nominal),
        checkpoint_sha256=loaded.checkpoint_sha256(),
        score=f"prob_{names[sig]}",
        pt_edges=[float(e) for e in edges],
        variations=inputs.variations,
        working_points=[
            WorkingPointTable(
                target_efficiency=eff,
                threshold=thresholds[i],
                efficiency=_bins(nom_eff, eff_shift, groups, i, edges),
                mistag=_bins(nom_mis, mis_shift, groups, i, edges),
            )
            for i, eff in enumerate(WORKING_POINTS)
        ],
    )
    return _write(loaded, table, str(nominal))
