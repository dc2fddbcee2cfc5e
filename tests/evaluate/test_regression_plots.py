"""Regression evaluation: response and resolution vs the true value, numbers and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heptagon.evaluate.analysis import N_TRUE_BINS, analyse, draw
from heptagon.evaluate.inference import Predictions


def test_response_and_resolution_vs_true(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    true = rng.uniform(0.5, 3.0, 400)
    # the response is 1.1 below a true value of 1.5 and 0.9 above; spread 0.1 (uniform)
    scale = np.where(true < 1.5, 1.1, 0.9) + rng.uniform(-0.1, 0.1, 400)
    pred = Predictions("test", ["higgs_pt"], (true * scale)[:, None], true, np.ones(400))
    result = analyse(pred, task="regression", n_boot=3)
    res = result.metrics.to_json()["resolution_vs"]["true"]
    assert len(res["median"]) == N_TRUE_BINS
    assert res["median"][0] == pytest.approx(1.1, abs=0.03)
    assert res["median"][-1] == pytest.approx(0.9, abs=0.03)
    # uniform spread of half-width 0.1: IQR = 0.1
    assert np.allclose(res["iqr"], 0.1, atol=0.03)
    assert res["resolution"][0] == pytest.approx(0.05 / 1.1, abs=0.015)
    paths = draw(result, pred, tmp_path)
    names = {p.name for p in paths}
    assert {"test_response.png", "test_resolution_vs_true.pdf"} <= names
    assert all(p.stat().st_size > 0 for p in paths)
