"""The generator record of a batch of events: final-state particles for the detector and
truth objects for matching jets to their origin.

Works on flat numpy arrays of a batch from ``Pythia.nextBatch`` (event-local indices, row 0
the system entry), vectorised over the whole batch. A truth object has an axis (the
resonance or parton) and its visible products (:class:`TruthObjects`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
from particle import pdgid

from heptagon.generate.detector import Particles
from heptagon.generate.processes import TruthRule
from heptagon.physics.arrays import owner_index

__all__ = ["EventRecord", "Ghosts", "TruthObjects", "flavour_ghosts", "truth_objects"]

_EXPAND = (6, 23, 24, 25)  # resonances whose daughters replace them among the products
_LEPTONS = (11, 13)
_NEUTRINOS = (12, 14, 16)


def _columns(prt: ak.Array) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-event counts and flat numpy columns of a ``nextBatch`` particle array, read
    straight from its awkward layout (a list of records; ``vProd`` an option of records,
    0 where missing) without per-field awkward operations."""
    layout = prt.layout
    offsets = np.asarray(layout.offsets)
    lo, hi = int(offsets[0]), int(offsets[-1])
    rec = layout.content

    def data(content: Any) -> np.ndarray:
        return np.asarray(content.data)[lo:hi]

    cols = {f: data(rec.content(f)) for f in ("id", "status", "daughter1", "daughter2")}
    p = rec.content("p")
    cols |= {f: data(p.content(f)) for f in ("px", "py", "pz", "e")}
    vprod = rec.content("vProd")
    index = np.asarray(vprod.index)[lo:hi]
    safe = np.maximum(index, 0)
    for f, name in (("px", "vx"), ("py", "vy"), ("pz", "vz")):
        values = np.asarray(vprod.content.content(f).data)[safe]
        cols[name] = np.where(index >= 0, values, 0.0)
    return np.diff(offsets).astype(np.int64), cols


@dataclass(frozen=True)
class EventRecord:
    """Flat view of a batch of Pythia events: global indices are ``start[event] + local``;
    momenta in GeV, production vertices in mm."""

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
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray

    @classmethod
    def from_batch(cls, prt: ak.Array) -> EventRecord:
        """Build from the ``prt`` field of a ``nextBatch`` result."""
        counts, c = _columns(prt)
        start = np.cumsum(counts) - counts
        offset = np.repeat(start, counts)

        def glob(local: np.ndarray) -> np.ndarray:
            return np.where(local > 0, local.astype(np.int64) + offset, -1)

        return cls(
            counts=counts,
            start=start,
            pid=c["id"].astype(np.int64),
            status=c["status"].astype(np.int64),
            daughter1=glob(c["daughter1"]),
            daughter2=glob(c["daughter2"]),
            **{k: c[k].astype(np.float64) for k in ("px", "py", "pz", "e", "vx", "vy", "vz")},
        )

    @property
    def event(self) -> np.ndarray:
        """Event index of each entry."""
        return owner_index(self.counts)

    def final_state(self) -> Particles:
        """The stable final-state particles (status > 0)."""
        sel = self.status > 0
        return Particles(
            counts=np.bincount(self.event[sel], minlength=len(self.counts)),
            px=self.px[sel],
            py=self.py[sel],
            pz=self.pz[sel],
            e=self.e[sel],
            pid=self.pid[sel],
            vx=self.vx[sel],
            vy=self.vy[sel],
            vz=self.vz[sel],
        )

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

    def daughters(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(owner, daughter)``: for each entry ``idx[owner]``, its daughters' indices."""
        d1, d2 = self.daughter1[idx], self.daughter2[idx]
        n = np.where(d1 >= 0, np.maximum(d2, d1) - d1 + 1, 0)
        owner = owner_index(n)
        first = np.repeat(d1, n)
        within = np.arange(owner.size) - np.repeat(np.cumsum(n) - n, n)
        return owner, first + within

    def eta_phi(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pseudorapidity and azimuth of entries."""
        px, py, pz = self.px[idx], self.py[idx], self.pz[idx]
        return np.arcsinh(pz / np.maximum(np.hypot(px, py), 1e-12)), np.arctan2(py, px)


@dataclass(frozen=True)
class TruthObjects:
    """Flat truth objects of a batch: axis ``eta, phi`` and PDG id ``pid`` per object
    (sorted by ``event``), and visible products ``prod_eta, prod_phi`` belonging to object
    ``prod_owner``."""

    event: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    pid: np.ndarray
    prod_owner: np.ndarray
    prod_eta: np.ndarray
    prod_phi: np.ndarray


def _resonances(rec: EventRecord, rule: TruthRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Last copies of ``rule.pdg`` with the required lepton count, and their visible decay
    products (W/Z/H/t among them replaced by their own products)."""
    cand = np.flatnonzero(np.abs(rec.pid) == rule.pdg)
    axes = cand[rec.last_copy(cand) == cand]
    owner, prod = rec.daughters(axes)
    while True:
        expand = np.isin(np.abs(rec.pid[prod]), _EXPAND)
        if not expand.any():
            break
        sub_owner, sub = rec.daughters(rec.last_copy(prod[expand]))
        owner = np.concatenate([owner[~expand], owner[expand][sub_owner]])
        prod = np.concatenate([prod[~expand], sub])
    is_lepton = np.isin(np.abs(rec.pid[prod]), _LEPTONS)
    n_lep = np.bincount(owner, weights=is_lepton, minlength=axes.size)
    has_products = np.bincount(owner, minlength=axes.size) > 0
    good = has_products & (n_lep == rule.n_leptons)
    renumber = np.cumsum(good) - 1
    visible = good[owner] & ~np.isin(np.abs(rec.pid[prod]), _NEUTRINOS)
    return axes[good], renumber[owner[visible]], prod[visible]


def truth_objects(rec: EventRecord, rule: TruthRule) -> TruthObjects:
    """Truth objects of a batch for a ``resonance`` or ``parton`` rule: resonances with
    their decay products, or the outgoing hard-process parton (its own product)."""
    if rule.kind == "resonance":
        axes, owner, prod = _resonances(rec, rule)
    elif rule.kind == "parton":
        hard = (rec.status == -23) & np.isin(np.abs(rec.pid), rule.parton_ids)
        axes = np.flatnonzero(hard)
        owner, prod = np.arange(axes.size), axes
    else:
        raise ValueError(f"truth rule '{rule.kind}' has no truth objects")
    eta, phi = rec.eta_phi(axes)
    peta, pphi = rec.eta_phi(prod)
    return TruthObjects(rec.event[axes], eta, phi, rec.pid[axes], owner, peta, pphi)


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
    return np.asarray(flag & (n_flagged == 0))


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
