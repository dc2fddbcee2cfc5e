"""The secondary-vertex finder of generate.jets on hand-made tracks (no smearing): the fit
finds the true vertex, drops an incompatible track, and the IVF-like selection vetoes a
K0S and finds nothing among prompt tracks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from heptagon.generate.detector import Candidates
from heptagon.generate.jets import SV_FIELDS, _secondary_vertices

PION = 0.13957
K0S = 0.497611


def candidates(tracks: list[tuple[tuple[float, float, float], tuple[float, float, float]]]):
    """Charged pions produced at the given points (mm) with the given momenta (GeV), their
    impact parameters exact (d0err 10 um, dzerr 20 um)."""
    pos = np.array([t[0] for t in tracks], dtype=np.float64)
    mom = np.array([t[1] for t in tracks], dtype=np.float64)
    pt = np.hypot(mom[:, 0], mom[:, 1])
    n = len(tracks)
    values = {
        "counts": np.array([n]),
        "px": mom[:, 0],
        "py": mom[:, 1],
        "pz": mom[:, 2],
        "e": np.sqrt((mom**2).sum(axis=1) + PION**2),
        "charge": np.ones(n),
        "d0": (pos[:, 0] * mom[:, 1] - pos[:, 1] * mom[:, 0]) / pt,
        "d0err": np.full(n, 0.01),
        "dz": pos[:, 2] - (pos[:, 0] * mom[:, 0] + pos[:, 1] * mom[:, 1]) * mom[:, 2] / pt**2,
        "dzerr": np.full(n, 0.02),
        "vx": pos[:, 0],
        "vy": pos[:, 1],
        "vz": pos[:, 2],
    }
    fields = {f.name: values.get(f.name, np.zeros(n)) for f in dataclasses.fields(Candidates)}
    return Candidates(**fields)


def find(tracks, per_jet: list[int], jets: list[tuple[float, float, float]]):
    c = candidates(tracks)
    jp = np.array(jets, dtype=np.float64)
    jet_p = (jp[:, 0], jp[:, 1], jp[:, 2], np.linalg.norm(jp, axis=1))
    return _secondary_vertices(c, np.array(per_jet), np.arange(len(tracks)), jet_p)


VERTEX = (4.0, 1.0, 2.0)
B_TRACKS = [
    (VERTEX, (8.0, 3.0, 4.5)),
    (VERTEX, (10.0, 1.5, 5.5)),
    (VERTEX, (6.0, 2.5, 2.0)),
]


def test_the_fit_finds_the_vertex() -> None:
    sv = find(B_TRACKS, [3], [(40.0, 10.0, 20.0)])
    assert set(sv) == {*SV_FIELDS, "jet_nv0"}
    assert len(sv["sv_mass"][0]) == 1
    assert sv["sv_dxy"][0][0] == pytest.approx(np.hypot(4.0, 1.0), rel=1e-5)
    assert sv["sv_d3d"][0][0] == pytest.approx(np.sqrt(21.0), rel=1e-5)
    assert sv["sv_ntracks"][0][0] == 3
    assert sv["sv_chi2ndof"][0][0] == pytest.approx(0.0, abs=1e-6)
    p = np.array([m for _, m in B_TRACKS])
    e = np.sqrt((p**2).sum(axis=1) + PION**2).sum()
    assert sv["sv_mass"][0][0] == pytest.approx(np.sqrt(e**2 - (p.sum(0) ** 2).sum()), rel=1e-5)
    assert sv["sv_costhetasvpv"][0][0] > 0.99
    # errors of 10-20 um at a few mm: a very significant flight distance
    assert sv["sv_dxysig"][0][0] > 50


def test_an_incompatible_track_is_dropped() -> None:
    stray = ((9.0, -2.0, 3.0), (7.0, 0.5, 3.0))  # displaced, from elsewhere
    sv = find([*B_TRACKS, stray], [4], [(40.0, 10.0, 20.0)])
    assert list(sv["sv_ntracks"][0]) == [3]  # one vertex, the stray alone makes none
    assert sv["sv_dxy"][0][0] == pytest.approx(np.hypot(4.0, 1.0), rel=1e-5)


def k0s_tracks(at: tuple[float, float, float]):
    """Two pions of 5 GeV from a K0S decay at ``at``, opening angle fixing their mass."""
    p = 5.0
    e = np.sqrt(p**2 + PION**2)
    cos = (2 * e**2 - (K0S**2 - 2 * PION**2)) / (2 * p**2)
    half = np.arccos(cos) / 2
    return [
        (at, (p * np.cos(half), p * np.sin(half), 0.0)),
        (at, (p * np.cos(half), -p * np.sin(half), 0.0)),
    ]


def test_a_k0s_is_vetoed_and_prompt_tracks_make_no_vertex() -> None:
    k0s = k0s_tracks((10.0, 0.0, 0.0))
    prompt = [((0.0, 0.0, 0.0), (5.0, 1.0, 0.5)), ((0.0, 0.0, 0.0), (6.0, -1.0, 0.2))]
    sv = find([*k0s, *prompt], [2, 2], [(30.0, 0.0, 0.0), (30.0, 0.0, 5.0)])
    assert len(sv["sv_mass"][0]) == 0
    assert len(sv["sv_mass"][1]) == 0
    # the K0S passed everything else: counted by jet_nv0 (the veto's work), prompt not
    np.testing.assert_array_equal(sv["jet_nv0"], [1.0, 0.0])
    # the same two tracks with another mass are a vertex
    heavier = [(p, (m[0], 1.5 * m[1], m[2])) for p, m in k0s]
    sv = find(heavier, [2], [(30.0, 0.0, 0.0)])
    assert len(sv["sv_mass"][0]) == 1
    np.testing.assert_array_equal(sv["jet_nv0"], [0.0])
    assert sv["sv_mass"][0][0] > K0S + 0.05
