"""Event-level features over object collections (jets, leptons, MET), as in event-level
analysis classifiers (the CMS ttH / ttZ multilepton DNNs): invariant masses and angular
distances of the closest object pairs, sphericity and aplanarity, transverse mass.

Pure functions over awkward arrays (one list of objects per event, any order unless said)
built on ``vector``; GeV and radians. A collection is given by its ``pt, eta, phi, mass``
arrays, so the same functions serve heptagon samples and NanoAOD (``Jet_pt``, ...). Each
function is callable by name from data-config expressions (:data:`FUNCTIONS`), where the
named event features of :mod:`heptagon.data.features` use them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np
import vector

__all__ = [
    "FUNCTIONS",
    "aplanarity",
    "cross_pair_dr",
    "cross_pair_mass",
    "leading_pair_mass",
    "merge_by_pt",
    "mt",
    "pair_dr",
    "pair_mass",
    "select",
    "sphericity",
]

vector.register_awkward()


def _p4(pt: Any, eta: Any, phi: Any, mass: Any) -> Any:
    return vector.zip({"pt": pt, "eta": eta, "phi": phi, "mass": mass})


def select(values: Any, mask: Any) -> Any:
    """The objects of ``values`` where ``mask`` (same lists) is true, e.g. the b-tagged jets."""
    return ak.Array(values)[ak.values_astype(mask, bool)]


def merge_by_pt(pt_a: Any, pt_b: Any, values_a: Any, values_b: Any) -> Any:
    """Two collections as one list per event, ordered by pT (descending): the values
    (``values_a`` of the a objects, ``values_b`` of the b objects) in that order. E.g. the
    leptons from muons and electrons, or the jets and leptons as one object list."""
    pt = ak.concatenate([pt_a, pt_b], axis=1)
    values = ak.concatenate([values_a, values_b], axis=1)
    return values[ak.argsort(pt, axis=1, ascending=False, stable=True)]


def _ranked(value: Any, dr: Any, rank: int, fill: float) -> Any:
    """``value`` of the pair with the ``rank``-th smallest dR (0: the closest)."""
    order = ak.argsort(dr, axis=1, stable=True)
    return ak.fill_none(ak.pad_none(value[order], rank + 1, axis=1)[:, rank], fill)


def _pairs(pt: Any, eta: Any, phi: Any, mass: Any) -> tuple[Any, Any]:
    a, b = ak.unzip(ak.combinations(_p4(pt, eta, phi, mass), 2, axis=1))
    return a, b


def pair_dr(pt: Any, eta: Any, phi: Any, mass: Any, rank: int, fill: float) -> Any:
    """dR of the ``rank``-th closest pair of objects of one collection (``fill`` when
    there are fewer pairs)."""
    a, b = _pairs(pt, eta, phi, mass)
    dr = a.deltaR(b)
    return _ranked(dr, dr, int(rank), fill)


def pair_mass(pt: Any, eta: Any, phi: Any, mass: Any, rank: int, fill: float) -> Any:
    """Invariant mass of the ``rank``-th closest pair (in dR) of one collection."""
    a, b = _pairs(pt, eta, phi, mass)
    return _ranked((a + b).mass, a.deltaR(b), int(rank), fill)


def _cross(*args: Any) -> tuple[Any, Any]:
    a = _p4(*args[:4])
    b = _p4(*args[4:8])
    pa, pb = ak.unzip(ak.cartesian([a, b], axis=1))
    return pa, pb


def cross_pair_dr(
    pt1: Any,
    eta1: Any,
    phi1: Any,
    m1: Any,
    pt2: Any,
    eta2: Any,
    phi2: Any,
    m2: Any,
    rank: int,
    fill: float,
) -> Any:
    """dR of the ``rank``-th closest pair with one object of each collection (e.g. the
    lepton and b jet closest to each other)."""
    a, b = _cross(pt1, eta1, phi1, m1, pt2, eta2, phi2, m2)
    dr = a.deltaR(b)
    return _ranked(dr, dr, int(rank), fill)


def cross_pair_mass(
    pt1: Any,
    eta1: Any,
    phi1: Any,
    m1: Any,
    pt2: Any,
    eta2: Any,
    phi2: Any,
    m2: Any,
    rank: int,
    fill: float,
) -> Any:
    """Invariant mass of the ``rank``-th closest pair (in dR) with one object of each
    collection."""
    a, b = _cross(pt1, eta1, phi1, m1, pt2, eta2, phi2, m2)
    return _ranked((a + b).mass, a.deltaR(b), int(rank), fill)


def leading_pair_mass(pt: Any, eta: Any, phi: Any, mass: Any, fill: float) -> Any:
    """Invariant mass of the two leading objects (lists ordered by pT), e.g. m(ll)."""
    p = ak.pad_none(_p4(pt, eta, phi, mass), 2, axis=1)
    return ak.fill_none((p[:, 0] + p[:, 1]).mass, fill)


def mt(pt: Any, phi: Any, met_pt: Any, met_phi: Any) -> Any:
    """Transverse mass of an object and the missing transverse momentum,
    ``sqrt(2 pT MET (1 - cos dphi))`` (massless)."""
    return np.sqrt(np.maximum(2 * pt * met_pt * (1 - np.cos(phi - met_phi)), 0.0))


def _eigenvalues(pt: Any, eta: Any, phi: Any, mass: Any) -> np.ndarray:
    """Eigenvalues (descending) of the normalised momentum tensor
    ``S_ab = sum p_a p_b / sum |p|^2`` of each event; zeros for an event with no object."""
    p = _p4(pt, eta, phi, mass)
    comps = [p.px, p.py, p.pz]
    tensor = np.stack(
        [np.stack([ak.to_numpy(ak.sum(x * y, axis=1)) for y in comps], -1) for x in comps], -1
    )
    norm = ak.to_numpy(ak.sum(p.p**2, axis=1))
    tensor = tensor / np.where(norm > 0, norm, 1.0)[:, None, None]
    return np.linalg.eigvalsh(tensor)[:, ::-1]


def sphericity(pt: Any, eta: Any, phi: Any, mass: Any) -> np.ndarray:
    """Sphericity ``3/2 (l2 + l3)`` of the objects' momentum tensor: 0 for a pencil-like
    (back-to-back) event, 1 for an isotropic one."""
    lam = _eigenvalues(pt, eta, phi, mass)
    return np.asarray(1.5 * (lam[:, 1] + lam[:, 2]))


def aplanarity(pt: Any, eta: Any, phi: Any, mass: Any) -> np.ndarray:
    """Aplanarity ``3/2 l3``: 0 for a planar event, 1/2 for an isotropic one."""
    return np.asarray(1.5 * _eigenvalues(pt, eta, phi, mass)[:, 2])


#: the functions above by name, for data-config expressions
FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        select,
        merge_by_pt,
        pair_dr,
        pair_mass,
        cross_pair_dr,
        cross_pair_mass,
        leading_pair_mass,
        mt,
        sphericity,
        aplanarity,
    )
}
