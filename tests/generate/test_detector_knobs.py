"""The detector's calibration knobs: nominal reproduces the detector from before they
existed, and each knob moves what it should (and nothing else)."""

from __future__ import annotations

import numpy as np
import pytest

from heptagon.generate.detector import Candidates, DetectorConfig, Particles, apply_detector
from heptagon.physics.pdg import CAT_CHARGED_HADRON, CAT_PHOTON


def mixed_particles() -> Particles:
    """20 events of mixed particle types over |eta| < 4.5, a fifth of them displaced."""
    r = np.random.default_rng(2026)
    counts = r.integers(50, 150, 20)
    n = int(counts.sum())
    pid = r.choice([211, -211, 22, 22, 130, 2112, 11, -13, 310, 321, 12, 3122], n)
    pt = r.exponential(8.0, n) + 0.2
    eta, phi = r.uniform(-4.5, 4.5, n), r.uniform(-np.pi, np.pi, n)
    m = np.where(np.abs(pid) == 22, 0.0, 0.14)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    v = r.normal(0, 0.5, (3, n)) * (r.random(n) < 0.2)
    e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    return Particles(counts=counts, px=px, py=py, pz=pz, e=e, pid=pid, vx=v[0], vy=v[1], vz=v[2])


def test_nominal_knobs_reproduce_the_detector_from_before_them() -> None:
    """The figures of the detector as it was before the knobs (commit d762f5b) on the same
    particles and seed: the knobs at 1 change no number and no random draw."""
    c = apply_detector(mixed_particles(), DetectorConfig(), np.random.default_rng(99))
    assert int(c.counts.sum()) == 1882
    before = {
        "px": 8941.34811338, "py": 8937.38636699, "pz": 123776.802392, "e": 127110.395691,
        "d0": 46.6813389897, "dz": 85.1961525206, "vx": 39.1513922633, "vz": 58.5393003195,
    }  # fmt: skip
    for key, value in before.items():
        assert np.sum(np.abs(getattr(c, key))) == pytest.approx(value, rel=1e-10), key


def one_jet(pid: int, n_jets: int = 400, n: int = 6) -> Particles:
    """``n_jets`` events with one central jet of ``n`` particles of type ``pid``
    (10-40 GeV each, within dR ~0.1)."""
    r = np.random.default_rng(5)
    total = n_jets * n
    pt = r.uniform(10, 40, total)
    eta = np.repeat(r.uniform(-1.0, 1.0, n_jets), n) + r.normal(0, 0.05, total)
    phi = np.repeat(r.uniform(-np.pi, np.pi, n_jets), n) + r.normal(0, 0.05, total)
    m = 0.0 if pid == 22 else 0.1396
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    zeros = np.zeros(total)
    return Particles(
        counts=np.full(n_jets, n), px=px, py=py, pz=pz, e=np.sqrt(px**2 + py**2 + pz**2 + m**2),
        pid=np.full(total, pid), vx=zeros, vy=zeros, vz=zeros,
    )  # fmt: skip


def event_pt(c: Candidates) -> np.ndarray:
    """The scalar pT sum of each event's candidates (its one jet's pT)."""
    event = np.repeat(np.arange(len(c.counts)), c.counts)
    return np.bincount(event, weights=np.hypot(c.px, c.py), minlength=len(c.counts))


def reco(p: Particles, **knobs: float) -> Candidates:
    return apply_detector(p, DetectorConfig(**knobs), np.random.default_rng(3))


def test_ecal_scale_moves_photon_jets_not_charged_ones() -> None:
    photons, pions = one_jet(22), one_jet(211)
    ratio_photons = event_pt(reco(photons, jes_ecal=1.05)).sum() / event_pt(reco(photons)).sum()
    assert ratio_photons == pytest.approx(1.05, abs=0.003)
    # tracked pions (and the untracked ones, in the HCAL) do not see the ECAL scale
    np.testing.assert_array_equal(event_pt(reco(pions, jes_ecal=1.05)), event_pt(reco(pions)))


def test_hcal_and_track_scales_move_their_own_component() -> None:
    pions = one_jet(211)
    nominal, hcal, track = reco(pions), reco(pions, jes_hcal=0.9), reco(pions, jes_track=1.02)
    charged = nominal.charge != 0
    # the same tracks (same draws), each momentum times the scale
    np.testing.assert_allclose(np.hypot(track.px, track.py)[charged],
                               1.02 * np.hypot(nominal.px, nominal.py)[charged])  # fmt: skip
    np.testing.assert_array_equal(np.hypot(hcal.px, hcal.py)[hcal.charge != 0],
                                  np.hypot(nominal.px, nominal.py)[charged])  # fmt: skip
    assert hcal.e[hcal.charge == 0].sum() < 0.92 * nominal.e[~charged].sum()


def test_resolution_knob_widens_the_photon_response() -> None:
    photons = one_jet(22, n=1, n_jets=4000)
    true_e = photons.e

    def spread(**knobs: float) -> float:
        c = reco(photons, **knobs)
        assert np.all(c.counts == 1)
        assert np.all(c.category == CAT_PHOTON)
        return float(np.std(c.e / true_e))

    assert spread(jer_ecal=1.5) == pytest.approx(1.5 * spread(), rel=0.05)
    assert spread(jer_hcal=1.5) == spread()


def test_tracking_efficiency_down_drops_tracks() -> None:
    pions = one_jet(211, n_jets=2000)
    n_nominal = int(np.sum(reco(pions).category == CAT_CHARGED_HADRON))
    n_down = int(np.sum(reco(pions, track_eff_scale=0.9).category == CAT_CHARGED_HADRON))
    assert n_nominal / pions.pid.size == pytest.approx(0.95, abs=0.01)
    assert n_down / n_nominal == pytest.approx(0.9, abs=0.01)
    # capped at 1
    assert int(np.sum(reco(pions, track_eff_scale=2.0).charge != 0)) == pions.pid.size


def test_ip_resolution_up_widens_the_impact_parameters() -> None:
    pions = one_jet(211, n_jets=2000)  # prompt: d0 is pure resolution
    nominal, wide = reco(pions), reco(pions, ip_res_scale=1.3)
    tracks = nominal.charge != 0
    pull = np.std(nominal.d0[tracks] / nominal.d0err[tracks])
    wide_pull = np.std(wide.d0[wide.charge != 0] / wide.d0err[wide.charge != 0])
    assert pull == pytest.approx(1.0, abs=0.03)
    assert wide_pull == pytest.approx(1.3, abs=0.04)
    # the quoted errors stay the nominal ones: the reconstruction does not know
    np.testing.assert_array_equal(wide.d0err[wide.charge != 0], nominal.d0err[tracks])
