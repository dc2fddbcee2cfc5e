"""Jets from reconstructed candidates: clustering (FastJet anti-kT), selection, truth
matching, substructure (soft-drop mass, N-subjettiness), flavour labels by ghost
association and a simple secondary-vertex finder, written in the JetClass schema.

All work is vectorised over a batch of events with awkward / numpy; FastJet does the
clustering, grooming and N-subjettiness in C++.

Pile-up (``docs/pileup.md``): the event's median pT density ``rho``
(:func:`event_rho`: FastJet's ``GridMedianBackgroundEstimator``, CMS's
``fixedGridRhoFastjetAll``: the median of pT / area over the tiles of a
``RHO_GRID_SPACING`` grid up to ``|y| =`` ``RHO_RAP_MAX``) and the jets' active areas
(FastJet's ``ClusterSequenceArea``, ghosts of area ``GHOST_AREA`` up to
``|y| =`` ``GHOST_RAP_MAX``) give the area-based
correction ``jet_pt_corr = jet_pt - rho * jet_area``. FastJet's ghosts are random: the
generator's state is checkpointed at import (FastJet's fixed default seed) and restored
before every event, so that the same input gives the same areas whatever ran before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import fastjet
import numpy as np

from heptagon.generate.detector import Candidates
from heptagon.generate.truth import Ghosts, TruthObjects
from heptagon.physics.arrays import owner_index
from heptagon.physics.flavour import Track, cos_theta_flight, flight_distances, track_features
from heptagon.physics.kinematics import delta_phi, delta_r
from heptagon.physics.pdg import type_flags

__all__ = [
    "GHOST_AREA",
    "GHOST_RAP_MAX",
    "RHO_GRID_SPACING",
    "RHO_RAP_MAX",
    "SV_FIELDS",
    "TRACK_FIELDS",
    "ClusteredJets",
    "JetSelection",
    "build_jets",
    "cluster",
    "event_rho",
    "flavour_label",
    "silence_fastjet_banner",
    "substructure",
]


#: leading jets per event that are considered (after clustering, before the window)
JETS_PER_EVENT = 2
#: secondary vertices (docs/flavour.md): displaced tracks (|d0|/sigma(d0) and pT in GeV
#: above these) are fitted to vertices; a track whose chi2 to its vertex exceeds
#: SV_TRACK_CHI2 is removed; a vertex is kept with 2D flight distance below SV_MAX_DXY (mm)
#: and its significance above SV_MIN_DXYSIG, mass below SV_MAX_MASS (GeV), flight
#: direction within SV_MAX_FLIGHT_DR of the jet axis, and, with two tracks, a mass outside
#: SV_K0S_WINDOW (GeV) of the K0S mass (the CMS IVF selection, JINST 13 (2018) P05011)
SV_MIN_SIG = 3.0
SV_MIN_PT = 1.0
SV_TRACK_CHI2 = 9.0
SV_MAX_DXY = 25.0
SV_MIN_DXYSIG = 3.0
SV_MAX_MASS = 6.5
SV_MAX_FLIGHT_DR = 0.4
SV_K0S_WINDOW = 0.05
SV_MAX_PER_JET = 2
_PION_MASS = 0.13957
_K0S_MASS = 0.497611
#: the per-SV branches of a flavour sample (docs/flavour.md)
SV_FIELDS = (
    "sv_mass",
    "sv_pt",
    "sv_ntracks",
    "sv_chi2ndof",
    "sv_dxy",
    "sv_dxysig",
    "sv_d3d",
    "sv_d3dsig",
    "sv_costhetasvpv",
    "sv_deta",
    "sv_dphi",
    "sv_deltaR",
    "sv_enratio",
)
#: the per-track branches of a flavour sample, ``part_`` + a :func:`track_features` key
TRACK_FIELDS = ("ip2d", "ip2d_sig", "ip3d", "ip3d_sig", "jet_dist")
_GHOST_SCALE = 1e-18
FLAVOURS = ("b", "c", "uds", "g")
#: rho and jet areas (module docstring)
RHO_GRID_SPACING = 0.55
RHO_RAP_MAX = 5.0
GHOST_RAP_MAX = 5.0
GHOST_AREA = 0.01
_GHOSTS = fastjet.GhostedAreaSpec(GHOST_RAP_MAX, 1, GHOST_AREA)
_GHOSTS.checkpoint_random()

_banner_silenced = False


def silence_fastjet_banner() -> None:
    """FastJet prints a banner on stdout at its first clustering; send it to /dev/null."""
    global _banner_silenced
    if _banner_silenced:
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            one = ak.Array([[{"px": 1.0, "py": 0.0, "pz": 0.0, "E": 1.0}]])
            jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4)
            fastjet.ClusterSequence(one, jet_def)
            # the bindings without awkward (areas, rho) are a second library: its own banner
            fastjet.ClusterSequence([fastjet.PseudoJet(1.0, 0.0, 0.0, 1.0)], jet_def)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _banner_silenced = True


@dataclass(frozen=True)
class JetSelection:
    """Jet definition and selection: anti-kT ``radius``, pT in ``[pt_min, pt_max)`` GeV,
    ``|eta| < eta_max`` (or ``|y|`` when ``use_rapidity``)."""

    radius: float
    pt_min: float
    pt_max: float
    eta_max: float
    use_rapidity: bool = False


@dataclass(frozen=True)
class ClusteredJets:
    """Flat jets of a batch: one entry per jet, and its members (global candidate indices;
    a ghost is ``-1 - ghost index``) in ``members`` with ``n_members`` per jet."""

    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    n_members: np.ndarray
    members: np.ndarray

    def select(self, keep: np.ndarray) -> ClusteredJets:
        return ClusteredJets(
            self.event[keep],
            self.px[keep],
            self.py[keep],
            self.pz[keep],
            self.e[keep],
            self.n_members[keep],
            self.members[np.repeat(keep, self.n_members)],
        )

    @property
    def pt(self) -> np.ndarray:
        return np.asarray(np.hypot(self.px, self.py))

    @property
    def eta(self) -> np.ndarray:
        return np.asarray(np.arcsinh(self.pz / np.maximum(self.pt, 1e-12)))

    @property
    def phi(self) -> np.ndarray:
        return np.asarray(np.arctan2(self.py, self.px))

    @property
    def rapidity(self) -> np.ndarray:
        return np.asarray(0.5 * np.log((self.e + self.pz) / np.maximum(self.e - self.pz, 1e-12)))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + length)`` for each pair."""
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.asarray(np.repeat(starts, lengths) + np.arange(int(lengths.sum())) - offsets)


def _pseudojets(c: Candidates, start: int, stop: int) -> list[Any]:
    """FastJet ``PseudoJet`` objects of candidates ``start:stop``, user index = position."""
    out = []
    for i, p in enumerate(
        zip(
            c.px[start:stop].tolist(),
            c.py[start:stop].tolist(),
            c.pz[start:stop].tolist(),
            c.e[start:stop].tolist(),
            strict=True,
        )
    ):
        pj = fastjet.PseudoJet(*p)
        pj.set_user_index(start + i)
        out.append(pj)
    return out


def _area_definition() -> Any:
    """Active areas with explicit ghosts, the ghosts' generator reset (module docstring)."""
    _GHOSTS.restore_checkpoint_random()
    return fastjet.AreaDefinition(fastjet.active_area_explicit_ghosts, _GHOSTS)


def event_rho(c: Candidates, events: np.ndarray) -> np.ndarray:
    """The median pT per unit area ``rho`` (GeV) of the candidates of each of ``events``
    (indices; module docstring), as FastJet's ``GridMedianBackgroundEstimator(RHO_RAP_MAX,
    RHO_GRID_SPACING)`` computes it: ``ny = int(2 y_max / spacing + 0.5)`` rapidity and
    ``int(2 pi / spacing + 0.5)`` azimuth tiles, the median of each tile's scalar pT sum
    over its area (the mean of the two middle tiles for an even count; FastJet's
    ``_percentile(0.5)``), vectorised over the events."""
    events = np.asarray(events, dtype=np.int64)
    ny = int(max(1.0, 2 * RHO_RAP_MAX / RHO_GRID_SPACING + 0.5))
    nphi = int(2 * np.pi / RHO_GRID_SPACING + 0.5)
    dy, dphi = 2 * RHO_RAP_MAX / ny, 2 * np.pi / nphi
    take = _ranges((np.cumsum(c.counts) - c.counts)[events], c.counts[events])
    owner = owner_index(c.counts[events])
    px, py, pz, e = c.px[take], c.py[take], c.pz[take], c.e[take]
    # rapidity as FastJet's PseudoJet::rap() (massless at the kinematic limit)
    y = 0.5 * np.log(np.maximum(e + np.abs(pz), 1e-300) / np.maximum(e - np.abs(pz), 1e-300))
    iy = np.floor((np.copysign(y, pz) + RHO_RAP_MAX) / dy).astype(np.int64)
    iphi = np.minimum((np.mod(np.arctan2(py, px), 2 * np.pi) / dphi).astype(np.int64), nphi - 1)
    inside = (iy >= 0) & (iy < ny)
    n_tiles = ny * nphi
    tile = owner[inside] * n_tiles + iy[inside] * nphi + iphi[inside]
    pt_sum = np.bincount(tile, weights=np.hypot(px, py)[inside], minlength=events.size * n_tiles)
    density = np.sort(pt_sum.reshape(events.size, n_tiles), axis=1) / (dy * dphi)
    return np.asarray(0.5 * (density[:, (n_tiles - 1) // 2] + density[:, n_tiles // 2]))


def _jet_areas(c: Candidates, jets: ClusteredJets, radius: float) -> np.ndarray:
    """The active area of each jet of ``jets`` (anti-kT ``radius`` of the candidates
    ``c``): FastJet re-clusters each event with ghosts, and a jet is found again by its
    real constituents (ghosts do not change the hard jets)."""
    silence_fastjet_banner()
    bounds = np.r_[0, np.cumsum(c.counts)]
    real = jets.members >= 0
    # one real constituent of each jet (every jet has some)
    owner = owner_index(jets.n_members)
    pick = np.full(jets.event.size, -1, dtype=np.int64)
    pick[owner[real][::-1]] = jets.members[real][::-1]
    area_of = np.full(c.px.size, np.nan)
    akt = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    pt_min = float(jets.pt.min(initial=np.inf)) / 2
    for ev in np.unique(jets.event):
        seq = fastjet.ClusterSequenceArea(
            _pseudojets(c, int(bounds[ev]), int(bounds[ev + 1])), akt, _area_definition()
        )
        for jet in seq.inclusive_jets(pt_min):
            area = jet.area()
            for part in jet.constituents():
                if part.user_index() >= 0:
                    area_of[part.user_index()] = area
    return area_of[pick]


def cluster(
    c: Candidates, sel: JetSelection, ghosts: Ghosts | None, leading: int | None = JETS_PER_EVENT
) -> ClusteredJets:
    """Cluster candidates (plus ghosts) with anti-kT; keep the ``leading`` jets above
    ``pt_min`` of each event (every one when None)."""
    silence_fastjet_banner()
    event = owner_index(c.counts)
    origin = np.arange(c.px.size, dtype=np.int64)
    px, py, pz, e = c.px, c.py, c.pz, c.e
    counts = c.counts
    if ghosts is not None:
        g_event = owner_index(ghosts.counts)
        order = np.argsort(np.concatenate([event, g_event]), kind="stable")
        origin = np.concatenate([origin, -1 - np.arange(ghosts.px.size)])[order]
        px, py, pz, e = (
            np.concatenate([a, b * _GHOST_SCALE])[order]
            for a, b in ((px, ghosts.px), (py, ghosts.py), (pz, ghosts.pz), (e, ghosts.e))
        )
        counts = counts + ghosts.counts
    parts = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}), counts)
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, sel.radius)
    seq = fastjet.ClusterSequence(parts, jet_def)
    jets = seq.inclusive_jets(min_pt=sel.pt_min)
    local = seq.constituent_index(min_pt=sel.pt_min)
    jet_event = owner_index(ak.to_numpy(ak.num(jets)))
    n_members = ak.to_numpy(ak.flatten(ak.num(local, axis=2))).astype(np.int64)
    start = np.cumsum(counts) - counts
    flat_local = ak.to_numpy(ak.flatten(local, axis=None)).astype(np.int64)
    members = origin[flat_local + np.repeat(start[jet_event], n_members)]
    flat_jets = ak.flatten(jets)
    out = ClusteredJets(
        event=jet_event,
        px=ak.to_numpy(flat_jets.px),
        py=ak.to_numpy(flat_jets.py),
        pz=ak.to_numpy(flat_jets.pz),
        e=ak.to_numpy(flat_jets.E),
        n_members=n_members,
        members=members,
    )
    if leading is None:
        return out
    # the leading jets of each event
    order = np.lexsort((-out.pt, out.event))
    first = np.searchsorted(out.event[order], out.event[order])
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size) - first
    return out.select(rank < leading)


def _matched(jets: ClusteredJets, truth: TruthObjects, radius: float) -> np.ndarray:
    """For each jet, the index of the truth object nearest its axis among those whose axis
    and visible products all lie within ``dR < R`` of it; -1 where there is none."""
    n_events = int(max(jets.event.max(initial=-1), truth.event.max(initial=-1))) + 1
    n_obj = np.bincount(truth.event, minlength=n_events)
    obj_start = np.cumsum(n_obj) - n_obj
    per_jet = n_obj[jets.event]
    pair_jet = owner_index(per_jet)
    pair_obj = _ranges(obj_start[jets.event], per_jet)
    eta, phi = jets.eta, jets.phi
    dr = delta_r(eta[pair_jet], phi[pair_jet], truth.eta[pair_obj], truth.phi[pair_obj])
    ok = dr < radius
    by_owner = np.argsort(truth.prod_owner, kind="stable")
    n_prod = np.bincount(truth.prod_owner, minlength=truth.eta.size)
    prod_start = np.cumsum(n_prod) - n_prod
    per_pair = n_prod[pair_obj]
    pp_pair = owner_index(per_pair)
    pp_prod = by_owner[_ranges(prod_start[pair_obj], per_pair)]
    j = pair_jet[pp_pair]
    outside = delta_r(eta[j], phi[j], truth.prod_eta[pp_prod], truth.prod_phi[pp_prod]) >= radius
    ok &= np.bincount(pp_pair, weights=outside, minlength=pair_obj.size) == 0
    jet, obj = pair_jet[ok], pair_obj[ok]
    order = np.lexsort((dr[ok], jet))  # by jet, nearest object first
    first = np.unique(jet[order], return_index=True)[1]
    best = np.full(jets.event.size, -1, dtype=np.int64)
    best[jet[order][first]] = obj[order][first]
    return best


def flavour_label(jets: ClusteredJets, ghosts: Ghosts) -> np.ndarray:
    """Hadron-based flavour of each jet from its ghosts (index into ``FLAVOURS``): ``b`` if
    a weakly-decaying b hadron is inside, else ``c`` for a c hadron, else from the hardest
    final-shower parton: ``g`` for a gluon, ``uds`` otherwise."""
    n = jets.event.size
    owner = owner_index(jets.n_members)
    is_ghost = jets.members < 0
    g = -1 - jets.members[is_ghost]
    owner = owner[is_ghost]
    kind = ghosts.kind[g]
    has_b = np.bincount(owner, weights=kind == Ghosts.B_HADRON, minlength=n) > 0
    has_c = np.bincount(owner, weights=kind == Ghosts.C_HADRON, minlength=n) > 0
    parton = kind == Ghosts.PARTON
    p_owner, p_pt = owner[parton], np.hypot(ghosts.px[g[parton]], ghosts.py[g[parton]])
    order = np.lexsort((-p_pt, p_owner))
    first = order[np.r_[True, p_owner[order][1:] != p_owner[order][:-1]]] if order.size else order
    gluon = np.zeros(n, dtype=bool)
    gluon[p_owner[first]] = ghosts.pid[g[parton][first]] == 21
    return np.select([has_b, has_c, gluon], [0, 1, 3], 2)


def recluster_radius(radius: float) -> float:
    """The C/A radius a jet's constituents are re-clustered with for its substructure:
    max(1.0, 2 radius), so that none is lost."""
    return max(1.0, 2 * radius)


def _reclustered(
    counts: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray, radius: float
) -> Any:
    """The C/A cluster sequence of each jet's constituents (flat, ``counts`` per jet)."""
    cons = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}), counts)
    definition = fastjet.JetDefinition(fastjet.cambridge_algorithm, recluster_radius(radius))
    return fastjet.ClusterSequence(cons, definition)


def _taus(sequence: Any, n: int, radius: float) -> dict[str, np.ndarray]:
    tau = np.asarray(sequence.njettiness(njets=[1, 2, 3, 4], beta=1.0, R0=radius)).reshape(n, 4)
    return {f"jet_tau{i + 1}": tau[:, i].astype(np.float32) for i in range(4)}


def n_subjettiness(
    counts: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray, radius: float
) -> dict[str, np.ndarray]:
    """N-subjettiness ``jet_tau1..4`` (beta = 1, R0 = ``radius``, normalised measure,
    one-pass kT axes) of each jet (flat constituents, ``counts`` per jet)."""
    if counts.size == 0:
        return {f"jet_tau{i}": np.zeros(0, dtype=np.float32) for i in range(1, 5)}
    return _taus(_reclustered(counts, px, py, pz, e, radius), counts.size, radius)


def substructure(
    counts: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray, radius: float
) -> dict[str, np.ndarray]:
    """Soft-drop mass (beta = 0, z_cut = 0.1, R0 = radius) and :func:`n_subjettiness` of
    each jet (flat constituents, ``counts`` per jet), from one C/A re-clustering at
    :func:`recluster_radius`."""
    n = counts.size
    if n == 0:
        return {
            "jet_sdmass": np.zeros(0, dtype=np.float32),
            **n_subjettiness(counts, px, py, pz, e, radius),
        }
    seq = _reclustered(counts, px, py, pz, e, radius)
    sd = seq.exclusive_jets_softdrop_grooming(njets=1, beta=0.0, symmetry_cut=0.1, R0=radius)
    return {"jet_sdmass": np.asarray(sd.msoftdrop, dtype=np.float32), **_taus(seq, n, radius)}


def _track_frame(
    c: Candidates, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per track ``t``: the transverse PCA ``a`` (n, 3) mm, the two unit directions
    across the track (n, 3, 2): ``e1`` transverse (the d0 direction), ``e2 = n x e1``,
    and their errors ``sigma1 = d0err``, ``sigma2 = dzerr sin(theta)``; and the 3D unit
    direction ``n`` (n, 3)."""
    pt = np.maximum(np.hypot(c.px[t], c.py[t]), 1e-12)
    p = np.sqrt(pt**2 + c.pz[t] ** 2)
    ux, uy = c.px[t] / pt, c.py[t] / pt
    n = np.stack([c.px[t] / p, c.py[t] / p, c.pz[t] / p], axis=1)
    a = np.stack([c.d0[t] * uy, -c.d0[t] * ux, c.dz[t]], axis=1)
    e1 = np.stack([uy, -ux, np.zeros_like(ux)], axis=1)
    e2 = np.cross(n, e1)
    sin_theta = pt / p
    return a, np.stack([e1, e2], axis=2), c.d0err[t], c.dzerr[t] * sin_theta, n


def _solve(big_a: np.ndarray, big_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``v = A^-1 b`` and ``A^-1`` for stacks of 3x3 ``A`` (a tiny ridge keeps parallel
    tracks solvable: their vertex then has a huge error along them)."""
    scale = np.trace(big_a, axis1=1, axis2=2)[:, None, None]
    cov = np.linalg.inv(big_a + np.eye(3) * np.where(scale > 0, 1e-9 * scale, 1.0))
    return np.einsum("nij,nj->ni", cov, big_b), cov


def _fit_vertices(
    c: Candidates, t: np.ndarray, jet: np.ndarray, n_jets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit one vertex per jet to its tracks ``t`` (jet index ``jet``): the point ``v``
    minimising ``chi2 = sum_i (v - a_i)^T W_i (v - a_i)`` over the straight track lines
    (``W_i`` the inverse errors across track i, :func:`_track_frame`). While a jet has
    more than two tracks, the one least compatible with the vertex of the others (largest
    chi2 to the fit without it) is removed if that chi2 exceeds ``SV_TRACK_CHI2``.
    Returns the positions (n_jets, 3), covariances (n_jets, 3, 3), the tracks left in the
    fit and whether each jet's vertex is good (two or more tracks, each within
    ``SV_TRACK_CHI2`` of it)."""
    a, frame, s1, s2, _ = _track_frame(c, t)
    err = np.stack([s1, s2], axis=1)
    safe = np.where(err > 0, err, np.inf)
    # W_i = sum_k e_k e_k^T / sigma_k^2, and W_i a_i
    w = np.einsum("nik,njk->nij", frame / safe[:, None, :], frame / safe[:, None, :])
    wa = np.einsum("nij,nj->ni", w, a)
    keep = np.ones(t.size, dtype=bool)
    while True:
        ntrk = np.bincount(jet[keep], minlength=n_jets)
        big_a = np.zeros((n_jets, 3, 3))
        np.add.at(big_a, jet[keep], w[keep])
        big_b = np.zeros((n_jets, 3))
        np.add.at(big_b, jet[keep], wa[keep])
        v, cov = _solve(big_a, big_b)
        d = v[jet] - a
        chi2 = np.einsum("ni,nij,nj->n", d, w, d)
        # each track against the vertex of the other tracks of its jet
        v_other = _solve(big_a[jet] - w, big_b[jet] - wa)[0]
        d = v_other - a
        chi2_other = np.where(keep, np.einsum("ni,nij,nj->n", d, w, d), -1.0)
        worst = np.full(n_jets, -1.0)
        np.maximum.at(worst, jet, chi2_other)
        drop = keep & (chi2_other == worst[jet]) & (chi2_other > SV_TRACK_CHI2) & (ntrk[jet] > 2)
        # one track per jet: the first of equal worst ones
        first = np.zeros(t.size, dtype=bool)
        idx = np.flatnonzero(drop)
        first[idx[np.unique(jet[idx], return_index=True)[1]]] = True
        if not first.any():
            bad = np.bincount(jet, weights=keep & (chi2 > SV_TRACK_CHI2), minlength=n_jets)
            return v, cov, keep, (ntrk >= 2) & (bad == 0)
        keep &= ~first


def _vertex_fields(
    c: Candidates,
    t: np.ndarray,
    jet: np.ndarray,
    n_jets: int,
    jet_p: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """One fitted vertex per jet from tracks ``t`` (:func:`_fit_vertices`): its fields,
    whether it passes the IVF-like selection (docs/flavour.md), whether it passes all of
    it but the V0 veto (a K0S candidate) and the tracks it used."""
    v, cov, used, good = _fit_vertices(c, t, jet, n_jets)
    j, tt = jet[used], t[used]
    ntrk = np.bincount(j, minlength=n_jets)
    p3 = np.stack(
        [np.bincount(j, weights=x[tt], minlength=n_jets) for x in (c.px, c.py, c.pz)]
    ).astype(np.float64)
    energy = np.bincount(
        j, weights=np.sqrt(c.px[tt] ** 2 + c.py[tt] ** 2 + c.pz[tt] ** 2 + _PION_MASS**2),
        minlength=n_jets,
    )  # fmt: skip
    mass = np.sqrt(np.maximum(energy**2 - (p3**2).sum(axis=0), 0.0))
    sv_pt = np.hypot(p3[0], p3[1])
    sv_eta = np.arcsinh(p3[2] / np.where(sv_pt > 0, sv_pt, 1.0))
    sv_phi = np.arctan2(p3[1], p3[0])
    jet_px, jet_py, jet_pz, jet_e = jet_p
    jet_pt = np.hypot(jet_px, jet_py)
    jet_eta, jet_phi = np.arcsinh(jet_pz / np.maximum(jet_pt, 1e-12)), np.arctan2(jet_py, jet_px)
    flight = flight_distances(v, cov)
    v_rho = np.hypot(v[:, 0], v[:, 1])
    v_eta = np.arcsinh(v[:, 2] / np.where(v_rho > 0, v_rho, 1.0))
    flight_dr = delta_r(v_eta, np.arctan2(v[:, 1], v[:, 0]), jet_eta, jet_phi)
    a, frame, s1, s2, _ = _track_frame(c, tt)
    pulls = np.einsum("ni,nik->nk", v[j] - a, frame) / np.stack([s1, s2], axis=1)
    chi2 = np.bincount(j, weights=(pulls**2).sum(axis=1), minlength=n_jets)
    ndof = 2 * ntrk - 3
    chi2_ndof = np.divide(chi2, ndof, out=np.zeros(n_jets), where=ndof > 0)
    fields = {
        "sv_mass": mass,
        "sv_pt": sv_pt,
        "sv_ntracks": ntrk,
        "sv_chi2ndof": chi2_ndof,
        "sv_dxy": flight["dxy"],
        "sv_dxysig": flight["dxysig"],
        "sv_d3d": flight["d3d"],
        "sv_d3dsig": flight["d3dsig"],
        "sv_costhetasvpv": cos_theta_flight(v, p3.T),
        "sv_deta": sv_eta - jet_eta,
        "sv_dphi": delta_phi(sv_phi, jet_phi),
        "sv_deltaR": delta_r(sv_eta, sv_phi, jet_eta, jet_phi),
        "sv_enratio": energy / np.maximum(jet_e, 1e-12),
    }
    k0s = (ntrk == 2) & (np.abs(mass - _K0S_MASS) < SV_K0S_WINDOW)
    selected = (
        good
        & (flight["dxy"] < SV_MAX_DXY)
        & (flight["dxysig"] > SV_MIN_DXYSIG)
        & (mass < SV_MAX_MASS)
        & (flight_dr < SV_MAX_FLIGHT_DR)
    )
    return fields, selected & ~k0s, selected & k0s, used


def _secondary_vertices(
    c: Candidates,
    counts: np.ndarray,
    idx: np.ndarray,
    jet_p: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, ak.Array | np.ndarray]:
    """Up to ``SV_MAX_PER_JET`` secondary vertices per jet (docs/flavour.md): the
    displaced tracks (``|d0|/sigma > SV_MIN_SIG``, pT > ``SV_MIN_PT``) are fitted to one
    vertex (:func:`_fit_vertices`), the tracks it left out to a second one; each vertex
    is kept if it passes the IVF-like selection. SVs are sorted by ``sv_dxysig``,
    descending. ``jet_nv0``: the vertices that passed all of the selection but the V0
    veto (two tracks at the K0S mass), so that the veto's effect can be measured."""
    n_jets = counts.size
    jet_of = owner_index(counts)
    pt = np.hypot(c.px[idx], c.py[idx])
    sig = np.abs(c.d0[idx]) / np.where(c.d0err[idx] > 0, c.d0err[idx], np.inf)
    disp = (c.charge[idx] != 0) & (sig > SV_MIN_SIG) & (pt > SV_MIN_PT)
    jet, t = jet_of[disp], idx[disp]
    found: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
    n_v0 = np.zeros(n_jets)
    for _ in range(SV_MAX_PER_JET):
        if t.size == 0:
            break
        fields, passes, v0, used = _vertex_fields(c, t, jet, n_jets, jet_p)
        found.append((fields, passes))
        n_v0 += v0
        jet, t = jet[~used], t[~used]
    jets = np.concatenate([np.flatnonzero(ok) for _, ok in found] or [np.zeros(0, np.int64)])
    values = {k: np.concatenate([f[k][ok] for f, ok in found] or [np.zeros(0)]) for k in SV_FIELDS}
    order = np.lexsort((-values["sv_dxysig"], jets)) if jets.size else jets
    per_jet = np.bincount(jets, minlength=n_jets).astype(np.int64)
    svs = ak.unflatten(ak.zip({k: v[order].astype(np.float32) for k, v in values.items()}), per_jet)
    return {**{k: svs[k] for k in SV_FIELDS}, "jet_nv0": n_v0.astype(np.float32)}


def build_jets(
    c: Candidates,
    sel: JetSelection,
    *,
    truth: TruthObjects | None = None,
    ghosts: Ghosts | None = None,
    flavour: int | None = None,
    with_sv: bool = False,
    truth_id: bool = False,
    columns: Mapping[str, np.ndarray] | None = None,
    rho_from: Candidates | None = None,
) -> dict[str, np.ndarray | ak.Array]:
    """The selected jets of a batch of events, one entry per jet, in the JetClass schema
    plus ``event`` (the event index within the batch).

    ``columns``: more per-candidate values, written as ``part_<name>`` (float32, like the
    JetClass particle branches). ``rho_from``: write ``jet_rho``, the :func:`event_rho` of
    these candidates of the jet's event (all reconstructed ones, whatever ``c`` is made
    of), the jet's active area ``jet_area`` and ``jet_pt_corr = jet_pt - rho * jet_area``
    (module docstring).

    ``truth``: a jet is kept only if it contains some truth object's axis and all its
    visible products within ``dR < radius``; with ``truth_id``, the PDG id of that object
    (the nearest, if several) is written as ``jet_parton_id``. ``ghosts`` + ``flavour``:
    keep only jets whose :func:`flavour_label` equals ``flavour``.
    """
    jets = cluster(c, sel, ghosts)
    eta = jets.rapidity if sel.use_rapidity else jets.eta
    pt = jets.pt
    keep = (pt >= sel.pt_min) & (pt < sel.pt_max) & (np.abs(eta) < sel.eta_max)
    matched = None
    if truth is not None:
        matched = _matched(jets, truth, sel.radius)
        keep &= matched >= 0
        matched = matched[keep]
    jets = jets.select(keep)
    if ghosts is not None and flavour is not None:
        same = flavour_label(jets, ghosts) == flavour
        jets = jets.select(same)
        matched = None if matched is None else matched[same]
    out = _jet_branches(c, jets, sel, with_sv, columns or {})
    if rho_from is not None:
        area = _jet_areas(c, jets, sel.radius)
        events, index = np.unique(jets.event, return_inverse=True)
        jet_rho = event_rho(rho_from, events)[index]
        out["jet_rho"] = jet_rho.astype(np.float32)
        out["jet_area"] = area.astype(np.float32)
        out["jet_pt_corr"] = (jets.pt - jet_rho * area).astype(np.float32)
    if truth_id:
        if truth is None or matched is None:
            raise ValueError("truth_id needs truth objects")
        out["jet_parton_id"] = truth.pid[matched].astype(np.int32)
    return out


def _jet_branches(
    c: Candidates,
    jets: ClusteredJets,
    sel: JetSelection,
    with_sv: bool,
    columns: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray | ak.Array]:
    real = jets.members >= 0
    jet_of = owner_index(jets.n_members)[real]
    flat = jets.members[real]
    counts = np.bincount(jet_of, minlength=jets.event.size)
    pt = np.hypot(c.px[flat], c.py[flat])
    # constituents sorted by pT, descending, within each jet
    order = np.lexsort((-pt, jet_of))
    flat, pt = flat[order], pt[order]
    # the jet four-momentum from its real constituents (ghosts carry 1e-18 of theirs)
    jet_eta, jet_phi = jets.eta, jets.phi
    p_eta = np.arcsinh(c.pz[flat] / np.maximum(pt, 1e-12))
    p_phi = np.arctan2(c.py[flat], c.px[flat])
    cat = c.category[flat]
    part = {
        "part_px": c.px[flat],
        "part_py": c.py[flat],
        "part_pz": c.pz[flat],
        "part_energy": c.e[flat],
        "part_deta": p_eta - np.repeat(jet_eta, counts),
        "part_dphi": delta_phi(p_phi, np.repeat(jet_phi, counts)),
        "part_charge": c.charge[flat],
        **type_flags(cat),
        "part_d0val": c.d0[flat],
        "part_d0err": c.d0err[flat],
        "part_dzval": c.dz[flat],
        "part_dzerr": c.dzerr[flat],
        **{f"part_{k}": v[flat] for k, v in columns.items()},
    }
    if with_sv:  # the tracks' impact parameters signed by the jet axis
        track = Track(
            c.d0[flat], c.dz[flat], c.d0err[flat], c.dzerr[flat], c.px[flat], c.py[flat], c.pz[flat]
        )
        jet_p = (np.repeat(v, counts) for v in (jets.px, jets.py, jets.pz))
        part.update({f"part_{k}": v for k, v in track_features(track, *jet_p).items()})
    jagged = ak.unflatten(ak.zip({k: v.astype(np.float32) for k, v in part.items()}), counts)
    out: dict[str, np.ndarray | ak.Array] = {k: jagged[k] for k in part}
    out.update(
        {
            "jet_pt": jets.pt.astype(np.float32),
            "jet_eta": jet_eta.astype(np.float32),
            "jet_phi": jet_phi.astype(np.float32),
            "jet_energy": jets.e.astype(np.float32),
            "jet_nparticles": counts.astype(np.float32),
        }
    )
    out.update(substructure(counts, c.px[flat], c.py[flat], c.pz[flat], c.e[flat], sel.radius))
    if with_sv:
        out.update(_secondary_vertices(c, counts, flat, (jets.px, jets.py, jets.pz, jets.e)))
    out["event"] = jets.event.astype(np.int64)
    return out
