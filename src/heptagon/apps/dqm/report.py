"""The certification report: ``report.md`` with a table of runs, the score of every run
against the threshold, and the histograms that drove the worst verdicts drawn over the
reference (1D: both shapes; 2D occupancy maps: the run over reference ratio)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import mplhep
import numpy as np
from matplotlib.figure import Figure

from heptagon.apps.dqm.observables import HISTOGRAMS
from heptagon.evaluate.report import markdown_table
from heptagon.io import atomic_path

if TYPE_CHECKING:
    from heptagon.apps.dqm.certify import DQMModel
    from heptagon.apps.dqm.simulate import DQMData

__all__ = ["write_report"]

#: how many flagged runs get their driving histograms drawn, and how many histograms each
WORST_RUNS, WORST_HISTS = 3, 2


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None}, bbox_inches="tight")
    return path


def _score_plot(verdicts: dict[str, Any], path: Path) -> Path:
    runs = verdicts["runs"]
    x = np.array([r["run"] for r in runs])
    y = np.array([r["score"] for r in runs])
    bad = np.array([bool(r["truth"]["bad"]) for r in runs])
    with mpl.style.context(mplhep.style.CMS):
        fig = Figure(figsize=(10, 6))
        ax = fig.subplots()
        ax.scatter(x[~bad], y[~bad], s=18, label="simulated good", color="tab:blue")
        ax.scatter(x[bad], y[bad], s=18, marker="s", label="simulated bad", color="tab:red")
        ax.axhline(verdicts["threshold"]["run"], color="k", ls="--", label="threshold")
        ax.set_yscale("log")
        ax.set_xlabel("run")
        ax.set_ylabel(f"{verdicts['method']} score ({verdicts['aggregate']})")
        ax.legend(fontsize="small")
        return _save(fig, path)


def _hist_plot(name: str, run: int, counts: np.ndarray, ref: np.ndarray, path: Path) -> Path:
    spec = HISTOGRAMS[name]
    axes = spec.book().axes
    shape = counts / max(counts.sum(), 1e-12)
    ref_shape = ref / max(ref.sum(), 1e-12)
    with mpl.style.context(mplhep.style.CMS):
        fig = Figure(figsize=(8, 6))
        ax = fig.subplots()
        if len(axes) == 1:
            edges = np.asarray(axes[0].edges)
            ax.stairs(ref_shape, edges, label="reference", color="k")
            ax.stairs(shape, edges, label=f"run {run}", color="tab:red")
            ax.set_xlabel(spec.label)
            ax.set_ylabel("fraction of entries")
            if axes[0].transform is not None:
                ax.set_xscale("log")
            ax.legend(fontsize="small")
        else:
            ratio = np.divide(shape, ref_shape, out=np.ones_like(shape), where=ref_shape > 0)
            mesh = ax.pcolormesh(
                np.asarray(axes[0].edges),
                np.asarray(axes[1].edges),
                ratio.T,
                cmap="coolwarm",
                vmin=0.0,
                vmax=2.0,
            )
            fig.colorbar(mesh, ax=ax, label=f"run {run} / reference")
            ax.set_xlabel(axes[0].label)
            ax.set_ylabel(axes[1].label)
            ax.set_title(spec.label, fontsize="small")
        return _save(fig, path)


def write_report(
    out: Path, data: DQMData, model: DQMModel, verdicts: dict[str, Any], *, plots: bool = True
) -> Path:
    """Write ``out/report.md`` (and ``out/plots/*.png`` unless ``plots`` is false)."""
    method = verdicts["method"]
    runs = verdicts["runs"]
    flagged = [r for r in runs if r["verdict"] == "bad"]
    truth_bad = [r for r in runs if r["truth"]["bad"]]
    lines = [
        f"# DQM certification: {method} ({verdicts['aggregate']})",
        "",
        f"Thresholds (quantile {verdicts['quantile']} of the good training scores): "
        f"LS {verdicts['threshold']['ls']:.4g}, run {verdicts['threshold']['run']:.4g}.",
        "",
        f"{len(flagged)} of {len(runs)} runs certified bad; "
        f"{sum(x['verdict'] == 'bad' for x in verdicts['lumisections'])} of "
        f"{len(verdicts['lumisections'])} LS.",
    ]
    if truth_bad:
        caught = sum(r["verdict"] == "bad" for r in truth_bad)
        false = sum(r["verdict"] == "bad" and not r["truth"]["bad"] for r in runs)
        lines += [
            f"Against the simulation's labels: {caught} / {len(truth_bad)} bad runs flagged, "
            f"{false} / {len(runs) - len(truth_bad)} good runs flagged.",
        ]
    rows = []
    for r in runs:
        fault = r["truth"]["fault"]
        truth = f"{fault['kind']} {fault['size']:.3g}" if fault else "good"
        drivers = ", ".join(
            f"{d['histogram']} ({d['error_over_typical']:.3g}x)" for d in r["drivers"]
        )
        rows.append([str(r["run"]), r["verdict"], f"{r['score']:.4g}", drivers, truth])
    lines += ["", markdown_table(["run", "verdict", "score", "drivers", "simulated"], rows)]
    if model.ranking:
        top = ", ".join(f"{n} ({v:.3f})" for n, v in model.ranking[:10])
        lines += ["", f"Feature ranking (gradient of the classifier's loss): {top}."]
    if plots:
        lines += ["", "![score vs run](plots/score_vs_run.png)"]
        _score_plot(verdicts, out / "plots" / "score_vs_run.png")
        ref = model.methods[method].ref
        run_counts = data.run_counts()
        worst = sorted(flagged, key=lambda r: -r["score"])[:WORST_RUNS]
        for r in worst:
            i = int(np.flatnonzero(data.run_numbers == r["run"])[0])
            names = [d["histogram"] for d in r["drivers"] if d["histogram"] in HISTOGRAMS]
            for name in names[:WORST_HISTS]:
                png = f"run{r['run']}_{name}.png"
                _hist_plot(name, r["run"], run_counts[name][i], ref[name], out / "plots" / png)
                lines += ["", f"![run {r['run']}: {name}](plots/{png})"]
    path = out / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path
