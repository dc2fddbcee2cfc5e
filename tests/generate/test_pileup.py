"""Pile-up: overlay, vertex association, CHS, PUPPI, rho and the `generate --pileup` path."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import fastjet
import numpy as np
import pytest
from typer.testing import CliRunner

from heptagon import configs
from heptagon.cli import app
from heptagon.config import validate
from heptagon.data.loader import JetDataset
from heptagon.data.preprocess import Preprocess
from heptagon.errors import ConfigError
from heptagon.generate.detector import (
    FORWARD,
    BinnedDeposits,
    Candidates,
    Deposits,
    DetectorConfig,
    Particles,
    apply_detector,
    bin_cells,
    detector_response,
    merge_candidates,
    tower_layout,
    towers,
)
from heptagon.generate.jets import RHO_GRID_SPACING, RHO_RAP_MAX, event_rho
from heptagon.generate.pileup import (
    BEAMSPOT_SIGMA_Z_MM,
    concat_particles,
    detector_library,
    overlay_pileup,
    process_settings,
    pythia_final_state,
    reconstruct,
)
from heptagon.generate.run import GenerateOptions
from heptagon.physics.puppi import (
    FROM_PV_NONE,
    FROM_PV_TIGHT,
    FROM_PV_USED_IN_FIT,
    MitigationConfig,
    chs_mask,
    puppi_alpha,
    puppi_weights,
    vertex_association,
)
from heptagon.train import load_experiment

CFG = MitigationConfig()


def _events(n_events: int, per_event: int, rng: np.random.Generator, pid: int = 211) -> Particles:
    """``per_event`` particles of id ``pid`` per event from the origin, pT 0.5-5 GeV,
    |eta| < 2.4."""
    n = n_events * per_event
    pt = rng.uniform(0.5, 5.0, n)
    eta = rng.uniform(-2.4, 2.4, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    pz = pt * np.sinh(eta)
    m = 0.13957 if pid == 211 else 0.0
    zeros = np.zeros(n)
    return Particles(
        counts=np.full(n_events, per_event),
        px=pt * np.cos(phi),
        py=pt * np.sin(phi),
        pz=pz,
        e=np.sqrt(pt**2 + pz**2 + m**2),
        pid=np.full(n, pid),
        vx=zeros,
        vy=zeros.copy(),
        vz=zeros.copy(),
    )


# --- overlay ------------------------------------------------------------------------


def test_overlay_counts_positions_and_reproducibility() -> None:
    rng = np.random.default_rng(1)
    hard, library = _events(3000, 2, rng), _events(40, 7, rng)
    a = overlay_pileup(hard, library, 20.0, BEAMSPOT_SIGMA_Z_MM, np.random.default_rng(5))
    n_pu = a.n_vertices - 1
    # the Poisson mean and variance are recovered over many events
    assert abs(n_pu.mean() - 20.0) < 4 * np.sqrt(20.0 / n_pu.size)
    assert n_pu.var() == pytest.approx(20.0, rel=0.1)
    assert np.array_equal(a.particles.counts, hard.counts + 7 * n_pu)  # whole library events
    # the hard event is untouched and first-vertex; each pile-up particle sits at its vertex
    assert np.array_equal(a.particles.px[~a.pileup], hard.px)
    starts = np.cumsum(a.n_vertices) - a.n_vertices
    assert np.all(a.vertex_z[starts] == 0.0)
    z_of = a.vertex_z[starts[a.particles.event] + a.vertex]
    assert np.allclose(a.particles.vz, z_of)
    # pile-up vertices relative to the hard one: sqrt(2) sigma_z of the luminous region
    pu_z = np.delete(a.vertex_z, starts)
    assert pu_z.std() == pytest.approx(np.sqrt(2) * BEAMSPOT_SIGMA_Z_MM, rel=0.03)
    b = overlay_pileup(hard, library, 20.0, BEAMSPOT_SIGMA_Z_MM, np.random.default_rng(5))
    assert np.array_equal(a.particles.px, b.particles.px)
    assert np.array_equal(a.vertex_z, b.vertex_z)


# --- vertex association and CHS -------------------------------------------------------


def test_vertex_association_follows_the_nearest_vertex() -> None:
    # one event, vertices at 0 (PV), 10 and -0.5 mm; tracks with sigma(dz) = 0.05 mm
    dz = np.array([0.01, -0.3, 9.98, -0.45, 4.0, 6.0, 0.0])
    charge = np.array([1, 1, -1, 1, 1, -1, 0])
    fpv = vertex_association(
        np.array([7]),
        charge,
        dz,
        np.full(7, 0.05),
        np.array([3]),
        np.array([0.0, 10.0, -0.5]),
        CFG.assoc_n_sigma,
    )
    assert fpv.tolist() == [
        FROM_PV_USED_IN_FIT,  # compatible with the PV
        FROM_PV_NONE,  # nearer the -0.5 mm vertex
        FROM_PV_NONE,  # at the 10 mm vertex
        FROM_PV_NONE,
        FROM_PV_TIGHT,  # nearest the PV, compatible with none: displaced
        FROM_PV_NONE,  # nearer 10 mm
        FROM_PV_USED_IN_FIT,  # neutral
    ]
    # vertices of one event never capture another event's tracks
    two = vertex_association(
        np.array([1, 1]),
        np.array([1, 1]),
        np.array([30.0, 0.0]),
        np.full(2, 0.05),
        np.array([1, 2]),
        np.array([0.0, 0.0, 30.0]),
        3.0,
    )
    assert two.tolist() == [FROM_PV_TIGHT, FROM_PV_USED_IN_FIT]


@pytest.fixture(scope="module")
def reco() -> dict[str, object]:
    """Toy hard events (charged pions) with mu = 30 toy pile-up, reconstructed three ways
    from the same generator state."""
    rng = np.random.default_rng(2)
    hard, library = _events(20, 30, rng), _events(50, 12, rng)
    library = concat_particles([library, _events(50, 6, rng, pid=22)])
    det = DetectorConfig()
    lib = detector_library(library, det, np.random.default_rng(8))
    return {
        m: reconstruct(hard, lib, 30.0, m, det, np.random.default_rng(9))
        for m in ("none", "chs", "puppi")
    }


def test_chs_removes_exactly_the_charged_candidates_of_other_vertices(reco: dict) -> None:
    full, chs = reco["none"], reco["chs"]
    c, fpv = full.candidates, full.columns["fromPV"]
    keep = (c.charge == 0) | (fpv != FROM_PV_NONE)
    assert np.array_equal(keep, chs_mask(c.charge, fpv))
    assert np.array_equal(chs.candidates.px, c.px[keep])
    event = np.repeat(np.arange(len(c.counts)), c.counts)
    assert np.array_equal(chs.candidates.counts, np.bincount(event[keep], minlength=len(c.counts)))
    # the dz resolution tells pile-up tracks apart: association agrees with the truth
    charged = c.charge != 0
    pu = full.columns["vertex"] == 1
    assert np.mean(fpv[charged & pu] == FROM_PV_NONE) > 0.95
    # (soft hard-scatter tracks near a pile-up vertex within their sigma(dz) are lost to it)
    assert np.mean(fpv[charged & ~pu] >= FROM_PV_TIGHT) > 0.95
    assert np.all(fpv[~charged] == FROM_PV_USED_IN_FIT)
    # rho comes from all candidates, whatever the jets are made of
    assert np.array_equal(full.unmitigated.px, chs.unmitigated.px)


def test_puppi_candidates_are_weighted_and_zeros_dropped(reco: dict) -> None:
    full, puppi = reco["none"], reco["puppi"]
    w = full.columns["puppiw"]
    assert np.all((w >= 0) & (w <= 1))
    keep = w > 0
    assert np.array_equal(puppi.columns["puppiw"], w[keep])
    assert np.allclose(puppi.candidates.e, full.candidates.e[keep] * w[keep])
    charged = full.candidates.charge != 0
    assert set(np.unique(w[charged])) <= {0.0, 1.0}


# --- PUPPI on a toy event with a known answer -----------------------------------------


def _toy() -> dict[str, np.ndarray]:
    """One event: a hard-scatter jet of charged particles at (0, 0) with a neutral inside,
    soft PV and pile-up charged particles spread over the tracker, and isolated pile-up
    neutrals far from every PV charged particle."""
    rng = np.random.default_rng(3)
    pt, eta, phi, charge, fpv, label = [], [], [], [], [], []

    def add(p: np.ndarray, e: np.ndarray, f: np.ndarray, q: int, v: int, what: str) -> None:
        pt.append(p)
        eta.append(e)
        phi.append(f)
        charge.append(np.full(p.size, q))
        fpv.append(np.full(p.size, v))
        label.append(np.full(p.size, what))

    add(rng.uniform(10, 40, 10), rng.normal(0, 0.05, 10), rng.normal(0, 0.05, 10), 1, 3, "jet")
    add(np.array([15.0]), np.array([0.03]), np.array([-0.02]), 0, 3, "hs_neutral")
    # soft PV and pile-up charged particles in the half-plane phi < 0, away from the jet
    add(rng.uniform(0.5, 2, 30), rng.uniform(-2, 2, 30), rng.uniform(-3, -1, 30), 1, 3, "ue")
    add(rng.uniform(0.5, 2, 300), rng.uniform(-2, 2, 300), rng.uniform(-3, -1, 300), -1, 0, "pu")
    # pile-up neutrals at phi ~ 2, more than R0 from any PV charged particle
    add(rng.uniform(1, 3, 20), rng.uniform(-2, 2, 20), rng.uniform(1.5, 2.5, 20), 0, 3, "pu_n")
    cat = {k: np.concatenate(v) for k, v in (("pt", pt), ("eta", eta), ("phi", phi))}
    out = {
        "px": cat["pt"] * np.cos(cat["phi"]),
        "py": cat["pt"] * np.sin(cat["phi"]),
        "pz": cat["pt"] * np.sinh(cat["eta"]),
        "charge": np.concatenate(charge),
        "fromPV": np.concatenate(fpv),
        "label": np.concatenate(label),
    }
    return out


def test_puppi_weights_on_a_toy_event() -> None:
    t = _toy()
    n = t["px"].size
    w = puppi_weights(
        np.array([n]),
        t["px"],
        t["py"],
        t["pz"],
        t["charge"],
        t["fromPV"],
        np.zeros(n),
        np.array([40]),
        CFG,
    )
    lab = t["label"]
    assert w[lab == "hs_neutral"][0] > 0.99  # a hard neutral inside the jet is kept
    assert np.all(w[lab == "pu_n"] == 0.0)  # isolated pile-up neutrals are removed
    assert np.all(w[np.isin(lab, ("jet", "ue"))] == 1.0)  # charged from the PV
    assert np.all(w[lab == "pu"] == 0.0)  # charged from pile-up


def test_puppi_alpha_by_hand() -> None:
    # central particle 0 with two charged PV neighbours at dR 0.1 and 0.2 and a pile-up
    # one at dR 0.05 (not counted centrally) and one beyond R0
    pt = np.array([1.0, 2.0, 3.0, 5.0, 7.0])
    eta = np.array([0.0, 0.1, 0.0, 0.05, 0.5])
    phi = np.array([0.0, 0.0, 0.2, 0.0, 0.0])
    pv = np.array([False, True, True, False, True])
    alpha = puppi_alpha(np.array([5]), pt, eta, phi, pv, CFG)
    assert alpha[0] == pytest.approx(np.log((2 / 0.1) ** 2 + (3 / 0.2) ** 2))
    # forward: every particle counts; across phi = pi as well
    fwd = puppi_alpha(
        np.array([2]),
        np.array([1.0, 4.0]),
        np.array([3.0, 3.0]),
        np.array([np.pi - 0.05, -np.pi + 0.05]),
        np.array([False, False]),
        CFG,
    )
    assert fwd[0] == pytest.approx(np.log((4 / 0.1) ** 2), rel=1e-6)


def test_puppi_without_pileup_keeps_neutrals_near_pv_charged() -> None:
    t = _toy()
    sel = np.isin(t["label"], ("jet", "hs_neutral", "ue"))
    n = int(sel.sum())
    w = puppi_weights(
        np.array([n]),
        *(t[k][sel] for k in ("px", "py", "pz", "charge", "fromPV")),
        np.zeros(n),
        np.array([1]),
        CFG,
    )
    assert w[t["label"][sel] == "hs_neutral"][0] == 1.0


# --- rho ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minbias() -> Particles:
    return concat_particles(pythia_final_state(process_settings("minbias", 11), 100))


def _first(p: Particles, n_events: int) -> Particles:
    n = int(p.counts[:n_events].sum())
    fields = ("px", "py", "pz", "e", "pid", "vx", "vy", "vz")
    return Particles(counts=p.counts[:n_events], **{k: getattr(p, k)[:n] for k in fields})


def test_rho_grows_linearly_with_pileup(minbias: Particles) -> None:
    det = DetectorConfig()
    # twelve minimum-bias events play the hard events: rho(0) is their underlying event
    hard = _first(minbias, 12)
    lib = detector_library(minbias, det, np.random.default_rng(3))
    rho = {}
    for mu in (0.0, 20.0, 40.0):
        pu = reconstruct(hard, lib, mu, "none", det, np.random.default_rng(4))
        rho[mu] = event_rho(pu.unmitigated, np.arange(12)).mean()
    assert rho[0.0] < 0.2 * rho[20.0]
    slope = (rho[40.0] - rho[0.0]) / 40
    assert rho[20.0] == pytest.approx(rho[0.0] + 20 * slope, rel=0.2)
    assert 0.2 < slope < 2.0  # GeV per unit area per interaction


def test_rho_is_fastjets_grid_median(minbias: Particles) -> None:
    """event_rho, vectorised, equals FastJet's GridMedianBackgroundEstimator event by
    event (CMS's fixedGridRhoFastjetAll settings), for the events asked for."""
    det = DetectorConfig()
    lib = detector_library(minbias, det, np.random.default_rng(3))
    pu = reconstruct(_first(minbias, 6), lib, 20.0, "none", det, np.random.default_rng(4))
    c = pu.unmitigated
    events = np.array([4, 1, 5])
    rho = event_rho(c, events)
    start = np.cumsum(c.counts) - c.counts
    for ev, value in zip(events.tolist(), rho.tolist(), strict=True):
        sl = slice(int(start[ev]), int(start[ev] + c.counts[ev]))
        columns = (c.px[sl].tolist(), c.py[sl].tolist(), c.pz[sl].tolist(), c.e[sl].tolist())
        particles = [fastjet.PseudoJet(*p) for p in zip(*columns, strict=True)]
        grid = fastjet.GridMedianBackgroundEstimator(RHO_RAP_MAX, RHO_GRID_SPACING)
        grid.set_particles(particles)
        assert value == pytest.approx(grid.rho(), rel=1e-9)
        assert value > 5.0  # 20 interactions: a few GeV per unit area
    assert np.array_equal(event_rho(c, np.zeros(0, np.int64)), np.zeros(0))


# --- detector-level overlay -------------------------------------------------------------


def test_cell_sums_make_the_same_towers(minbias: Particles) -> None:
    """Summing deposits per cell first (what the library keeps) gives the same towers."""
    det = DetectorConfig()
    pu = np.random.default_rng(1).random(minbias.pid.size) < 0.5
    _, deposits = detector_response(minbias, det, np.random.default_rng(2), pu)
    n = len(minbias.counts)
    raw = towers(det, deposits, n, np.random.default_rng(5))
    summed = towers(det, deposits.cell_sums(), n, np.random.default_rng(5))
    assert deposits.cell_sums().e.size < deposits.e.size
    assert np.array_equal(raw.counts, summed.counts)
    for k in ("px", "py", "pz", "e"):
        assert np.allclose(getattr(raw, k), getattr(summed, k), rtol=1e-9, atol=1e-12)
    assert np.array_equal(raw.vertex, summed.vertex)
    assert raw.vertex.any()
    assert not raw.vertex.all()


def test_cells_of_different_sizes_are_never_merged() -> None:
    """An ECAL barrel cell (0.0174) at eta 0.70 and an endcap cell (0.05) at eta 2.02 have
    the same eta and phi indices (40, 5): they stay two cells at their own centres."""
    det = DetectorConfig()
    sizes = np.array([det.ecal_barrel_cell, det.ecal_endcap_cell])
    phi = -np.pi + (5 + 0.5) * 2 * np.pi / np.round(2 * np.pi / sizes)
    cells = bin_cells(np.zeros(2, np.int64), np.zeros(2, np.int64), 3, sizes,
                      np.array([0.70, 2.02]), phi)  # fmt: skip
    assert cells.first.size == 2
    assert np.allclose(np.sort(cells.eta), [40.5 * sizes[0], 40.5 * sizes[1]])


def test_merge_candidates_keeps_events_together() -> None:
    def cands(counts: list[int], start: float) -> Candidates:
        n = sum(counts)
        v = np.arange(n, dtype=float) + start
        fields = dict.fromkeys(("px", "py", "pz", "e", "charge", "category", "d0", "d0err"), v)
        fields |= dict.fromkeys(("dz", "dzerr", "vx", "vy", "vz"), v)
        return Candidates(counts=np.array(counts), vertex=np.zeros(n, np.int8), **fields)

    out = merge_candidates(cands([2, 0, 1], 0.0), cands([1, 2, 0], 10.0))
    assert out.counts.tolist() == [3, 2, 1]
    assert out.px.tolist() == [0.0, 1.0, 10.0, 11.0, 12.0, 2.0]


def _sorted_cells(d: Deposits) -> tuple[np.ndarray, np.ndarray]:
    """The cells of ``d`` as a sort of one integer key per deposit makes them (the
    binning before the cell layout): (cell of each deposit, first deposit of each cell)."""
    nphi = np.round(2 * np.pi / d.size).astype(np.int64)
    ieta = np.floor(d.eta / d.size).astype(np.int64)
    iphi = np.floor((d.phi + np.pi) / (2 * np.pi) * nphi).astype(np.int64) % nphi
    sizes = np.unique(d.size)
    key = ((d.event * 3 + d.layer) * 1_000_003 + (ieta + 500_000)) * 4096 + iphi
    key = key * sizes.size + np.searchsorted(sizes, d.size)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return inverse, first


def _overlaid_deposits(minbias: Particles, n_hard: int, mu: int) -> dict:
    """``n_hard`` minimum-bias events as hard events, each with ``mu`` library events'
    cell sums: the deposits both raw (one array) and as the library's binned cells."""
    det = DetectorConfig()
    lib = detector_library(minbias, det, np.random.default_rng(3))
    _, hard = detector_response(_first(minbias, n_hard), det, np.random.default_rng(4))
    picks = np.random.default_rng(5).integers(0, lib.n_events, (n_hard, mu)).ravel()
    per_event = np.bincount(lib.cells.event, minlength=lib.n_events)
    start = np.cumsum(per_event) - per_event
    take = np.concatenate([np.arange(start[k], start[k] + per_event[k]) for k in picks])
    event = np.repeat(np.arange(n_hard), [per_event[picks[i * mu:(i + 1) * mu]].sum()
                                         for i in range(n_hard)])  # fmt: skip
    cells = lib.cells
    raw = Deposits(
        event=np.concatenate([hard.event, event]),
        layer=np.concatenate([hard.layer, cells.layer[take]]),
        e=np.concatenate([hard.e, cells.e[take]]),
        e_pileup=np.concatenate([hard.e_pileup, cells.e[take]]),
        eta=np.concatenate([hard.eta, cells.eta[take]]),
        phi=np.concatenate([hard.phi, cells.phi[take]]),
        size=np.concatenate([hard.size, cells.size[take]]),
    )
    binned = BinnedDeposits(event, lib.cell_number[take], cells.e[take], cells.e[take])
    return {"det": det, "hard": hard, "raw": raw, "binned": binned}


def test_overlay_towers_are_those_of_the_sorted_cells(minbias: Particles) -> None:
    """The cell layout bins a pile-up event's deposits into the cells, and in the order,
    of a sort of one key per deposit; the library's precomputed cell numbers give the same
    towers, bit for bit, as its cells binned again with the event's own deposits."""
    ev = _overlaid_deposits(minbias, 6, 40)
    raw = ev["raw"]
    inverse, first = _sorted_cells(raw)
    cells = bin_cells(raw.event, raw.layer, 3, raw.size, raw.eta, raw.phi)
    assert np.array_equal(cells.inverse, inverse)
    assert np.array_equal(cells.first, first)
    assert first.size < 0.8 * raw.e.size  # pile-up cells overlap
    direct = towers(ev["det"], raw, 6, np.random.default_rng(8))
    overlaid = towers(ev["det"], ev["hard"], 6, np.random.default_rng(8), ev["binned"])
    for f in ("counts", "px", "py", "pz", "e", "category", "vertex"):
        assert np.array_equal(getattr(overlaid, f), getattr(direct, f)), f
    assert overlaid.vertex.any()
    assert not overlaid.vertex.all()


def test_tower_layout_refuses_a_deposit_off_its_grid() -> None:
    layout = tower_layout(DetectorConfig())
    one = np.ones(1)
    assert layout.index(np.array([FORWARD]), one * 0.175, one * 4.0, one * 0.0).size == 1
    with pytest.raises(ValueError, match="outside the calorimeter cell layout"):
        layout.index(np.array([FORWARD]), one * 0.175, one * 5.5, one * 0.0)  # |eta| > 5
    with pytest.raises(ValueError, match="outside the calorimeter cell layout"):
        layout.index(np.array([FORWARD]), one * 0.1, one * 4.0, one * 0.0)  # not its size


def test_puppi_alpha_equals_the_sum_over_every_pair() -> None:
    """The cone sums' cell search finds every pair within R0: alpha equals the sum over
    all pairs, for central and forward candidates, across phi = pi, in several events."""
    g = np.random.default_rng(12)
    counts = np.array([300, 0, 1, 250])
    n = int(counts.sum())
    pt = g.exponential(2.0, n)
    eta = g.uniform(-4.0, 4.0, n)
    phi = g.uniform(-np.pi, np.pi, n)
    phi[:20] = np.pi - g.uniform(0, 0.2, 20)  # crowd the seam
    phi[20:40] = -np.pi + g.uniform(0, 0.2, 20)
    eta[:40] = g.uniform(-0.3, 0.3, 40)
    pv = g.random(n) < 0.3
    alpha = puppi_alpha(counts, pt, eta, phi, pv, CFG)
    event = np.repeat(np.arange(counts.size), counts)
    deta = eta[:, None] - eta[None, :]
    dphi = np.angle(np.exp(1j * (phi[:, None] - phi[None, :])))
    dr = np.hypot(deta, dphi)
    central = np.abs(eta) < CFG.eta_central
    source = np.where(central[:, None], pv[None, :], np.abs(eta)[None, :] >= 2.1)
    pair = source & (event[:, None] == event[None, :]) & (dr > CFG.r_min) & (dr < CFG.r0)
    total = np.where(pair, (pt[None, :] / np.where(pair, dr, 1.0)) ** 2, 0.0).sum(axis=1)
    has = total > 0
    assert has.sum() > 300
    assert (~has).sum() > 20
    assert np.array_equal(np.isfinite(alpha), has)
    assert np.allclose(alpha[has], np.log(total[has]), rtol=1e-12, atol=0)


def test_detector_level_overlay_moves_pileup_tracks_to_their_vertex(minbias: Particles) -> None:
    det = DetectorConfig()
    lib = detector_library(minbias, det, np.random.default_rng(3))
    hard = _first(minbias, 20)
    pu = reconstruct(hard, lib, 10.0, "none", det, np.random.default_rng(4))
    c = pu.unmitigated
    alone = apply_detector(hard, det, np.random.default_rng(0))
    pu_tracks = (c.vertex == 1) & (c.charge != 0)
    # pile-up tracks sit at their vertex: |dz| spread like the vertices', hard ones at 0
    assert np.std(c.dz[pu_tracks]) > 20.0
    hard_tracks = (c.vertex == 0) & (c.charge != 0)
    assert np.median(np.abs(c.dz[hard_tracks])) < 1.0
    # about 10 library events' tracks per event on top of the hard event's
    per_event = np.bincount(np.repeat(np.arange(20), c.counts)[pu_tracks], minlength=20)
    lib_tracks = lib.tracks.counts.mean()
    assert per_event.mean() == pytest.approx(10 * lib_tracks, rel=0.35)
    assert hard_tracks.sum() == pytest.approx((alone.charge != 0).sum(), rel=0.1)


# --- options and the CLI --------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"pileup": -1.0}, "pileup"),
        ({"pileup": 20.0, "mitigation": "softkiller"}, "mitigation"),
        ({"mitigation": "puppi"}, "mitigation"),
        ({"pileup": 20.0, "detector": "none"}, "pileup"),
    ],
)
def test_bad_pileup_options(tmp_path: Path, extra: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(
            GenerateOptions,
            {"sample": "top-vs-qcd", "jets": 10, "seed": 1, "out": tmp_path} | extra,
        )
    assert err.value.key == key


def test_pileup_zero_with_mitigation_is_a_baseline(tmp_path: Path) -> None:
    opts = GenerateOptions(
        sample="top-vs-qcd", jets=10, seed=1, out=tmp_path, pileup=0.0, mitigation="chs"
    )
    assert opts.pileup == 0.0


def test_cli_generate_with_pileup_and_puppi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from heptagon.generate import run as generate_run

    retained = []  # pile-up shards keep freed memory for reuse (docs/pileup.md, "Cost")
    monkeypatch.setattr(generate_run, "retain_freed_memory", lambda: retained.append(1))

    def run(out: Path) -> None:
        res = CliRunner().invoke(
            app,
            [
                "generate", "top-vs-qcd", "--jets", "20", "--seed", "3", "--out", str(out),
                "--pileup", "20", "--mitigation", "puppi", "--pileup-library", "100",
            ],
        )  # fmt: skip
        assert res.exit_code == 0, res.output

    run(tmp_path / "a")
    assert retained  # the pile-up shards asked for it
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["pileup"]["mu"] == 20
    assert manifest["pileup"]["mitigation"] == "puppi"
    assert manifest["pileup"]["library"]["events"] == 100
    assert manifest["pileup"]["jet_focus"]["forward_reference_max"] == 300
    for f in manifest["files"]:
        arr = ak.from_parquet(tmp_path / "a" / f["file"])
        for branch in ("part_vertex", "part_fromPV", "part_puppiw"):
            values = ak.to_numpy(ak.flatten(arr[branch]))
            assert np.all(np.isfinite(values)), branch
        w = ak.to_numpy(ak.flatten(arr["part_puppiw"]))
        assert np.all((w > 0) & (w <= 1))  # PUPPI jets hold no weight-0 candidate
        for branch in ("jet_rho", "jet_area", "jet_pt_corr"):
            assert np.all(np.isfinite(ak.to_numpy(arr[branch]))), branch
        # R = 0.8 jets: active area about pi R^2
        assert np.median(ak.to_numpy(arr["jet_area"])) == pytest.approx(np.pi * 0.64, rel=0.1)
        assert np.allclose(
            arr["jet_pt_corr"], arr["jet_pt"] - arr["jet_rho"] * arr["jet_area"], rtol=1e-5
        )
    # the shipped experiment feeds the pile-up branches to a tagger, as CMS taggers take them
    cfg = load_experiment(Path(configs.__file__).parent / "pileup_top_particlenet_lite.yaml").data
    data = JetDataset(tmp_path / "a", cfg, Preprocess.from_config(cfg), split=None, batch_size=8)
    batch = next(iter(data))
    features = batch.inputs["pf_features"]
    assert features.shape[1] == 9
    assert bool(features.isfinite().all())
    real = batch.inputs["pf_vectors"][:, 3] > 0  # padding has no energy
    puppiw, from_pv = features[:, 7][real], features[:, 8][real]
    assert bool(((puppiw > 0) & (puppiw <= 1)).all())  # as written (no scaling)
    assert float(puppiw.min()) < 0.99  # PUPPI weights below 1: the neutrals'
    # fromPV standardised as (fromPV - 2) * 0.5: 0 -> -1, 2 -> 0, 3 -> 0.5
    assert set(np.round(from_pv.numpy(), 4).tolist()) <= {-1.0, 0.0, 0.5}
    # the same seed makes the same files (overlay, ghosts and all)
    run(tmp_path / "b")
    again = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [f["sha256"] for f in again["files"]] == [f["sha256"] for f in manifest["files"]]
