"""heptagon.physics.flavour against hand-computed geometry (mm, GeV) and hand-made scores."""

from __future__ import annotations

import numpy as np
import pytest

from heptagon.physics.flavour import (
    FLAVOURS,
    Track,
    cos_theta_flight,
    discriminants,
    flavour_metrics,
    flavour_rocs,
    flight_distances,
    ip2d,
    ip3d,
    ip3d_error,
    track_features,
    track_jet_distance,
)


def track_from(
    production: tuple[float, float, float],
    momentum: tuple[float, float, float],
    d0err: float = 0.01,
    dzerr: float = 0.02,
) -> Track:
    """A track produced at ``production`` (mm) with ``momentum`` (GeV), with the detector's
    conventions: d0 = (x py - y px) / pT, dz = z - (x px + y py) pz / pT^2."""
    x, y, z = production
    px, py, pz = momentum
    pt = np.hypot(px, py)
    d0 = (x * py - y * px) / pt
    dz = z - (x * px + y * py) * pz / pt**2
    return Track(*(np.array([v], dtype=np.float64) for v in (d0, dz, d0err, dzerr, px, py, pz)))


JET = (np.array([50.0]), np.array([0.0]), np.array([0.0]))  # along +x


@pytest.mark.parametrize("angle", [0.3, -0.3, 0.05, -1.2])
def test_a_track_displaced_along_the_jet_has_positive_ip(angle: float) -> None:
    # produced 2 mm downstream along the jet axis, leaving at any angle: IP > 0
    t = track_from((2.0, 0.0, 0.0), (10 * np.cos(angle), 10 * np.sin(angle), 3.0))
    assert ip2d(t, *JET[:2])[0] == pytest.approx(2.0 * abs(np.sin(angle)))
    assert ip3d(t, *JET)[0] > 0
    # the same track produced upstream (behind the primary vertex): IP < 0
    back = track_from((-2.0, 0.0, 0.0), (10 * np.cos(angle), 10 * np.sin(angle), 3.0))
    assert ip2d(back, *JET[:2])[0] == pytest.approx(-2.0 * abs(np.sin(angle)))
    assert ip3d(back, *JET)[0] < 0


def test_pca_is_the_transverse_point_of_closest_approach() -> None:
    t = track_from((1.0, 2.0, 0.5), (3.0, 4.0, 1.0))
    x, y, _ = (v[0] for v in t.pca())
    r, u = np.array([1.0, 2.0]), np.array([3.0, 4.0]) / 5.0
    assert (x, y) == pytest.approx(tuple(r - (r @ u) * u))


def test_ip3d_is_the_distance_of_the_track_line_from_the_vertex() -> None:
    # production (1, 0, 0.5) mm, direction (0, 1, 1)/sqrt(2): |r x n| = 1.5 / sqrt(2)
    t = track_from((1.0, 0.0, 0.5), (0.0, 1.0, 1.0), d0err=0.1, dzerr=0.2)
    assert t.d0[0] == pytest.approx(1.0)
    assert t.dz[0] == pytest.approx(0.5)
    jet = (np.array([1.0]), np.array([0.0]), np.array([0.0]))
    assert ip3d(t, *jet)[0] == pytest.approx(1.5 / np.sqrt(2))
    # error: sqrt((d0 s_d0)^2 + (sin^2 dz s_dz)^2) / IP3D
    expected = np.sqrt(0.1**2 + (0.5 * 0.5 * 0.2) ** 2) / (1.5 / np.sqrt(2))
    assert ip3d_error(t)[0] == pytest.approx(expected)
    features = track_features(t, *jet)
    assert features["ip3d_sig"][0] == pytest.approx(features["ip3d"][0] / expected)
    assert features["ip2d_sig"][0] == pytest.approx(features["ip2d"][0] / 0.1)


def test_track_jet_distance_between_two_lines() -> None:
    # the track stays at x = 1 mm; the jet axis is the z axis: they are 1 mm apart
    t = track_from((1.0, 0.0, 0.5), (0.0, 1.0, 1.0))
    jet_z = (np.array([0.0]), np.array([0.0]), np.array([40.0]))
    assert track_jet_distance(t, *jet_z)[0] == pytest.approx(1.0)
    # a track from the primary vertex meets the axis: distance 0
    prompt = track_from((0.0, 0.0, 0.0), (3.0, 1.0, 2.0))
    assert track_jet_distance(prompt, *JET)[0] == pytest.approx(0.0, abs=1e-12)
    # parallel to the axis: its distance from the primary vertex
    parallel = track_from((0.0, 0.3, 0.0), (5.0, 0.0, 0.0))
    assert track_jet_distance(parallel, *JET)[0] == pytest.approx(0.3)


def test_a_neutral_candidate_has_zero_significances() -> None:
    t = Track(*(np.zeros(1) for _ in range(4)), np.ones(1), np.ones(1), np.zeros(1))
    features = track_features(t, *JET)
    assert features["ip2d_sig"][0] == 0.0
    assert features["ip3d_sig"][0] == 0.0


def test_flight_distances_and_their_significance() -> None:
    pos = np.array([[3.0, 4.0, 12.0]])
    cov = np.diag([1.0, 1.0, 4.0])[None]
    f = flight_distances(pos, cov)
    assert f["dxy"][0] == pytest.approx(5.0)
    assert f["dxysig"][0] == pytest.approx(5.0)
    var = (9 + 16 + 4 * 144) / 169
    assert f["d3d"][0] == pytest.approx(13.0)
    assert f["d3dsig"][0] == pytest.approx(13.0 / np.sqrt(var))


def test_cos_theta_between_flight_and_momentum() -> None:
    c = cos_theta_flight(np.array([[1.0, 0, 0], [0, 0, 0]]), np.array([[1.0, 1, 0], [1, 0, 0]]))
    assert c == pytest.approx([1 / np.sqrt(2), 0.0])


def test_discriminants_are_the_cms_ratios() -> None:
    d = discriminants({"b": [0.5, 0.0], "c": [0.3, 0.0], "uds": [0.1, 0.0], "g": [0.1, 0.0]})
    assert d["BvsAll"] == pytest.approx([0.5, 0.0])
    assert d["CvsL"] == pytest.approx([0.6, 0.0])
    assert d["CvsB"] == pytest.approx([0.375, 0.0])


def _scores(order: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """200 jets of each flavour; b jets score high in b and light jets low, except that
    the last 10 light jets (2.5% of the 400) look like b jets."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 200)  # b, c, uds, g
    probs = np.full((800, 4), 0.1)
    probs[np.arange(800), labels] = 0.7
    probs[labels == 0, 0] += rng.uniform(0, 0.2, 200)  # b: BvsAll in (0.7, 0.75]
    probs[790:, :] = [0.9, 0.04, 0.03, 0.03]  # b-like gluon jets
    probs /= probs.sum(axis=1, keepdims=True)
    col = [FLAVOURS.index(c) for c in order]
    return probs[:, col], np.array([order.index(FLAVOURS[i]) for i in labels])


def test_flavour_metrics_working_points() -> None:
    probs, labels = _scores(FLAVOURS)
    m = flavour_metrics(probs, labels, FLAVOURS, n_boot=5)
    assert m is not None
    loose, medium = m.working_points["loose"], m.working_points["medium"]
    # 10 of 400 light jets outscore every b jet: the 10% WP keeps all b, the 1% WP none
    assert loose.b_eff == 1.0
    assert loose.light_eff == pytest.approx(10 / 400)
    assert medium.b_eff == 0.0
    assert medium.light_eff <= 0.01
    assert loose.c_eff == 0.0  # c jets have BvsAll 0.1 / 1.0
    assert m.b_vs_light.eff_at_mistag["0.1"].value == 1.0
    assert m.b_vs_c.auc.value == 1.0
    assert m.c_vs_light.auc.value == 1.0
    assert m.b_vs_light.rejection_at_eff["0.7"].value == pytest.approx(400 / 10)


def test_flavour_metrics_do_not_depend_on_the_class_order() -> None:
    a = flavour_metrics(*_scores(FLAVOURS), FLAVOURS, n_boot=5)
    order = ("g", "uds", "b", "c")
    b = flavour_metrics(*_scores(order), order, n_boot=5)
    assert a == b
    assert set(flavour_rocs(*_scores(order), order)) == {
        "BvsAll: b vs light",
        "BvsAll: b vs c",
        "CvsL: c vs light",
        "CvsB: c vs b",
    }


def test_flavour_metrics_need_the_flavour_classes() -> None:
    probs, labels = _scores(FLAVOURS)
    assert flavour_metrics(probs, labels, ("QCD", "Hbb", "Hcc", "Hgg")) is None
    no_c = labels != 1
    assert flavour_metrics(probs[no_c], labels[no_c], FLAVOURS) is None
