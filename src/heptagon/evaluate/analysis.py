"""From a model's predictions on a sample to the physicist's numbers and their plots:
metrics (``metrics.json`` structure), the ROC, efficiency / mistag maps vs jet pT and eta
at the 50% signal-efficiency working point, and the mass sculpting there."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import hist
import numpy as np
from numpy.typing import NDArray

from heptagon.artifacts.metrics import (
    BinaryMetrics,
    MulticlassMetrics,
    RegressionMetrics,
    ResolutionBins,
)
from heptagon.evaluate.inference import Predictions
from heptagon.evaluate.plots import (
    plot_efficiency_map,
    plot_resolution,
    plot_response,
    plot_roc,
    plot_scores,
    plot_sculpting,
)
from heptagon.logs import get_logger
from heptagon.physics.experiment import Experiment
from heptagon.physics.flavour import flavour_metrics, flavour_rocs
from heptagon.physics.metrics import (
    EfficiencyMap,
    MassSculpting,
    Resolution,
    Roc,
    binary_metrics,
    efficiency_map,
    mass_sculpting,
    multiclass_metrics,
    pairwise_discriminant,
    regression_metrics,
    resolution_in_bins,
    roc_curve,
    score_histograms,
)

__all__ = [
    "WORKING_POINT_EFF",
    "BinaryCurves",
    "SampleResult",
    "analyse",
    "binary_curves",
    "draw",
    "signal_class",
]

_log = get_logger("evaluate")

#: signal efficiency of the working point used for maps and sculpting
WORKING_POINT_EFF = 0.5
#: quantile bins of the true value for the regression response and resolution
N_TRUE_BINS = 5
#: classes treated as background when choosing the signal of a binary classifier
BACKGROUND_NAMES = ("QCD", "g", "uds", "light", "background", "bkg")


def signal_class(class_names: list[str]) -> int:
    """The signal of a two-class problem: the first class that is not a background name
    (``QCD``, ``g``, ...), else the first class."""
    for i, name in enumerate(class_names):
        if name not in BACKGROUND_NAMES:
            return i
    return 0


@dataclass
class SampleResult:
    """Everything evaluation derives from one sample's predictions."""

    name: str
    metrics: BinaryMetrics | MulticlassMetrics | RegressionMetrics
    rocs: dict[str, Roc] = field(default_factory=dict)
    maps: dict[str, EfficiencyMap] = field(default_factory=dict)
    sculpting: MassSculpting | None = None
    resolutions: dict[str, Resolution] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)


def _quantile_axis(x: NDArray[np.floating], n: int, name: str, label: str) -> hist.axis.Variable:
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n + 1)))
    edges[-1] = np.nextafter(edges[-1], np.inf)  # the largest value falls inside
    return hist.axis.Variable(edges, name=name, label=label)


@dataclass
class BinaryCurves:
    """The curves of a binary classifier: its ROC, the efficiency and mistag maps vs jet pT
    and eta at the working point, and the mass sculpting there (None without m_SD)."""

    label: str
    roc: Roc
    maps: dict[str, EfficiencyMap]
    sculpting: MassSculpting | None


def binary_curves(pred: Predictions) -> BinaryCurves:
    """ROC, maps and sculpting of a two-class model at ``WORKING_POINT_EFF``."""
    sig = signal_class(pred.class_names)
    scores = pred.probs[:, sig]
    is_sig = pred.labels == sig
    roc = roc_curve(scores, is_sig, pred.weights)
    wp = roc.at_signal_eff(WORKING_POINT_EFF)
    passed = scores >= wp.threshold
    maps: dict[str, EfficiencyMap] = {}
    if "jet_pt" in pred.observers and "jet_eta" in pred.observers and len(pred):
        pt = np.asarray(pred.observers["jet_pt"], dtype=np.float64)
        eta = np.asarray(pred.observers["jet_eta"], dtype=np.float64)
        x_axis = _quantile_axis(pt, 4, "pt", r"jet $p_T$ [GeV]")
        reach = float(np.abs(eta).max())
        y_axis = hist.axis.Regular(
            4, -reach, np.nextafter(reach, np.inf), name="eta", label=r"jet $\eta$"
        )
        for key, sel in (("efficiency", is_sig), ("mistag", ~is_sig)):
            maps[key] = efficiency_map(
                passed[sel], pt[sel], eta[sel], pred.weights[sel], x_axis=x_axis, y_axis=y_axis
            )
    mass = pred.observers.get("jet_sdmass")
    sculpting = (
        None
        if mass is None
        else mass_sculpting(scores, is_sig, mass, pred.weights, working_point=wp)
    )
    label = f"{pred.class_names[sig]} vs {pred.class_names[1 - sig]}"
    return BinaryCurves(label, roc, maps, sculpting)


def _binary(pred: Predictions, n_boot: int, seed: int) -> SampleResult:
    sig = signal_class(pred.class_names)
    mass = pred.observers.get("jet_sdmass")
    metrics = binary_metrics(
        pred.probs[:, sig], pred.labels == sig, pred.weights, mass=mass, n_boot=n_boot, seed=seed
    ).model_copy(update={"signal": pred.class_names[sig]})
    curves = binary_curves(pred)
    return SampleResult(
        pred.name, metrics, {curves.label: curves.roc}, curves.maps, curves.sculpting
    )


def analyse(
    pred: Predictions, *, task: str = "classification", n_boot: int = 100, seed: int = 0
) -> SampleResult:
    """Metrics and plot data of one sample: binary, multi-class (one-vs-rest, and each
    class vs QCD with the pairwise discriminant ``p_s / (p_s + p_QCD)`` when a QCD class is
    there) or regression."""
    if task == "regression":
        metrics = regression_metrics(
            pred.probs[:, 0], pred.labels, pred.weights, n_boot=n_boot, seed=seed
        )
        result = SampleResult(pred.name, metrics)
        variables = {"true": (np.asarray(pred.labels, dtype=np.float64), N_TRUE_BINS)}
        if "jet_pt" in pred.observers:  # resolution vs jet pT, quartile bins
            variables["jet_pt"] = (np.asarray(pred.observers["jet_pt"], dtype=np.float64), 4)
        for key, (x, n_bins) in variables.items():
            if not len(pred):
                break
            edges = _quantile_axis(x, n_bins, key, "").edges
            res = resolution_in_bins(pred.probs[:, 0], pred.labels, x, edges, pred.weights)
            result.resolutions[key] = res
            metrics.resolution_vs[key] = ResolutionBins(
                edges=res.edges.tolist(),
                median=res.median.tolist(),
                iqr=res.iqr.tolist(),
                resolution=res.resolution.tolist(),
            )
        return result
    if len(pred.class_names) == 2:
        return _binary(pred, n_boot, seed)
    multi = multiclass_metrics(
        pred.probs,
        pred.labels,
        pred.class_names,
        pred.weights,
        mass=pred.observers.get("jet_sdmass"),
        n_boot=n_boot,
        seed=seed,
    )
    result = SampleResult(pred.name, multi)
    if multi.missing_classes:
        _log.warning(
            "sample %s has no entries of class(es) %s: evaluated on the other classes",
            pred.name, ", ".join(multi.missing_classes),
        )  # fmt: skip
    for i, name in enumerate(pred.class_names):
        if name not in multi.missing_classes:
            rocs = roc_curve(pred.probs[:, i], pred.labels == i, pred.weights)
            result.rocs[f"{name} vs rest"] = rocs
    # b / c / uds / g: the CMS discriminants and working points (physics.flavour)
    multi.flavour = flavour_metrics(
        pred.probs, pred.labels, pred.class_names, pred.weights, n_boot=n_boot, seed=seed
    )
    if multi.flavour is not None:
        result.rocs.update(flavour_rocs(pred.probs, pred.labels, pred.class_names, pred.weights))
    if "QCD" in pred.class_names:  # ParticleNet-MD style: each signal vs QCD, p_s/(p_s+p_b)
        bkg = pred.class_names.index("QCD")
        for i, name in enumerate(pred.class_names):
            pair = (pred.labels == i) | (pred.labels == bkg)
            if i == bkg or not (pred.labels == i).any():
                continue
            disc = pairwise_discriminant(pred.probs[pair], i, bkg)
            is_sig = pred.labels[pair] == i
            result.rocs[f"{name} vs QCD"] = roc_curve(disc, is_sig, pred.weights[pair])
            multi.pairwise_vs_QCD[name] = binary_metrics(
                disc, is_sig, pred.weights[pair], n_boot=n_boot, seed=seed
            )
    return result


def draw(
    result: SampleResult,
    pred: Predictions,
    plot_dir: Path,
    experiment: Experiment = Experiment(),
) -> list[Path]:
    """Write the sample's plots (PNG and PDF) into ``plot_dir``, labelled with
    ``experiment`` (default: no energy known); return their paths."""
    prefix = plot_dir / result.name
    paths: list[Path] = []
    if result.rocs:
        paths += plot_roc(result.rocs, f"{prefix}_roc", experiment=experiment)
    if len(pred.class_names) >= 2 and pred.probs.shape[1] == len(pred.class_names):  # classes
        sig = signal_class(pred.class_names) if len(pred.class_names) == 2 else 0
        hists = score_histograms(pred.probs[:, sig], pred.labels, pred.class_names, pred.weights)
        paths += plot_scores(hists, f"{prefix}_scores", experiment=experiment)
    for key, emap in result.maps.items():
        paths += plot_efficiency_map(
            emap, f"{prefix}_{key}_map", label=key.capitalize(), experiment=experiment
        )
    if result.sculpting is not None:
        paths += plot_sculpting(result.sculpting, f"{prefix}_sculpting", experiment=experiment)
    if result.resolutions:  # regression
        ratio = pred.probs[:, 0] / np.asarray(pred.labels, dtype=np.float64)
        lo, hi = np.quantile(ratio, [0.01, 0.99])
        axis = hist.axis.Regular(40, lo, np.nextafter(hi, np.inf), label="Predicted / true")
        response_hist = hist.Hist(axis, storage=hist.storage.Weight())
        paths += plot_response(
            response_hist.fill(ratio, weight=pred.weights),
            f"{prefix}_response",
            experiment=experiment,
        )
        labels = {"true": "True value", "jet_pt": r"jet $p_T$ [GeV]"}
        for key, res in result.resolutions.items():
            paths += plot_resolution(
                res, f"{prefix}_resolution_vs_{key}", xlabel=labels[key], experiment=experiment
            )
    result.plots = paths
    return paths
