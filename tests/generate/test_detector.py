"""The parametric detector response on hand-made particles."""

from __future__ import annotations

import numpy as np
import pytest

from heptagon.generate.detector import DetectorConfig, Particles, apply_detector, bin_cells
from heptagon.physics.pdg import CAT_CHARGED_HADRON, CAT_MUON, CAT_NEUTRAL_HADRON, CAT_PHOTON


def make(pid, pt, eta, phi, vx=None, vy=None, vz=None, mass=None, events=None) -> Particles:
    """Particles from (pT, eta, phi); all in one event unless ``events`` gives counts."""
    n = len(pid)
    pt, eta, phi = (np.broadcast_to(np.asarray(x, float), (n,)).copy() for x in (pt, eta, phi))
    m = np.zeros(n) if mass is None else np.broadcast_to(np.asarray(mass, float), (n,))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    zeros = np.zeros(n)
    return Particles(
        counts=np.array([n]) if events is None else np.asarray(events),
        px=px,
        py=py,
        pz=pz,
        e=np.sqrt(px**2 + py**2 + pz**2 + m**2),
        pid=np.asarray(pid, dtype=np.int64),
        vx=zeros if vx is None else np.broadcast_to(np.asarray(vx, float), (n,)),
        vy=zeros if vy is None else np.broadcast_to(np.asarray(vy, float), (n,)),
        vz=zeros if vz is None else np.broadcast_to(np.asarray(vz, float), (n,)),
    )


def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


CFG = DetectorConfig()
N = 20000


def tracked_fraction(pid: int, pt: float, eta: float) -> float:
    rs = np.random.default_rng(1)
    p = make([pid] * N, pt, eta, rs.uniform(-np.pi, np.pi, N), mass=0.1396)
    c = apply_detector(p, CFG, rng())
    return float(np.sum(c.charge != 0) / N)


@pytest.mark.parametrize(
    ("pt", "eta", "expected"),
    [(5.0, 0.5, 0.95), (0.5, 0.5, 0.70), (5.0, 2.0, 0.85), (0.5, 2.0, 0.60), (5.0, 2.7, 0.0)],
)
def test_track_efficiency_follows_the_table(pt: float, eta: float, expected: float) -> None:
    frac = tracked_fraction(211, pt, eta)
    err = np.sqrt(max(expected * (1 - expected), 1e-4) / N)
    assert abs(frac - expected) < 4 * err + 1e-9


def test_untracked_charged_hadrons_reach_hcal() -> None:
    p = make([211], 50.0, 2.8, 0.3, mass=0.1396)  # beyond the tracker
    c = apply_detector(p, CFG, rng())
    assert list(c.category) == [CAT_NEUTRAL_HADRON]
    assert c.e[0] == pytest.approx(50.0 * np.cosh(2.8), rel=0.3)


def test_track_pt_resolution_matches_cms_parametrisation() -> None:
    rs = np.random.default_rng(2)
    p = make([211] * N, 100.0, rs.uniform(-0.4, 0.4, N), rs.uniform(-3, 3, N), mass=0.1396)
    c = apply_detector(p, CFG, rng())
    rel = np.hypot(c.px, c.py)[c.charge != 0] / 100.0 - 1
    expected = np.hypot(0.006, 1.3e-4 * 100)  # about 1.4 % at 100 GeV in the barrel
    assert np.std(rel) == pytest.approx(expected, rel=0.05)


def test_calorimeter_resolutions_have_physical_size() -> None:
    # a 10 GeV neutral hadron in HCAL: ~50 %; a 1 TeV photon in ECAL: below 1 %
    rs = np.random.default_rng(3)
    phis = rs.uniform(-3, 3, N)
    events = np.ones(N, dtype=int)
    had = apply_detector(make([2112] * N, 10.0, 0.0, phis, mass=0.9396, events=events), CFG, rng())
    mean_e = np.hypot(10.0, 0.9396)
    assert 0.4 < np.std(had.e) / mean_e < 0.6
    pho = apply_detector(make([22] * N, 1000.0, 0.0, phis, events=events), CFG, rng())
    assert np.std(pho.e) / 1000.0 < 0.01
    assert set(pho.category) == {CAT_PHOTON}


def test_neutrals_in_one_tower_merge_and_thresholds_apply() -> None:
    cell = CFG.ecal_barrel_cell
    # two photons in the same ECAL cell, one far away, and a soft neutral hadron below E_min
    p = make(
        [22, 22, 22, 130],
        [20.0, 30.0, 25.0, 0.5],
        [0.2 * cell + 0.01 * cell, 0.7 * cell + 0.01 * cell, 1.0, -1.0],
        [0.001, 0.002, 2.0, -2.0],
        mass=[0, 0, 0, 0.4976],
    )
    c = apply_detector(p, CFG, rng())
    assert c.counts.tolist() == [2]
    assert sorted(np.round(np.hypot(c.px, c.py) / 5) * 5) == [25.0, 50.0]
    # merged photons sit at the tower centre
    eta = np.arcsinh(c.pz / np.hypot(c.px, c.py))
    merged = np.argmax(c.e)
    assert eta[merged] == pytest.approx(0.5 * cell, abs=1e-9)


def test_k0s_shares_energy_between_ecal_and_hcal() -> None:
    p = make([310], 100.0, 0.1, 0.1, mass=0.4976)
    c = apply_detector(p, CFG, rng())
    assert sorted(c.category.tolist()) == [CAT_NEUTRAL_HADRON, CAT_PHOTON]
    ecal = c.e[c.category == CAT_PHOTON].sum() / c.e.sum()
    assert 0.15 < ecal < 0.45


def test_muons_are_tracked_and_neutrinos_vanish() -> None:
    p = make([13, 12, -14], 40.0, 0.5, [0.0, 1.0, 2.0], mass=[0.1057, 0, 0])
    c = apply_detector(p, CFG, rng())
    assert c.category.tolist() == [CAT_MUON]
    assert c.charge.tolist() == [-1.0]


def test_impact_parameters_of_displaced_tracks() -> None:
    # produced 1 mm from the beam along x, moving along y: |d0| = 1 mm
    p = make([211, 211], 20.0, 0.0, [np.pi / 2, np.pi / 2], vx=[1.0, 0.0], mass=0.1396)
    truth = apply_detector(p, None, rng())
    assert truth.d0.tolist() == pytest.approx([1.0, 0.0])
    c = apply_detector(p, CFG, rng())
    assert c.category.tolist() == [CAT_CHARGED_HADRON] * 2
    sig = np.abs(c.d0) / c.d0err
    assert sig[0] > 20 > 5 > sig[1]


def test_hadron_level_is_exact() -> None:
    p = make(
        [211, 22, 2112, 12],
        [10.0, 5.0, 3.0, 7.0],
        0.3,
        [0.1, 0.2, 0.3, 0.4],
        mass=[0.1396, 0, 0.9396, 0],
    )
    c = apply_detector(p, None, rng())
    assert c.counts.tolist() == [3]
    np.testing.assert_allclose(c.px, p.px[:3])
    np.testing.assert_allclose(c.e, p.e[:3])
    assert c.d0err.tolist() == [0.0] * 3


def test_events_stay_separate() -> None:
    p = make([22, 22, 22], 20.0, 0.0, 0.0, events=[1, 0, 2])
    c = apply_detector(p, CFG, rng())
    # photons of different events in the same cell are not merged
    assert c.counts.tolist() == [1, 0, 1]


def test_detector_is_deterministic_for_a_seed() -> None:
    rs = np.random.default_rng(4)
    p = make(
        rs.choice([211, 22, 130, 11], 500),
        rs.uniform(0.2, 50, 500),
        rs.uniform(-3, 3, 500),
        rs.uniform(-3, 3, 500),
        events=[200, 300],
    )
    a = apply_detector(p, CFG, np.random.default_rng(9))
    b = apply_detector(p, CFG, np.random.default_rng(9))
    np.testing.assert_array_equal(a.px, b.px)
    np.testing.assert_array_equal(a.e, b.e)


# ------------------------------------------------------------------ calorimeter cells


def _deposits(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    event = np.sort(rng.integers(0, 6, n))
    part = rng.integers(0, 3, n)
    size = np.array([0.0174, 0.087, 0.175])[part]
    eta = rng.uniform(-5.0, 5.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    phi[:4] = [np.pi - 1e-9, -np.pi + 1e-9, 0.0, -np.pi]  # the seam and a cell edge
    return event, part, size, eta, phi, rng.exponential(3.0, n)


def test_cells_hold_their_deposits_and_sit_on_the_grid() -> None:
    event, part, size, eta, phi, e = _deposits(3000, 3)
    cells = bin_cells(event, part, 3, size, eta, phi)
    own = cells.inverse
    nphi = np.round(2 * np.pi / size)
    # every deposit lies inside its cell: within half a cell of the centre in eta and phi
    assert np.all(np.abs(eta - cells.eta[own]) <= size / 2 + 1e-12)
    dphi = np.mod(phi - cells.phi[own] + np.pi, 2 * np.pi) - np.pi
    assert np.all(np.abs(dphi) <= np.pi / nphi + 1e-12)
    # centres on the grid: half-integer multiples of the cell size in eta, of 2 pi / nphi
    # from -pi in phi
    c_size, c_nphi = size[cells.first], nphi[cells.first]
    k_eta = cells.eta / c_size - 0.5
    k_phi = np.mod(cells.phi + np.pi, 2 * np.pi) / (2 * np.pi) * c_nphi - 0.5
    assert np.allclose(k_eta, np.round(k_eta), atol=1e-9)
    assert np.allclose(k_phi, np.round(k_phi), atol=1e-9)
    # one cell per occupied (event, part, eta bin, phi bin); the energy is conserved
    bins = {
        (a, b, c, d)
        for a, b, c, d in zip(
            event, part, np.round(k_eta[own]), np.round(k_phi[own]) % nphi, strict=True
        )
    }
    assert len(bins) == cells.first.size
    assert np.all(event[cells.first][own] == event)
    assert np.all(part[cells.first][own] == part)
    assert np.isclose(cells.sum(e).sum(), e.sum())
    assert np.all(np.diff(event[cells.first]) >= 0)  # ordered by event
    assert cells.inverse[0] != cells.inverse[1]  # either side of the phi seam


def test_detector_and_element_towers_share_the_grid() -> None:
    """HCAL deposits (|eta| < 3) make towers at the same centres in the candidate
    detector and in the MLPF elements: the one cell binning."""
    from heptagon.generate import detector, elements

    cfg = DetectorConfig()
    rng = np.random.default_rng(5)
    n = 400
    event = np.sort(rng.integers(0, 4, n))
    layer = np.full(n, detector.HCAL)
    e = rng.uniform(50.0, 100.0, n)  # far above the thresholds: every tower survives
    eta, phi = rng.uniform(-2.8, 2.8, n), rng.uniform(-np.pi, np.pi, n)
    size = np.full(n, cfg.hcal_cell)
    deposits = detector.Deposits(event, layer, e, np.zeros(n), eta, phi, size)
    cands = detector.towers(cfg, deposits, 4, np.random.default_rng(1))
    cols, tw_event, index = elements._towers(cfg, event, layer, e, eta, phi, rng)
    pt = np.hypot(cands.px, cands.py)
    got = np.stack([np.arcsinh(cands.pz / pt), np.arctan2(cands.py, cands.px)])
    want = np.stack([cols["eta"], cols["phi"]])
    assert got.shape == want.shape
    assert np.allclose(got, want, atol=1e-9)
    assert np.array_equal(np.bincount(tw_event, minlength=4), cands.counts)
    assert np.all(index >= 0)
