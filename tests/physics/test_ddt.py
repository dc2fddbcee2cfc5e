"""The DDT map: constant background efficiency in every (rho, pT) bin of a new sample."""

from __future__ import annotations

import numpy as np
import pytest

from heptagon.physics.ddt import DDTMap, build_ddt_map, ddt_metrics, rho


def _toy(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Background-like jets whose score rises with mass and pT (a sculpting tagger)."""
    rng = np.random.default_rng(seed)
    pt = rng.uniform(500.0, 1000.0, n)
    mass = rng.exponential(60.0, n) + 5.0
    score = 1 / (1 + np.exp(-(0.03 * mass + 0.002 * pt - 4.0 + rng.normal(0, 1, n))))
    return score, mass, pt, rng.uniform(0.5, 1.5, n)


def test_rho() -> None:
    np.testing.assert_allclose(rho([80.0, 0.0], [800.0, 500.0]), [2 * np.log(0.1), -np.inf])


def test_map_gives_the_efficiency_in_every_bin_of_an_independent_sample() -> None:
    x = 0.1
    ddt = build_ddt_map(*_toy(1, 40_000)[:3], efficiency=x, score_name="Wqq", rho_bins=8)
    assert ddt.thresholds.shape == (8, 2)
    assert np.ptp(ddt.thresholds) > 0.1  # the raw score does sculpt: the cut must vary
    score, mass, pt, w = _toy(2, 40_000)
    passed = ddt(score, mass, pt) > 0
    r_bin = np.clip(np.searchsorted(ddt.rho_edges, rho(mass, pt), side="right") - 1, 0, 7)
    p_bin = np.clip(np.searchsorted(ddt.pt_edges, pt, side="right") - 1, 0, 1)
    n_map = 40_000 / ddt.thresholds.size  # equal-population bins
    for i, j in np.ndindex(*ddt.thresholds.shape):
        sel = (r_bin == i) & (p_bin == j)
        eff = np.average(passed[sel], weights=w[sel])
        n_eff = w[sel].sum() ** 2 / np.square(w[sel]).sum()
        sigma = np.sqrt(x * (1 - x) * (1 / n_eff + 1 / n_map))  # the test's and the map's
        assert abs(eff - x) < 4 * sigma, (i, j, eff)
    # the raw score at the overall quantile is far from flat
    raw = score > np.quantile(score, 1 - x)
    raw_effs = [raw[(r_bin == i)].mean() for i in range(8)]
    assert max(raw_effs) - min(raw_effs) > 0.2


def test_round_trip_and_empty_bins(tmp_path: object) -> None:
    score, mass, pt, w = _toy(3, 2000)
    ddt = build_ddt_map(
        score, mass, pt, w, efficiency=0.2, score_name="Wqq",
        rho_bins=[-40.0, -30.0, -6.0, -4.0, 0.0], pt_bins=[500.0, 1000.0],
    )  # fmt: skip
    overall = np.quantile(score, 0.8, weights=w, method="inverted_cdf")
    assert ddt.thresholds[0, 0] == overall  # rho < -30: no jets
    again = DDTMap.from_dict(ddt.to_dict())
    np.testing.assert_array_equal(again(score, mass, pt), ddt(score, mass, pt))
    assert again.score == "Wqq"
    with pytest.raises(ValueError, match="efficiency"):
        build_ddt_map(score, mass, pt, efficiency=1.0, score_name="Wqq")


def test_ddt_metrics() -> None:
    rng = np.random.default_rng(4)
    labels = np.arange(1000) % 2 == 0
    ddt_score = np.where(labels, 1.0, -1.0) * rng.uniform(0.1, 1, 1000)
    ddt_score[1::10] = 0.5  # a tenth of the background passes
    mass = rng.uniform(0, 300, 1000)
    out = ddt_metrics(ddt_score, labels, mass)
    assert out["signal_eff"] == 1.0
    assert out["background_eff"] == pytest.approx(0.1 * 2)  # 1::10 hits odd entries only
    assert out["rejection"] == pytest.approx(5.0)
    assert out["jsd_inverse"] is not None
