"""Truth objects from Pythia's event record, for matching jets to their origin.

Works on the flat arrays of a batch from ``Pythia.nextBatch`` (event-local indices, row 0
the system entry). A truth object has an axis (the resonance or parton) and its visible
products; :func:`truth_objects` returns them as awkward arrays ``[event][object]`` with
fields ``eta, phi, products.eta, products.phi``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import awkward as ak
import numpy as np
from particle import pdgid

from heptagon.generate.processes import TruthRule

__all__ = ["EventRecord", "Ghosts", "flavour_ghosts", "truth_objects"]

_EXPAND = (6, 23, 24, 25)  # resonances whose daughters replace them among the products
_LEPTONS = (11, 13)
_NEUTRINOS = (12, 14, 16)


@dataclass(frozen=True)
class EventRecord:
    """Flat view of a batch of Pythia events: global indices are ``start[event] + local``."""

    counts: np.ndarray
    start: np.ndarray
    pid: np.ndarray
    status: np.ndarray
    daughter1: np.ndarray  # global index, -1 if none
    daughter2: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray

    @classmethod
    def from_batch(cls, prt: ak.Array) -> EventRecord:
        """Build from the ``prt`` field of a ``nextBatch`` result."""
        counts = ak.to_numpy(ak.num(prt)).astype(np.int64)
        start = np.cumsum(counts) - counts
        event = np.repeat(np.arange(len(counts)), counts)

        def flat(x: ak.Array) -> np.ndarray:
            return ak.to_numpy(ak.flatten(x))

        def glob(local: np.ndarray) -> np.ndarray:
            return np.where(local > 0, local + start[event], -1)

        return cls(
            counts=counts,
            start=start,
            pid=flat(prt.id),
            status=flat(prt.status),
            daughter1=glob(flat(prt.daughter1)),
            daughter2=glob(flat(prt.daughter2)),
            px=flat(prt.p.px),
            py=flat(prt.p.py),
            pz=flat(prt.p.pz),
            e=flat(prt.p.e),
        )

    @property
    def event(self) -> np.ndarray:
        """Event index of each entry."""
        return np.repeat(np.arange(len(self.counts)), self.counts)

    def last_copy(self, idx: np.ndarray) -> np.ndarray:
        """Follow carbon copies (a single daughter with the same id) to the last one."""
        idx = idx.copy()
        while True:
            d1 = self.daughter1[idx]
            more = (d1 >= 0) & (d1 == self.daughter2[idx])
            more[more] &= self.pid[d1[more]] == self.pid[idx[more]]
            if not more.any():
                return idx
            idx[more] = d1[more]

    def eta_phi(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pseudorapidity and azimuth of entries."""
        px, py, pz = self.px[idx], self.py[idx], self.pz[idx]
        return np.arcsinh(pz / np.maximum(np.hypot(px, py), 1e-12)), np.arctan2(py, px)


def _decay_products(rec: EventRecord, res: int) -> list[int]:
    """Global indices of the decay products of ``res`` with W/Z/H/t expanded."""
    last = int(rec.last_copy(np.array([res]))[0])
    d1, d2 = rec.daughter1[last], rec.daughter2[last]
    if d1 < 0:
        return []
    out: list[int] = []
    for d in range(d1, max(d1, d2) + 1):
        if abs(rec.pid[d]) in _EXPAND:
            out.extend(_decay_products(rec, d))
        else:
            out.append(d)
    return out


def _resonances(rec: EventRecord, rule: TruthRule) -> tuple[list[int], list[list[int]]]:
    cand = np.flatnonzero(np.abs(rec.pid) == rule.pdg)
    is_last = rec.last_copy(cand) == cand
    axes: list[int] = []
    products: list[list[int]] = []
    for res in cand[is_last]:
        prods = _decay_products(rec, int(res))
        apid = np.abs(rec.pid[prods])
        if not prods or int(np.isin(apid, _LEPTONS).sum()) != rule.n_leptons:
            continue
        axes.append(int(res))
        products.append([p for p, a in zip(prods, apid, strict=True) if a not in _NEUTRINOS])
    return axes, products


def _partons(rec: EventRecord, rule: TruthRule) -> tuple[list[int], list[list[int]]]:
    hard = np.flatnonzero(
        (rec.status == -23) & np.isin(np.abs(rec.pid), (1, 2, 3, 4, 5, 21))
    )
    keep = hard[np.isin(np.abs(rec.pid[hard]), rule.parton_ids)]
    return [int(i) for i in keep], [[int(i)] for i in keep]


def truth_objects(rec: EventRecord, rule: TruthRule) -> ak.Array:
    """Truth objects per event for a ``resonance`` or ``parton`` rule."""
    if rule.kind == "resonance":
        axes, products = _resonances(rec, rule)
    elif rule.kind == "parton":
        axes, products = _partons(rec, rule)
    else:
        raise ValueError(f"truth rule '{rule.kind}' has no truth objects")
    axes_arr = np.asarray(axes, dtype=np.int64)
    n_prod = np.asarray([len(p) for p in products], dtype=np.int64)
    flat_prod = np.asarray([i for p in products for i in p], dtype=np.int64)
    eta, phi = rec.eta_phi(axes_arr)
    peta, pphi = rec.eta_phi(flat_prod)
    per_event = np.bincount(rec.event[axes_arr], minlength=len(rec.counts))
    objects = ak.zip(
        {
            "eta": eta,
            "phi": phi,
            "products": ak.unflatten(ak.zip({"eta": peta, "phi": pphi}), n_prod),
        },
        depth_limit=1,
    )
    return ak.unflatten(objects, per_event)


@dataclass(frozen=True)
class Ghosts:
    """Flavour ghosts of a batch of events (flat, sorted by event; ``counts`` per event):
    weakly-decaying b and c hadrons and the final partons of the shower."""

    B_HADRON = 1
    C_HADRON = 2
    PARTON = 3

    counts: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pid: np.ndarray
    kind: np.ndarray


def _flag(pid: np.ndarray, test: Callable[[int], bool | None]) -> np.ndarray:
    """Apply a scalar ``particle.pdgid`` predicate to an id array (once per unique id)."""
    uniq, inverse = np.unique(pid, return_inverse=True)
    return np.array([bool(test(int(p))) for p in uniq], dtype=bool)[inverse]


def _weakly_decaying(rec: EventRecord, flag: np.ndarray) -> np.ndarray:
    """Entries with ``flag`` none of whose daughters has ``flag`` (the last heavy hadron)."""
    cum = np.concatenate([[0], np.cumsum(flag)])
    d1 = rec.daughter1
    d2 = np.where(rec.daughter2 >= d1, rec.daughter2, d1)
    n_flagged = np.where(d1 >= 0, cum[d2 + 1] - cum[np.maximum(d1, 0)], 0)
    return flag & (n_flagged == 0)


def flavour_ghosts(rec: EventRecord) -> Ghosts:
    """Ghosts for hadron-based jet flavour: weakly-decaying b hadrons, weakly-decaying c
    hadrons without b, and the partons handed to hadronisation (status -71 to -79)."""
    hadron = _flag(rec.pid, pdgid.is_hadron)
    has_b = hadron & _flag(rec.pid, pdgid.has_bottom)
    has_c = hadron & _flag(rec.pid, pdgid.has_charm) & ~has_b
    b = _weakly_decaying(rec, has_b)
    c = _weakly_decaying(rec, has_c)
    parton = (rec.status <= -71) & (rec.status >= -79)
    parton &= np.isin(np.abs(rec.pid), (1, 2, 3, 4, 5, 21))
    kind = np.select([b, c, parton], [Ghosts.B_HADRON, Ghosts.C_HADRON, Ghosts.PARTON], 0)
    sel = kind > 0
    return Ghosts(
        counts=np.bincount(rec.event[sel], minlength=len(rec.counts)),
        px=rec.px[sel],
        py=rec.py[sel],
        pz=rec.pz[sel],
        e=rec.e[sel],
        pid=rec.pid[sel],
        kind=kind[sel],
    )
