"""Event-level feature functions against hand-computed events."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest

from heptagon.physics.event_features import (
    aplanarity,
    cross_pair_dr,
    cross_pair_mass,
    leading_pair_mass,
    merge_by_pt,
    mt,
    pair_dr,
    pair_mass,
    select,
    sphericity,
)


def objects(*events: list[tuple[float, float, float, float]]) -> list[ak.Array]:
    """``pt, eta, phi, mass`` arrays from lists of (pt, eta, phi, mass) per event."""
    return [ak.Array([[o[i] for o in ev] for ev in events]) for i in range(4)]


def test_pair_dr_known_values_and_phi_wrap() -> None:
    coll = objects(
        [(50, 0.0, 0.0, 0), (40, 1.0, 1.0, 0)],
        [(50, 0.5, 3.0, 0), (40, 0.5, -3.0, 0), (30, 2.0, 0.0, 0)],
        [(50, 0.0, 0.0, 0)],
    )
    closest = ak.to_numpy(pair_dr(*coll, 0, -1.0))
    assert closest[0] == pytest.approx(math.sqrt(2))
    assert closest[1] == pytest.approx(2 * math.pi - 6.0)  # across phi = pi
    assert closest[2] == -1.0  # one object: no pair, the fill value
    nxt = ak.to_numpy(pair_dr(*coll, 1, -1.0))
    assert nxt[0] == -1.0
    assert nxt[1] == pytest.approx(math.hypot(1.5, 3.0))


def test_invariant_mass_of_back_to_back_objects() -> None:
    coll = objects([(50, 0.0, 0.0, 0.0), (50, 0.0, math.pi, 0.0)], [(30, 1.2, 0.3, 0.0)])
    assert ak.to_numpy(pair_mass(*coll, 0, 0.0)).tolist() == pytest.approx([100.0, 0.0])
    assert ak.to_numpy(leading_pair_mass(*coll, 0.0)).tolist() == pytest.approx([100.0, 0.0])
    # massive objects at rest in the transverse plane back to back: m = 2 E
    heavy = objects([(30, 0.0, 0.0, 40.0), (30, 0.0, math.pi, 40.0)])
    assert ak.to_numpy(pair_mass(*heavy, 0, 0.0))[0] == pytest.approx(2 * math.hypot(30, 40))


def test_closest_pair_across_collections() -> None:
    leptons = objects([(40, 0.0, 0.0, 0.0)])
    bjets = objects([(60, 0.0, 2.0, 0.0), (50, 0.0, 0.5, 0.0)])
    assert ak.to_numpy(cross_pair_dr(*leptons, *bjets, 0, 0.0))[0] == pytest.approx(0.5)
    mass = ak.to_numpy(cross_pair_mass(*leptons, *bjets, 0, 0.0))[0]
    assert mass == pytest.approx(math.sqrt(2 * 40 * 50 * (1 - math.cos(0.5))))


def _directions(vectors: list[tuple[float, float, float]], p: float = 50.0) -> list[ak.Array]:
    event = []
    for x, y, z in vectors:
        n = math.sqrt(x * x + y * y + z * z)
        pt = p * math.hypot(x, y) / n
        event.append((pt, math.asinh(p * z / n / pt), math.atan2(y, x), 0.0))
    return objects(event)


def test_sphericity_and_aplanarity_of_isotropic_planar_and_pencil_events() -> None:
    cube = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]  # isotropic
    iso = _directions(cube)
    assert sphericity(*iso)[0] == pytest.approx(1.0)
    assert aplanarity(*iso)[0] == pytest.approx(0.5)
    star = [(math.cos(a), math.sin(a), 0.0) for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)]
    planar = _directions(star)
    assert sphericity(*planar)[0] == pytest.approx(0.75)
    assert aplanarity(*planar)[0] == pytest.approx(0.0, abs=1e-12)
    pencil = _directions([(1, 0.2, 0.5), (-1, -0.2, -0.5)])
    assert sphericity(*pencil)[0] == pytest.approx(0.0, abs=1e-12)
    empty = objects([])
    assert sphericity(*empty)[0] == 0.0


def test_transverse_mass() -> None:
    assert mt(np.array([40.0]), np.array([0.0]), np.array([40.0]), np.array([math.pi]))[
        0
    ] == pytest.approx(80.0)
    assert mt(np.array([40.0]), np.array([1.0]), np.array([25.0]), np.array([1.0]))[0] == 0.0


def test_merge_by_pt_and_select() -> None:
    mu_pt, el_pt = ak.Array([[30.0], []]), ak.Array([[50.0, 10.0], [20.0]])
    merged = merge_by_pt(mu_pt, el_pt, ak.Array([[13], []]), ak.Array([[11, 11], [11]]))
    assert merged.tolist() == [[11, 13, 11], [11]]
    jets = ak.Array([[100.0, 80.0, 60.0], [40.0]])
    assert select(jets, ak.Array([[True, False, True], [False]])).tolist() == [[100, 60], []]
