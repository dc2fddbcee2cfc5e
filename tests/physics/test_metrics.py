"""Metric values against small cases computed by hand (in the comments)."""

from __future__ import annotations

import math

import hist
import numpy as np
import pytest

from heptagon.errors import DataError
from heptagon.physics import metrics as M

# six events, sorted by score: S B S S B B
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
LABELS = np.array([1, 0, 1, 1, 0, 0])


def test_roc_points_by_hand() -> None:
    roc = M.roc_curve(SCORES, LABELS)
    # cut at each score in turn: signal passes 1,1,2,3,3,3 of 3; background 0,1,1,1,2,3 of 3
    np.testing.assert_allclose(roc.signal_eff, [0, 1 / 3, 1 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(roc.background_eff, [0, 0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_array_equal(roc.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    # binomial error sqrt(e(1-e)/N) with N = 3
    assert roc.signal_eff_err[3] == pytest.approx(math.sqrt(2 / 3 * 1 / 3 / 3))
    assert roc.rejection[2] == pytest.approx(3.0)
    assert roc.rejection[1] == np.inf


def test_auc_is_mann_whitney() -> None:
    # signal 0.9 beats 3 backgrounds, 0.7 and 0.6 beat two each: 7 of 9 pairs
    assert M.auc(SCORES, LABELS) == pytest.approx(7 / 9)


def test_auc_with_ties_and_weights() -> None:
    # S: 0.5 (w 2), 0.8 (w 1); B: 0.5 (w 1), 0.2 (w 3). Weighted pairs over W_S W_B = 12:
    # (0.5,0.5) tie 2*1/2 = 1; (0.5,0.2) 2*3 = 6; (0.8,0.5) 1; (0.8,0.2) 3 -> 11/12
    scores = [0.5, 0.8, 0.5, 0.2]
    labels = [1, 1, 0, 0]
    assert M.auc(scores, labels, [2, 1, 1, 3]) == pytest.approx(11 / 12)
    # unweighted: tie 1/2 + 1 + 1 + 1 = 3.5 of 4
    assert M.auc(scores, labels) == pytest.approx(3.5 / 4)


def test_integer_weights_equal_duplicated_events() -> None:
    w = np.array([2, 1, 3, 1, 2, 1])
    weighted = M.roc_curve(SCORES, LABELS, w)
    duplicated = M.roc_curve(np.repeat(SCORES, w), np.repeat(LABELS, w))
    np.testing.assert_allclose(weighted.signal_eff, duplicated.signal_eff)
    np.testing.assert_allclose(weighted.background_eff, duplicated.background_eff)
    # effective counts (sum w)^2 / sum w^2: signal w = 2, 3, 1 -> 36/14
    assert weighted.n_signal_eff == pytest.approx(36 / 14)


# ten signal, twenty background; background above 0.6: 0.82 and 0.72
SIG = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.3, 0.2])
BKG = np.array([0.82, 0.72] + [0.1] * 18)
WP_SCORES = np.r_[SIG, BKG]
WP_LABELS = np.r_[np.ones(10), np.zeros(20)]


def _cp_upper_one_passing(n: int) -> float:
    """Solve P(k <= 1 | n, p) = 0.05 for p by bisection (one-sided 95% CL, k = 1)."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        p = (lo + hi) / 2
        cdf = (1 - p) ** n + n * p * (1 - p) ** (n - 1)
        lo, hi = (p, hi) if cdf > 0.05 else (lo, p)
    return lo


def test_rejection_at_efficiency() -> None:
    # eff 0.5: tightest cut with 5 of 10 signal is 0.75; one background (0.82) passes
    r = M.rejection_at_efficiency(WP_SCORES, WP_LABELS, eff=0.5)
    assert r["value"] == pytest.approx(20.0)
    # err = sqrt(0.05 * 0.95 / 20) / 0.05^2
    assert r["err"] == pytest.approx(math.sqrt(0.05 * 0.95 / 20) / 0.05**2)
    assert r["lower_limit"] == pytest.approx(1 / _cp_upper_one_passing(20), rel=1e-6)
    # eff 0.8: cut 0.6, two backgrounds pass
    assert M.rejection_at_efficiency(WP_SCORES, WP_LABELS, eff=0.8)["value"] == pytest.approx(10)


def test_rejection_when_no_background_passes() -> None:
    # eff 0.3: cut 0.85, no background passes; upper limit on eps_B 1 - 0.05^(1/20)
    r = M.rejection_at_efficiency(WP_SCORES, WP_LABELS, eff=0.3)
    assert r["value"] is None
    assert r["err"] is None
    assert r["lower_limit"] == pytest.approx(1 / (1 - 0.05 ** (1 / 20)))
    # large N: the rule of three, N_eff / 3
    scores = np.r_[np.ones(10), np.zeros(30000)]
    labels = np.r_[np.ones(10), np.zeros(30000)]
    big = M.rejection_at_efficiency(scores, labels, eff=0.5)
    assert big["lower_limit"] == pytest.approx(30000 / 3, rel=2e-3)


def test_rejection_with_weights() -> None:
    # the passing background (0.82) weighs 2 of a background total 21: eps_B = 2/21
    w = np.r_[np.ones(10), 2.0, np.ones(19)]
    r = M.rejection_at_efficiency(WP_SCORES, WP_LABELS, w, eff=0.5)
    assert r["value"] == pytest.approx(21 / 2)
    n_eff = 21**2 / (4 + 19)
    eps = 2 / 21
    assert r["err"] == pytest.approx(math.sqrt(eps * (1 - eps) / n_eff) / eps**2)


def test_efficiency_at_mistag() -> None:
    # loosest cut with eps_B <= 0.05 is 0.75 (at 0.72 eps_B = 0.1): 5 of 10 signal
    e = M.efficiency_at_mistag(WP_SCORES, WP_LABELS, mistag=0.05)
    assert e["value"] == pytest.approx(0.5)
    assert e["err"] == pytest.approx(math.sqrt(0.25 / 10))
    # no background at all: cut 0.85, 3 of 10
    assert M.efficiency_at_mistag(WP_SCORES, WP_LABELS, mistag=0.0)["value"] == pytest.approx(0.3)


def test_accuracy_weighted() -> None:
    # predicted S S S S B B vs true S B S S B B: event 2 (weight 3) is wrong -> 1 - 3/9
    w = [1, 3, 1, 1, 2, 1]
    assert M.accuracy(SCORES >= 0.55, LABELS, w) == pytest.approx(6 / 9)


def test_jsd_identical_disjoint_and_by_hand() -> None:
    assert M.jsd([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-12)
    assert M.jsd([1, 0, 0], [0, 5, 5]) == pytest.approx(1.0)
    # p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4):
    # KL(p|m) = log2(4/3); KL(q|m) = 1/2 log2(2/3) + 1/2 log2(2); JSD = mean of the two
    expected = 0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25
    assert M.jsd([2, 0], [3, 3]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="positive sum"):
        M.jsd([0, 0], [1, 1])


def test_jsd_inverse_at_efficiency() -> None:
    # signal 0.9, 0.1 -> cut 0.9 at 50%; background passing: m = 10; failing: m = 10, 200
    # -> the p = (1, 0), q = (1/2, 1/2) case above
    scores = [0.9, 0.1, 0.95, 0.2, 0.2]
    labels = [1, 1, 0, 0, 0]
    mass = [50.0, 50.0, 10.0, 10.0, 200.0]
    expected = 0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25
    assert M.jsd_inverse_at_efficiency(scores, labels, mass) == pytest.approx(1 / expected)
    sculpt = M.mass_sculpting(
        scores, labels, mass, working_point=M.roc_curve(scores, labels).at_signal_eff(0.5)
    )
    assert sculpt.passing.values().sum() == 1
    assert sculpt.failing.values()[1] == 1  # 40 bins of 7.5 GeV: 10 GeV is in [7.5, 15)
    # identical passing and failing shapes: 1/JSD is infinite -> None
    same = M.jsd_inverse_at_efficiency(scores, labels, [50.0, 50.0, 10.0, 10.0, 10.0])
    assert same is None


def test_efficiency_map_by_hand() -> None:
    x_axis = hist.axis.Variable([30, 100, 1000], name="pt", label="jet $p_T$ [GeV]")
    y_axis = hist.axis.Regular(2, -2.5, 2.5, name="eta", label=r"jet $\eta$")
    pt = [50, 50, 50, 500, 500, 50]
    eta = [-1, -1, -1, 1, 1, 1]
    passed = [True, False, True, True, False, False]
    weights = [1, 1, 2, 1, 3, 1]
    emap = M.efficiency_map(passed, pt, eta, weights, x_axis=x_axis, y_axis=y_axis)
    # bin (low pt, eta<0): pass 1 + 2 of 4, N_eff = 16/6; (high, eta>0): 1 of 4, N_eff 16/10
    # (low, eta>0): 0 of 1; (high, eta<0): empty
    np.testing.assert_allclose(emap.efficiency, [[3 / 4, 0.0], [np.nan, 1 / 4]])
    expected_err = [
        [math.sqrt(3 / 16 / (16 / 6)), 0.0],
        [np.nan, math.sqrt(3 / 16 / (16 / 10))],
    ]
    np.testing.assert_allclose(emap.error, expected_err)


def test_score_histograms_per_class() -> None:
    h = M.score_histograms([0.05, 0.15, 0.95], [0, 1, 1], ["QCD", "Top"], [2.0, 1.0, 3.0], bins=10)
    assert h["QCD"].values()[0] == 2.0
    assert h["Top"].values()[1] == 1.0
    assert h["Top"].values()[9] == 3.0


def test_pairwise_discriminant() -> None:
    probs = [[0.6, 0.2, 0.2], [0.0, 0.0, 1.0], [0.1, 0.3, 0.6]]
    np.testing.assert_allclose(M.pairwise_discriminant(probs, 0, 1), [0.75, 0.5, 0.25])


def test_confusion_matrix_weighted() -> None:
    labels = [0, 0, 1, 2, 2]
    predicted = [0, 1, 1, 2, 0]
    weights = [1, 2, 1, 1, 3]
    cm = M.confusion_matrix(labels, predicted, 3, weights)
    np.testing.assert_allclose(cm, [[1, 2, 0], [0, 1, 0], [3, 0, 1]])
    norm = M.confusion_matrix(labels, predicted, 3, weights, normalize=True)
    np.testing.assert_allclose(norm, [[1 / 3, 2 / 3, 0], [0, 1, 0], [3 / 4, 0, 1 / 4]])


def test_macro_auc() -> None:
    # class 0: perfectly separated (1); class 1: AUC of (0.2 | 0.5, 0.3) = 0; class 2 as hand
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.5, 0.4], [0.2, 0.3, 0.5]])
    labels = [0, 2, 1]
    # class 1 vs rest: scores 0.3 (S) vs 0.05, 0.5 -> 1 of 2 pairs; class 2: 0.4 vs 0.05, 0.5
    assert M.macro_auc(probs, labels) == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_response_and_resolution() -> None:
    true = np.full(5, 100.0)
    pred = np.array([80.0, 90.0, 100.0, 110.0, 120.0])
    r = M.response(pred, true)
    # inverted CDF at 0.25, 0.5, 0.75 of five equal weights: 0.9, 1.0, 1.1
    assert (r.median, r.iqr, r.resolution) == pytest.approx((1.0, 0.2, 0.1))
    # weights 3,1,1,1,1: CDF 3/7, 4/7, 5/7, 6/7, 1 -> 0.8, 0.9, 1.1
    rw = M.response(pred, true, [3, 1, 1, 1, 1])
    assert (rw.median, rw.iqr) == pytest.approx((0.9, 0.3))
    binned = M.resolution_in_bins(pred, true, [10, 10, 10, 60, 60], [0, 50, 100, 150])
    np.testing.assert_array_equal(binned.counts, [3, 2, 0])
    # bin 1: responses 0.8, 0.9, 1.0 -> median 0.9, IQR 1.0 - 0.8; bin 2: 1.1, 1.2
    np.testing.assert_allclose(binned.median, [0.9, 1.1, np.nan])
    np.testing.assert_allclose(binned.iqr, [0.2, 0.1, np.nan])
    np.testing.assert_allclose(binned.resolution[:2], [0.1 / 0.9, 0.05 / 1.1])


def test_bootstrap_keeps_groups_and_is_seeded() -> None:
    groups = np.array([0, 0, 0, 1, 1])
    samples = M.bootstrap(lambda i: [np.sum(groups[i] == 1)], groups, n_boot=20, seed=3)
    assert samples.shape == (20, 1)
    np.testing.assert_array_equal(samples, 2)
    x = np.arange(5.0)
    a = M.bootstrap(lambda i: [x[i].mean()], groups, n_boot=5, seed=1)
    b = M.bootstrap(lambda i: [x[i].mean()], groups, n_boot=5, seed=1)
    np.testing.assert_array_equal(a, b)


def _synthetic(n: int = 400, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n), np.zeros(n)]
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1)
    mass = rng.uniform(0, 300, 2 * n)
    weights = rng.uniform(0.5, 1.5, 2 * n)
    return scores, labels, mass, weights


def test_binary_metrics_structure_and_values() -> None:
    scores, labels, mass, weights = _synthetic()
    d = M.binary_metrics(scores, labels, weights, mass=mass, n_boot=20)
    assert d.kind == "binary"
    assert d.n_signal.raw == 400
    assert d.n_signal.weighted == pytest.approx(weights[:400].sum())
    assert set(d.rejection_at_eff) == {"0.3", "0.5"}
    assert set(d.eff_at_mistag) == {"0.01", "0.001"}
    assert set(d.jsd_inverse_at_eff) == {"0.5"}
    assert d.auc.value == pytest.approx(M.auc(scores, labels, weights))
    rej = M.rejection_at_efficiency(scores, labels, weights, eff=0.5)
    assert d.rejection_at_eff["0.5"].value == pytest.approx(rej["value"])
    assert d.rejection_at_eff["0.5"].lower_limit == pytest.approx(rej["lower_limit"])
    eff = M.efficiency_at_mistag(scores, labels, weights, mistag=0.01)
    assert d.eff_at_mistag["0.01"].value == pytest.approx(eff["value"])
    jsd_inv = M.jsd_inverse_at_efficiency(scores, labels, mass, weights, eff=0.5)
    assert d.jsd_inverse_at_eff["0.5"].value == pytest.approx(jsd_inv)
    for entry in (d.auc, d.accuracy, d.rejection_at_eff["0.5"]):
        assert entry.err is not None
        assert entry.value is not None
        assert 0 < entry.err < entry.value
    # the bootstrap is seeded
    assert M.binary_metrics(scores, labels, weights, mass=mass, n_boot=20) == d


def test_binary_metrics_no_background_passes() -> None:
    d = M.binary_metrics(WP_SCORES, WP_LABELS, n_boot=10)
    rej = d.rejection_at_eff["0.3"]
    assert rej.value is None
    assert rej.err is None
    assert rej.lower_limit == pytest.approx(1 / (1 - 0.05 ** (1 / 20)))
    assert d.jsd_inverse_at_eff == {}


def test_binary_metrics_needs_both_classes() -> None:
    with pytest.raises(DataError, match="signal and background"):
        M.binary_metrics([0.1, 0.2], [0, 0])


def test_multiclass_metrics() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 100)
    probs = rng.dirichlet([1, 1, 1], 300) + 2 * np.eye(3)[labels]
    probs /= probs.sum(axis=1, keepdims=True)
    d = M.multiclass_metrics(probs, labels, ["QCD", "Top", "W"], n_boot=5)
    assert d.kind == "multiclass"
    assert set(d.n_events) == {"QCD", "Top", "W"}
    assert d.auc.value == pytest.approx(M.macro_auc(probs, labels))
    assert d.per_class["Top"].auc.value == pytest.approx(M.auc(probs[:, 1], labels == 1))
    assert d.per_class["Top"].n_signal.raw == 100
    np.testing.assert_allclose(np.sum(d.confusion.matrix, axis=1), 1.0)
    assert d.accuracy.value == pytest.approx(np.trace(d.confusion.matrix) / 3)


def test_regression_metrics() -> None:
    pred = np.array([80.0, 90.0, 100.0, 110.0, 120.0])
    d = M.regression_metrics(pred, np.full(5, 100.0), n_boot=10)
    assert d.response_median.value == pytest.approx(1.0)
    assert d.response_iqr.value == pytest.approx(0.2)
    assert d.resolution.value == pytest.approx(0.1)
    assert d.resolution.err is not None
    assert d.resolution.err > 0
