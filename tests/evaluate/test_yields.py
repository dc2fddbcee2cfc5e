"""Expected yields at a luminosity: hand-computed sums on a synthetic sample, and the
``evaluate(..., lumi_fb=...)`` path on the tiny event sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from heptagon.errors import ConfigError
from heptagon.evaluate.inference import Predictions
from heptagon.evaluate.run import evaluate
from heptagon.evaluate.yields import MIN_BKG, event_processes, expected_yields
from heptagon.train import train

CONFIGS = Path(__file__).parents[2] / "configs"


def _synthetic() -> Predictions:
    # 4 signal events (class 1, 0.5 pb each) at high score; 8 ttbar (0.25 pb) and 4 DY
    # (2 pb) spread over the score
    signal = [0.9, 0.8, 0.85, 0.95]
    ttbar_score = [0.1, 0.2, 0.3, 0.6, 0.7, 0.05, 0.15, 0.25]
    score = np.array([*signal, *ttbar_score, 0.1, 0.2, 0.9, 0.3])
    labels = np.array([1] * 4 + [0] * 12)
    dy = np.array([0] * 12 + [1] * 4)
    ttbar = np.array([0] * 4 + [1] * 8 + [0] * 4)
    xsec = np.array([0.5] * 4 + [0.25] * 8 + [2.0] * 4)
    return Predictions(
        "test",
        ["background", "tth"],
        np.stack([1 - score, score], axis=1),
        labels,
        np.ones(16),
        {"label_dy": dy, "label_ttbar": ttbar, "xsec_weight_pb": xsec},
    )


def test_processes_come_from_label_observers_else_the_class() -> None:
    proc = event_processes(_synthetic())
    assert proc.tolist() == ["tth"] * 4 + ["ttbar"] * 8 + ["dy"] * 4


def test_yields_equal_the_hand_computed_sums() -> None:
    y = expected_yields(_synthetic(), 1, lumi_fb=2.0, sample_fraction=0.5)
    scale = 2.0 * 1000 / 0.5  # pb^-1 per fb^-1, divided by the split's fraction
    assert y.signal == "tth"
    assert y.region == pytest.approx(
        {"tth": 4 * 0.5 * scale, "ttbar": 8 * 0.25 * scale, "dy": 4 * 2.0 * scale}
    )
    # the histograms hold the same expected events
    assert {k: h.values().sum() for k, h in y.histograms.items()} == pytest.approx(y.region)
    # the best cut is a scanned score keeping >= MIN_BKG background events, and it beats
    # keeping everything; S/sqrt(B) is that of the passing yields
    assert y.best_cut <= 0.3  # the 5th-highest background score
    b = y.passing["ttbar"] + y.passing["dy"]
    assert y.s_over_sqrt_b == pytest.approx(y.passing["tth"] / math.sqrt(b))
    assert MIN_BKG == 5
    region_z = y.region["tth"] / math.sqrt(y.region["ttbar"] + y.region["dy"])
    assert y.s_over_sqrt_b >= region_z
    assert y.to_dict()["processes"]["dy"]["region"] == y.region["dy"]


def test_per_process_fractions_scale_each_process() -> None:
    fractions = {"tth": 0.5, "ttbar": 0.25, "dy": 0.1}
    y = expected_yields(_synthetic(), 1, lumi_fb=1.0, sample_fraction=fractions)
    assert y.region == pytest.approx(
        {"tth": 4 * 0.5e3 / 0.5, "ttbar": 8 * 0.25e3 / 0.25, "dy": 4 * 2e3 / 0.1}
    )
    with pytest.raises(ConfigError, match="dy"):
        expected_yields(_synthetic(), 1, lumi_fb=1.0, sample_fraction={"tth": 1, "ttbar": 1})
    with pytest.raises(ConfigError, match="0, 1"):
        expected_yields(_synthetic(), 1, lumi_fb=1.0, sample_fraction=1.5)


def test_missing_weight_observer_is_a_config_error() -> None:
    pred = _synthetic()
    with pytest.raises(ConfigError, match="no_such"):
        expected_yields(pred, 1, lumi_fb=1.0, weight="no_such")


def test_evaluate_with_lumi_writes_yields(event_sample: Path, tmp_path: Path) -> None:
    run = tmp_path / "bdt"
    train(CONFIGS / "analysis_bdt.yaml", event_sample, run)
    result = evaluate(run, n_boot=2, lumi_fb=300)
    yields = result.metrics.to_json()["yields"]
    assert json.loads((run / "eval" / "metrics.json").read_text())["yields"] == yields
    pred = pq.read_table(run / "eval" / "predictions_test.parquet").to_pandas()
    expected = pred["xsec_weight_pb"] * 300e3 / 0.15  # the test split's fraction
    is_tth = pred["label"] == 1
    assert yields["processes"]["tth"]["region"] == pytest.approx(expected[is_tth].sum())
    for proc in ("ttbar", "dy"):
        sel = ~is_tth & (pred[f"label_{proc}"] != 0)
        got = yields["processes"].get(proc, {"region": 0.0})["region"]
        assert got == pytest.approx(expected[sel].sum())
    assert (run / "eval" / "plots" / "test_yields.png").stat().st_size > 0
    assert "expected events at 300 fb^-1" in (run / "eval" / "report.md").read_text()
