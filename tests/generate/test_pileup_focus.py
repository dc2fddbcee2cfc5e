"""Jet samples with pile-up reconstruct only what can give a selected jet
(:func:`heptagon.generate.pileup.jet_focus`): the events whose hard scatter has a jet
near the window, PUPPI weights within reach of those jets, the forward median from a
subsample. The jets selected must be those of the full reconstruction."""

from __future__ import annotations

import numpy as np
import pytest

from heptagon.generate import pileup
from heptagon.generate.detector import DetectorConfig, Particles
from heptagon.generate.jets import JetSelection, build_jets
from heptagon.generate.pileup import (
    JetFocus,
    concat_particles,
    detector_library,
    jet_focus,
    preselection_floor,
    process_settings,
    pythia_final_state,
    reconstruct,
)
from heptagon.generate.processes import get_process
from heptagon.generate.run import pythia_settings
from heptagon.physics.puppi import MitigationConfig, forward_subsample, puppi_weights

SEL = JetSelection(radius=0.8, pt_min=300.0, pt_max=1000.0, eta_max=2.0)
MU = 60.0


@pytest.fixture(scope="module")
def events() -> dict[str, object]:
    """30 QCD events (pTHat > 240 GeV) and a detector-level library of 60 minimum-bias
    events."""
    settings = tuple(pythia_settings(get_process("QCD"), SEL.pt_min, False, 21))
    hard = concat_particles(pythia_final_state(settings, 30))
    det = DetectorConfig()
    minbias = concat_particles(pythia_final_state(process_settings("minbias", 22), 60))
    return {"hard": hard, "det": det, "lib": detector_library(minbias, det, rng(1))}


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _seeds(n: int) -> np.ndarray:
    return np.column_stack([np.full(n, 5), np.arange(n)])


def _jets(ev: dict, focus: JetFocus) -> dict:
    pu = reconstruct(ev["hard"], ev["lib"], MU, "puppi", ev["det"], rng(3), focus)
    return build_jets(pu.candidates, SEL, columns=pu.columns, rho_from=pu.unmitigated)


def _everything(n: int) -> JetFocus:
    """Every event active, every candidate in reach."""
    z = np.zeros(n)
    return JetFocus(np.arange(n), z, z, np.inf, _seeds(n))


def test_focus_selects_the_jets_of_the_full_reconstruction(
    events: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    hard: Particles = events["hard"]
    n = len(hard.counts)
    focus = jet_focus(hard, SEL, MU, "puppi", _seeds(n), rng(0))
    assert 0 < focus.active(n).sum() < n  # some events are skipped
    with monkeypatch.context() as m:
        m.setattr(pileup, "FORWARD_REFERENCE_MAX", None)
        full = _jets(events, _everything(n))
    assert full["jet_pt"].size >= 5
    # no selected jet comes from an event the preselection skips
    assert focus.active(n)[full["event"]].all()
    # reach and forward subsample, every event still made (same random numbers as full)
    far = JetFocus(
        np.concatenate([focus.event, np.arange(n)]),
        np.concatenate([focus.eta, np.full(n, 50.0)]),
        np.concatenate([focus.phi, np.zeros(n)]),
        focus.reach,
        focus.seeds,
    )
    focused = _jets(events, far)
    assert np.array_equal(focused["event"], full["event"])
    assert np.allclose(focused["jet_pt"], full["jet_pt"], rtol=1e-6)
    assert np.allclose(focused["jet_sdmass"], full["jet_sdmass"], rtol=1e-5, atol=1e-4)


def test_pileup_of_an_event_does_not_depend_on_the_skipped_ones(events: dict) -> None:
    n = len(events["hard"].counts)
    every = pileup._draw_per_event(_seeds(n), np.ones(n, dtype=bool), 60, MU, 35.0)
    some = np.arange(n) % 3 == 0
    part = pileup._draw_per_event(_seeds(n), some, 60, MU, 35.0)
    assert np.array_equal(part.n_pu[~some], np.zeros((~some).sum()))
    assert np.array_equal(part.n_pu[some], every.n_pu[some])
    owner = np.repeat(np.arange(n), every.n_pu)
    assert np.array_equal(part.picks, every.picks[some[owner]])
    assert np.array_equal(part.dz, every.dz[some[owner]])
    assert every.n_pu.mean() == pytest.approx(MU, rel=0.2)


def test_restricted_weights_equal_the_full_ones_in_reach(events: dict) -> None:
    hard: Particles = events["hard"]
    n = len(hard.counts)
    pu = reconstruct(hard, events["lib"], MU, "none", events["det"], rng(4), _everything(n))
    c, fpv = pu.unmitigated, pu.unmitigated_columns["fromPV"]
    args = (c.counts, c.px, c.py, c.pz, c.charge, fpv, c.dz, pu.n_vertices, MitigationConfig())
    full = puppi_weights(*args)
    targets = np.arange(c.px.size) % 7 == 0
    part = puppi_weights(*args, targets=targets)
    assert np.array_equal(part[targets], full[targets])
    neutral = c.charge == 0
    assert np.all(part[~targets & neutral] == 0.0)
    assert np.array_equal(part[~neutral], full[~neutral])  # charged: vertex weights
    # a forward median from a subsample moves the weights a little, not the picture
    sub = puppi_weights(*args, targets=targets, forward_reference_max=50)
    fwd = targets & neutral & (np.abs(np.arcsinh(c.pz / np.hypot(c.px, c.py))) > 2.5)
    assert fwd.sum() > 50
    assert np.mean(np.abs(sub[fwd] - full[fwd])) < 0.05
    assert not np.array_equal(sub[fwd], full[fwd])


def test_forward_subsample_takes_every_kth() -> None:
    counts = np.array([10, 0, 1000, 3])
    forward = np.ones(counts.sum(), dtype=bool)
    forward[5:10] = False
    mask = forward_subsample(counts, forward, 100)
    per_event = np.bincount(np.repeat(np.arange(4), counts)[mask], minlength=4)
    assert per_event.tolist() == [5, 0, 100, 3]
    assert np.flatnonzero(mask[10:1010]).tolist() == list(range(0, 1000, 10))
    assert not mask[~forward].any()


def test_preselection_floor_covers_the_pileup_offset() -> None:
    top = JetSelection(radius=0.8, pt_min=550.0, pt_max=650.0, eta_max=2.0)
    assert preselection_floor(top, 200.0, "puppi") == pytest.approx(440.0)
    assert preselection_floor(top, 0.0, "none") == pytest.approx(440.0)
    # without PUPPI a jet carries ~ mu * 1.2 GeV * pi R^2 of pile-up: at MU = 200 every
    # hard jet can end up in the window
    assert preselection_floor(top, 200.0, "none") == 0.0
    assert 0.0 < preselection_floor(top, 60.0, "chs") < 440.0 - 60 * 1.2 * np.pi * 0.64


def test_in_reach_is_the_candidates_within_reach_of_a_jet() -> None:
    g = rng(6)
    n_ev, per = 5, 400
    eta, phi = g.uniform(-4, 4, n_ev * per), g.uniform(-np.pi, np.pi, n_ev * per)
    pt = g.uniform(0.5, 10, eta.size)
    zeros = np.zeros(eta.size)
    c = pileup.Candidates(
        np.full(n_ev, per), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta),
        pt * np.cosh(eta), *([zeros] * 10),
    )  # fmt: skip
    # two jets in event 0 (one across phi = pi), none in event 1, one in the others
    ax_event = np.array([0, 0, 2, 3, 4])
    ax_eta, ax_phi = np.array([0.5, -1.9, 2.2, 0.0, -3.0]), np.array([3.0, -3.1, 0.0, 1.0, 2.0])
    focus = JetFocus(ax_event, ax_eta, ax_phi, 1.0, _seeds(n_ev))
    event = np.repeat(np.arange(n_ev), per)
    d = np.hypot(
        eta[:, None] - ax_eta[None, :],
        np.angle(np.exp(1j * (phi[:, None] - ax_phi[None, :]))),
    )
    expected = ((d < 1.0) & (event[:, None] == ax_event[None, :])).any(axis=1)
    got = focus.in_reach(c, np.ones(eta.size, dtype=bool))
    assert np.array_equal(got, expected)
    among = g.random(eta.size) < 0.5  # PUPPI asks for its neutral candidates only
    assert np.array_equal(focus.in_reach(c, among), expected & among)
    assert got[event == 0].sum() > got[event == 2].sum() > 0
    assert not got[event == 1].any()
    assert np.array_equal(focus.active(n_ev), [True, False, True, True, True])


def test_chs_samples_keep_every_puppi_weight(events: dict) -> None:
    """A CHS (or ungroomed) jet can hold any candidate: its ``part_puppiw`` is the full
    weight even away from the hard-scatter jets."""
    hard: Particles = events["hard"]
    focus = jet_focus(hard, SEL, MU, "chs", _seeds(len(hard.counts)), rng(0))
    axis = (focus.event[:1], focus.eta[:1], focus.phi[:1])
    args = (hard, events["lib"], MU, "chs", events["det"])
    narrow = reconstruct(*args, rng(3), JetFocus(*axis, 0.1, focus.seeds))
    full = reconstruct(*args, rng(3), JetFocus(*axis, np.inf, focus.seeds))
    c = full.unmitigated
    narrow, full = narrow.unmitigated_columns["puppiw"], full.unmitigated_columns["puppiw"]
    assert np.array_equal(narrow, full)
    # with PUPPI jets these would be 0: neutrals weighted away from the one jet's 0.1
    pt = np.hypot(c.px, c.py)
    far = (
        np.hypot(
            np.arcsinh(c.pz / pt) - axis[1][0],
            np.angle(np.exp(1j * (np.arctan2(c.py, c.px) - axis[2][0]))),
        )
        > 0.1
    )
    assert ((c.charge == 0) & far & (full > 0)).sum() > 10
