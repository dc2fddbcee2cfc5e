"""Plots of the metric data objects of :mod:`heptagon.physics.metrics` (puma style: the data
are computed there, only drawn here).

Every function takes a path stem and writes ``<stem>.png`` and ``<stem>.pdf`` atomically,
returning both paths. Figures use mplhep's CMS-like style with the neutral label
"heptagon Simulation" and, on the right, the sample's energy (and luminosity) from an
:class:`~heptagon.physics.experiment.Experiment` (``experiment=``); they are built on
:class:`matplotlib.figure.Figure` directly, so no pyplot state or interactive backend is
involved.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hist
import matplotlib as mpl
import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from heptagon.io import atomic_path
from heptagon.physics.experiment import Experiment
from heptagon.physics.metrics import EfficiencyMap, MassSculpting, Resolution, Roc

__all__ = [
    "plot_efficiency_map",
    "plot_resolution",
    "plot_response",
    "plot_roc",
    "plot_scores",
    "plot_sculpting",
    "plot_stacked_yields",
]

#: the label of a figure whose sample is not known: no energy
_UNKNOWN = Experiment()


@contextmanager
def _style() -> Iterator[None]:
    with mpl.style.context(mplhep.style.CMS):
        yield


def _label(ax: Axes, experiment: Experiment) -> None:
    mplhep.label.exp_label(
        exp=experiment.name, llabel=experiment.status, rlabel=experiment.energy_text, ax=ax
    )


def _save(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` atomically (no timestamp in the PDF)."""
    paths = []
    for fmt, metadata in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
        path = Path(f"{stem}.{fmt}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, metadata=metadata)
        paths.append(path)
    return paths


def plot_roc(
    rocs: Mapping[str, Roc], stem: str | Path, *, experiment: Experiment = _UNKNOWN
) -> list[Path]:
    """Background rejection (log scale) vs signal efficiency, one curve per entry of ``rocs``
    (legend label -> ROC), with the binomial uncertainty as a band."""
    with _style():
        fig = Figure()
        ax = fig.subplots()
        for label, roc in rocs.items():
            ok = roc.background_eff > 0
            x, rej, err = roc.signal_eff[ok], roc.rejection[ok], roc.rejection_err[ok]
            (line,) = ax.plot(x, rej, label=f"{label} (AUC = {roc.auc:.3f})")
            ax.fill_between(
                x, np.maximum(rej - err, 1.0), rej + err, alpha=0.25, lw=0, color=line.get_color()
            )
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel("Signal efficiency")
        ax.set_ylabel("Background rejection $1/\\varepsilon_B$")
        ax.legend(loc="upper right")
        _label(ax, experiment)
        return _save(fig, stem)


def plot_scores(
    histograms: Mapping[str, hist.Hist[Any]], stem: str | Path, *, experiment: Experiment = _UNKNOWN
) -> list[Path]:
    """Score distributions per true class (weighted histograms, normalised to unit area),
    e.g. from :func:`heptagon.physics.metrics.score_histograms`."""
    with _style():
        fig = Figure()
        ax = fig.subplots()
        drawn = {k: h for k, h in histograms.items() if h.values().sum() > 0}
        if drawn:  # an empty class has no shape to normalise
            mplhep.histplot(
                list(drawn.values()), label=list(drawn), density=True, flow="none", ax=ax
            )
        ax.set_xlabel("Score")
        ax.set_ylabel("Normalised to unit area")
        ax.legend(loc="upper center")
        _label(ax, experiment)
        return _save(fig, stem)


def plot_response(
    histogram: hist.Hist[Any], stem: str | Path, *, experiment: Experiment = _UNKNOWN
) -> list[Path]:
    """The regression response (predicted / true) distribution, unit area."""
    with _style():
        fig = Figure()
        ax = fig.subplots()
        if histogram.values().sum() > 0:
            mplhep.histplot(histogram, density=True, flow="none", ax=ax)
        ax.axvline(1.0, color="gray", ls="--")
        ax.set_xlabel(histogram.axes[0].label)
        ax.set_ylabel("Normalised to unit area")
        _label(ax, experiment)
        return _save(fig, stem)


def plot_resolution(
    resolution: Resolution, stem: str | Path, *, xlabel: str, experiment: Experiment = _UNKNOWN
) -> list[Path]:
    """Response median with its interquartile range (band) and the resolution (IQR/2 over
    the median) in bins of a variable, e.g. from
    :func:`heptagon.physics.metrics.resolution_in_bins`."""
    edges = resolution.edges
    med, iqr = resolution.median, resolution.iqr
    with _style():
        fig = Figure()
        ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        fig.subplots_adjust(hspace=0.07)
        mplhep.histplot(med, edges, label="Median", color="black", ax=ax)
        ax.stairs(med + iqr / 2, edges, baseline=med - iqr / 2, fill=True, alpha=0.3,
                  label="Interquartile range")  # fmt: skip
        ax.axhline(1.0, color="gray", ls="--")
        ax.set_ylabel("Predicted / true")
        ax.set_xlabel("")
        ax.legend(loc="upper right")
        _label(ax, experiment)
        mplhep.histplot(resolution.resolution, edges, color="black", ax=rax)
        rax.set_ylabel("IQR / 2 median")
        rax.set_xlabel(xlabel)
        return _save(fig, stem)


def plot_stacked_yields(
    histograms: Mapping[str, hist.Hist[Any]],
    stem: str | Path,
    *,
    lumi_fb: float,
    cut: float,
    experiment: Experiment = _UNKNOWN,
) -> list[Path]:
    """Expected events per process stacked in the signal score (e.g. the histograms of
    :class:`heptagon.evaluate.yields.Yields`), log scale, with the best S/sqrt(B) cut."""
    with _style():
        fig = Figure()
        ax = fig.subplots()
        drawn = {k: h for k, h in histograms.items() if h.values().sum() > 0}
        if drawn:
            mplhep.histplot(
                list(drawn.values()),
                label=[f"{k} ({h.values().sum():.3g})" for k, h in drawn.items()],
                stack=True,
                histtype="fill",
                flow="none",
                ax=ax,
            )
            ax.set_yscale("log")
        ax.axvline(cut, color="black", ls="--", label=f"best cut {cut:.3f}")
        ax.set_xlabel("Signal score")
        ax.set_ylabel(f"Expected events / bin ({lumi_fb:g} fb$^{{-1}}$)")
        ax.legend(loc="upper right")
        _label(ax, experiment)
        return _save(fig, stem)


def plot_efficiency_map(
    emap: EfficiencyMap,
    stem: str | Path,
    *,
    label: str = "Efficiency",
    experiment: Experiment = _UNKNOWN,
) -> list[Path]:
    """The 2D efficiency with its value and binomial error written in each bin."""
    eff, err = emap.efficiency, emap.error
    text = np.where(
        np.isfinite(eff),
        np.char.add(np.char.mod("%.3f\n", eff), np.char.mod("$\\pm$%.3f", err)),
        "",
    )
    x_axis, y_axis = emap.total.axes
    with _style():
        fig = Figure()
        ax = fig.subplots()
        artists = mplhep.hist2dplot(
            eff,
            x_axis.edges,
            y_axis.edges,
            labels=text,
            labels_fontsize="x-small",
            cmin=0.0,
            cmax=1.0,
            cbar=False,  # mplhep's colorbar goes through pyplot's current figure
            ax=ax,
        )
        fig.colorbar(artists.pcolormesh, ax=ax, label=label)
        ax.set_xlabel(x_axis.label)
        ax.set_ylabel(y_axis.label)
        _label(ax, experiment)
        return _save(fig, stem)


def plot_sculpting(
    sculpting: MassSculpting, stem: str | Path, *, experiment: Experiment = _UNKNOWN
) -> list[Path]:
    """Background m_SD passing vs failing the working point (shapes, 1/JSD in the legend)
    and their ratio with statistical errors."""
    passing, failing = sculpting.passing, sculpting.failing
    p, f = passing.values(), failing.values()
    vp, vf = passing.variances(), failing.variances()
    assert vp is not None  # Weight storage
    assert vf is not None
    ok = (p > 0) & (f > 0)
    scale = f.sum() / p.sum() if ok.any() else np.nan  # ratio of unit-area shapes
    ratio = np.divide(p, f, out=np.full_like(p, np.nan), where=ok) * scale
    rel2 = np.divide(vp, p**2, out=np.zeros_like(p), where=ok) + np.divide(
        vf, f**2, out=np.zeros_like(f), where=ok
    )
    inv = sculpting.inverse_jsd
    inv_text = "undefined" if inv is None else f"{inv:.1f}"
    eff = sculpting.working_point.signal_eff
    with _style():
        fig = Figure()
        ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        fig.subplots_adjust(hspace=0.07)
        shapes = [
            (h, label)
            for h, label in (
                (failing, "Background failing"),
                (passing, f"Background passing (1/JSD = {inv_text})"),
            )
            if h.values().sum() > 0  # no background may pass a tight cut
        ]
        if shapes:
            mplhep.histplot(
                [h for h, _ in shapes],
                label=[label for _, label in shapes],
                density=True,
                flow="none",
                ax=ax,
            )
        ax.set_ylabel("Normalised to unit area")
        ax.set_xlabel("")
        ax.legend(loc="upper right", title=f"Cut at $\\varepsilon_S$ = {eff:.2f}")
        _label(ax, experiment)
        centers = passing.axes[0].centers
        rax.errorbar(centers, ratio, yerr=ratio * np.sqrt(rel2), fmt="o", color="black")
        rax.axhline(1.0, color="gray", ls="--")
        rax.set_ylabel("Pass / fail")
        rax.set_xlabel(passing.axes[0].label)
        return _save(fig, stem)
