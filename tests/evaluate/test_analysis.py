"""Evaluation of predictions: metrics, maps, sculpting, plots, report, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heptagon.artifacts.metrics import Measured, Rejection
from heptagon.evaluate.analysis import analyse, draw, signal_class
from heptagon.evaluate.inference import Predictions
from heptagon.evaluate.report import format_value, markdown_report
from heptagon.physics.metrics import auc


def synthetic(n: int = 4000, classes: tuple[str, ...] = ("Tbqq", "QCD")) -> Predictions:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(classes), n)
    signal = labels == 0
    p0 = np.where(signal, rng.beta(5, 2, n), rng.beta(2, 5, n))
    probs = np.stack([p0, 1 - p0], axis=1)
    if len(classes) > 2:
        probs = rng.dirichlet(np.ones(len(classes)), n)
        probs[np.arange(n), labels] += 1.0
        probs /= probs.sum(axis=1, keepdims=True)
    mass = np.where(signal, rng.normal(172, 15, n), rng.exponential(40, n))
    return Predictions(
        name="test",
        class_names=list(classes),
        probs=probs,
        labels=labels,
        weights=rng.uniform(0.5, 1.5, n),
        observers={
            "jet_pt": rng.uniform(550, 650, n),
            "jet_eta": rng.uniform(-2, 2, n),
            "jet_sdmass": mass,
        },
    )


def test_signal_class_is_the_non_background_one() -> None:
    assert signal_class(["Tbqq", "QCD"]) == 0
    assert signal_class(["QCD", "Tbqq"]) == 1
    assert signal_class(["q", "g"]) == 0
    assert signal_class(["g", "q"]) == 1


def test_binary_analysis(tmp_path: Path) -> None:
    pred = synthetic()
    result = analyse(pred, n_boot=20)
    m = result.metrics.to_json()
    assert m["signal"] == "Tbqq"
    expected = auc(pred.probs[:, 0], pred.labels == 0, pred.weights)
    assert m["auc"]["value"] == pytest.approx(expected)
    assert 0.9 < m["auc"]["value"] < 0.99
    assert set(m["rejection_at_eff"]) == {"0.3", "0.5"}
    assert m["rejection_at_eff"]["0.3"]["value"] > m["rejection_at_eff"]["0.5"]["value"]
    assert set(result.maps) == {"efficiency", "mistag"}
    # the signal map at the 50% working point averages to 50%
    emap = result.maps["efficiency"]
    assert emap.passed.values().sum() / emap.total.values().sum() == pytest.approx(0.5, abs=0.01)
    assert result.sculpting is not None
    assert m["jsd_inverse_at_eff"]["0.5"]["value"] > 1
    paths = draw(result, pred, tmp_path)
    names = {p.name for p in paths}
    assert {"test_roc.png", "test_scores.pdf", "test_mistag_map.png", "test_sculpting.png"} <= names
    report = markdown_report("demo", {"test": result.metrics}, paths, tmp_path)
    assert "| test |" in report
    assert "](test_roc.png)" in report


def test_multiclass_analysis() -> None:
    pred = synthetic(classes=("Hbb", "Hcc", "QCD"))
    result = analyse(pred, n_boot=10)
    d = result.metrics.to_json()
    assert set(d["per_class"]) == {"Hbb", "Hcc", "QCD"}
    assert set(result.rocs) == {
        "Hbb vs rest",
        "Hcc vs rest",
        "QCD vs rest",
        "Hbb vs QCD",
        "Hcc vs QCD",
    }
    # the pairwise discriminant only sees Hbb and QCD jets
    pair = d["pairwise_vs_QCD"]["Hbb"]
    n_pair = int(((pred.labels == 0) | (pred.labels == 2)).sum())
    assert pair["n_signal"]["raw"] + pair["n_background"]["raw"] == n_pair
    disc = pred.probs[:, 0] / (pred.probs[:, 0] + pred.probs[:, 2])
    sel = (pred.labels == 0) | (pred.labels == 2)
    assert pair["auc"]["value"] == pytest.approx(
        auc(disc[sel], pred.labels[sel] == 0, pred.weights[sel])
    )
    assert d["auc"]["value"] > 0.6
    report = markdown_report("multi", {"test": result.metrics}, [], Path("."))
    assert "## test: each vs QCD" in report
    assert "| Hcc |" in report


def test_predictions_round_trip(tmp_path: Path) -> None:
    pred = synthetic(100)
    pred.save(tmp_path / "p.parquet")
    back = Predictions.load(tmp_path / "p.parquet", pred.class_names)
    assert back.name == "test"
    np.testing.assert_array_equal(back.probs, pred.probs)
    np.testing.assert_array_equal(back.labels, pred.labels)
    np.testing.assert_array_equal(back.observers["jet_sdmass"], pred.observers["jet_sdmass"])


def test_format_value() -> None:
    assert format_value(Measured(value=123.456, err=1.23)) == "123.5 +- 1.2"
    assert format_value(Measured(value=0.5)) == "0.5"
    assert format_value(Rejection(value=None, err=None, lower_limit=300.0)) == "> 300"
    assert format_value(Measured(value=None)) == "-"
    assert format_value(None) == "-"


def test_regression_analysis_bins_the_resolution_in_jet_pt() -> None:
    rng = np.random.default_rng(3)
    true = rng.uniform(50, 150, 2000)
    pt = rng.uniform(500, 1000, 2000)
    # the relative smearing grows with jet pT: 5% at 500 GeV, 10% at 1000 GeV
    smear = 0.05 * pt / 500
    predicted = true * (1 + smear * rng.standard_normal(2000))
    pred = Predictions("reg", ["target"], predicted[:, None], true, np.ones(2000), {"jet_pt": pt})
    m = analyse(pred, task="regression", n_boot=5).metrics.to_json()
    assert m["response_median"]["value"] == pytest.approx(1.0, abs=0.01)
    res = m["resolution_vs"]["jet_pt"]["resolution"]
    assert len(res) == 4
    assert res[0] < res[-1]
    # a Gaussian's IQR/2 is 0.674 sigma
    assert res[0] == pytest.approx(0.674 * 0.05 * 1.12, rel=0.2)
