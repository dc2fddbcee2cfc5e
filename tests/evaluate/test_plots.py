"""The plot functions write non-empty PNG and PDF files and nothing half-written."""

from __future__ import annotations

from pathlib import Path

import hist
import numpy as np
import pytest

from heptagon.evaluate import plots
from heptagon.physics import metrics as M


@pytest.fixture(scope="module")
def sample() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 300
    labels = np.r_[np.ones(n), np.zeros(n)]
    return {
        "labels": labels,
        "scores": np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1),
        "weights": rng.uniform(0.5, 1.5, 2 * n),
        "mass": rng.uniform(0, 300, 2 * n),
        "pt": rng.uniform(200, 1000, 2 * n),
        "eta": rng.uniform(-2.5, 2.5, 2 * n),
    }


def _check_written(paths: list[Path], stem: Path) -> None:
    assert paths == [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in stem.parent.iterdir()) == sorted(p.name for p in paths)


def test_plot_roc_overlays(tmp_path: Path, sample: dict[str, np.ndarray]) -> None:
    s, y, w = sample["scores"], sample["labels"], sample["weights"]
    rocs = {"model A": M.roc_curve(s, y, w), "model B": M.roc_curve(s**2, y, w)}
    stem = tmp_path / "plots" / "roc"
    _check_written(plots.plot_roc(rocs, stem), stem)


def test_plot_scores(tmp_path: Path, sample: dict[str, np.ndarray]) -> None:
    h = M.score_histograms(
        sample["scores"], sample["labels"].astype(int), ["QCD", "Top"], sample["weights"]
    )
    _check_written(plots.plot_scores(h, tmp_path / "scores"), tmp_path / "scores")


def test_plot_efficiency_map(tmp_path: Path, sample: dict[str, np.ndarray]) -> None:
    sig = sample["labels"] == 1
    wp = M.roc_curve(sample["scores"], sample["labels"]).at_signal_eff(0.5)
    emap = M.efficiency_map(
        sample["scores"][sig] >= wp.threshold,
        sample["pt"][sig],
        sample["eta"][sig],
        sample["weights"][sig],
        x_axis=hist.axis.Variable([200, 400, 700, 1000], label="Jet $p_T$ [GeV]"),
        y_axis=hist.axis.Regular(4, -2.5, 2.5, label=r"Jet $\eta$"),
    )
    stem = tmp_path / "eff_map"
    _check_written(plots.plot_efficiency_map(emap, stem, label="Top efficiency"), stem)


def test_plot_sculpting(tmp_path: Path, sample: dict[str, np.ndarray]) -> None:
    s, y = sample["scores"], sample["labels"]
    sculpt = M.mass_sculpting(
        s, y, sample["mass"], sample["weights"], working_point=M.roc_curve(s, y).at_signal_eff(0.5)
    )
    _check_written(plots.plot_sculpting(sculpt, tmp_path / "sculpting"), tmp_path / "sculpting")


def test_sculpting_plot_when_no_background_passes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat([True, False], 200)
    scores = np.where(labels, rng.uniform(0.6, 1.0, 400), rng.uniform(0.0, 0.4, 400))
    mass = rng.uniform(20, 200, 400)
    wp = M.roc_curve(scores, labels).at_signal_eff(0.5)
    sculpting = M.mass_sculpting(scores, labels, mass, working_point=wp)
    assert sculpting.passing.values().sum() == 0
    paths = plots.plot_sculpting(sculpting, tmp_path / "s")
    assert all(p.stat().st_size > 0 for p in paths)
