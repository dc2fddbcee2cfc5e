"""Element-level detector response (tracks, towers, per-element targets)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heptagon.generate.detector import DetectorConfig, Particles
from heptagon.generate.elements import (
    CLASSES,
    ElementConfig,
    ElementOptions,
    Elements,
    build_elements,
    generate_elements,
    particle_gun,
)
from heptagon.generate.pileup import overlay_pileup
from heptagon.physics.kinematics import delta_phi

DET, GEO = DetectorConfig(), ElementConfig()


def _gun(pid: int, energy: float, eta: float, n: int, seed: int = 1) -> tuple[Particles, Elements]:
    rng = np.random.default_rng(seed)
    p = particle_gun(np.full(n, pid), np.full(n, energy), np.full(n, eta), rng)
    return p, build_elements(p, DET, GEO, rng)


@pytest.mark.parametrize(("eta", "energy", "expected"), [(0.3, 10.0, 0.95), (2.0, 10.0, 0.85)])
def test_track_efficiency_matches_config(eta: float, energy: float, expected: float) -> None:
    n = 4000
    _, el = _gun(211, energy, eta, n)
    eff = el.n_tracks.mean()
    assert abs(eff - expected) < 4 * np.sqrt(expected * (1 - expected) / n)


@pytest.mark.parametrize(("eta", "energy"), [(0.3, 100.0), (1.0, 20.0), (2.0, 50.0)])
def test_track_resolution_matches_config(eta: float, energy: float) -> None:
    p, el = _gun(211, energy, eta, 3000)
    true_pt = np.hypot(p.px, p.py)[0]
    region = int(np.searchsorted(DET.track_res_eta_edges, eta))
    a, b = DET.track_res_a[region], DET.track_res_b[region]
    expected = np.hypot(a, b * true_pt)
    ratio = el.track["pt"] / true_pt - 1
    assert abs(np.std(ratio) / expected - 1) < 0.1
    assert abs(np.mean(ratio)) < 4 * expected / np.sqrt(ratio.size)


def test_helix_bends_by_charge_to_the_calorimeter_entry() -> None:
    energy, eta = 20.0, 0.3
    pt = energy / np.cosh(eta)
    expected = np.arcsin(GEO.calo_radius_m * 0.299792458 * GEO.bz_tesla / (2 * pt))
    for pid, sign in ((211, -1), (-211, 1)):
        _, el = _gun(pid, energy, eta, 200)
        bend = delta_phi(el.track["phiCalo"], el.track["phi"])
        assert np.median(bend) == pytest.approx(sign * expected, rel=0.02)
    _, el = _gun(211, 0.5, 0.0, 200)  # loops inside the barrel: reaches an endcap
    assert np.all(np.abs(el.track["etaCalo"]) > 0.5)


def test_photon_in_ecal_neutron_in_hcal() -> None:
    for pid, ecal_frac in ((22, 1.0), (2112, 0.0)):
        _, el = _gun(pid, 50.0, 0.5, 300)
        assert el.n_tracks.sum() == 0
        total = el.tower["eEcal"].sum() + el.tower["eHcal"].sum()
        assert el.tower["eEcal"].sum() / total == pytest.approx(ecal_frac, abs=1e-6)
        assert total / 300 == pytest.approx(50.0, rel=0.05)
    _, el = _gun(13, 50.0, 0.5, 300)  # a muon: a track with a muon-system hit, no tower
    assert el.n_towers.sum() == 0
    assert el.track["muonHit"].all()


def test_targets_per_element() -> None:
    _, el = _gun(211, 30.0, 0.0, 400)
    cls = el.target["class"]
    n_el = el.n_tracks + el.n_towers
    assert cls.size == n_el.sum()
    first = np.cumsum(n_el) - n_el
    tracked = el.n_tracks == 1
    # a track's target is its own pion; the tower of a tracked pion has none
    assert np.all(cls[first[tracked]] == CLASSES.index("charged_hadron"))
    towers = first[tracked] + 1
    assert np.all(cls[towers[el.n_towers[tracked] > 0]] == CLASSES.index("none"))
    # an untracked pion's tower is a neutral hadron (a tower cannot see charge)
    lone = first[~tracked & (el.n_towers > 0)]
    assert lone.size > 0
    assert np.all(cls[lone] == CLASSES.index("neutral_hadron"))
    assert np.all(el.target["charge"][lone] == 0)


def _many_neutrals(n_events: int, rng: np.random.Generator) -> Particles:
    """Events of 30 photons and K0L spread over the calorimeter (overlaps happen)."""
    k = 30
    pid = rng.choice([22, 130], n_events * k)
    p = particle_gun(pid, rng.uniform(2.0, 40.0, pid.size), rng.uniform(-2.5, 2.5, pid.size), rng)
    return Particles(
        counts=np.full(n_events, k),
        **{f: getattr(p, f) for f in ("px", "py", "pz", "e", "pid", "vx", "vy", "vz")},
    )


def test_truth_assignment_conserves_energy() -> None:
    rng = np.random.default_rng(3)
    p = _many_neutrals(200, rng)
    el = build_elements(p, DET, GEO, rng)
    n_el = el.n_tracks + el.n_towers
    event = np.repeat(np.arange(200), n_el)
    target_e = np.bincount(event, weights=el.target["energy"], minlength=200)
    true_e = np.bincount(p.event, weights=p.e, minlength=200)
    # every particle is in one tower: targets sum to the generated energy (bar thresholds)
    assert np.all(target_e <= true_e * (1 + 1e-5))
    assert np.median(target_e / true_e) > 0.99
    # and per tower the target energy is what the tower measured, within resolution
    reco = el.tower["eEcal"] + el.tower["eHcal"]
    tw_target = el.target["energy"][el.target["class"] > 0]
    assert np.median(reco / tw_target) == pytest.approx(1.0, abs=0.05)
    event_reco = np.bincount(np.repeat(np.arange(200), el.n_towers), weights=reco, minlength=200)
    # summed over the event the resolution averages out: a few percent
    assert np.std(event_reco / target_e) < 0.1


def test_pileup_overlay_keeps_the_hard_event() -> None:
    rng = np.random.default_rng(4)
    hard = _many_neutrals(20, rng)
    library = _many_neutrals(50, rng)
    overlay = overlay_pileup(hard, library, 3.0, 35.0, rng)
    merged, is_hard = overlay.particles, ~overlay.pileup
    assert merged.pid.size == merged.counts.sum()
    assert np.all((merged.counts - hard.counts) % 30 == 0)  # whole library events
    for field in ("px", "e", "pid"):
        assert np.array_equal(getattr(merged, field)[is_hard], getattr(hard, field))
    n_pu = (merged.counts - hard.counts) // 30
    assert 20 < n_pu.sum() < 110  # Poisson(3) x 20 events
    el = build_elements(merged, DET, GEO, rng, hard=is_hard)
    assert np.array_equal(el.event["nPileup"], merged.counts - hard.counts)


def test_generate_gun_sample_writes_shards(tmp_path: Path) -> None:
    out = tmp_path / "gun"
    summary = generate_elements(
        ElementOptions(sample="gun", events=60, seed=2, out=out, shard_size=30),
        show_progress=False,
    )
    assert len(summary.manifest.to_json()["files"]) == 2
    arr = ak.from_parquet(out / summary.manifest.to_json()["files"][0]["file"])
    assert len(arr) == 30
    n_el = ak.num(arr["Track_pt"]) + ak.num(arr["Tower_eta"])
    assert ak.all(ak.num(arr["GenPart_class"]) == n_el)
    assert summary.manifest.to_json()["detector"]["hcal_cell"] == DET.hcal_cell
