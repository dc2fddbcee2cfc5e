"""Jets from reconstructed candidates: clustering (FastJet anti-kT), selection, truth
matching, substructure (soft-drop mass, N-subjettiness), flavour labels by ghost
association and a simple secondary-vertex finder, written in the JetClass schema.

All work is vectorised over a batch of events with awkward / numpy; FastJet does the
clustering, grooming and N-subjettiness in C++.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import awkward as ak
import fastjet
import numpy as np
import vector

from heptagon.generate.detector import (
    CAT_CHARGED_HADRON,
    CAT_ELECTRON,
    CAT_MUON,
    CAT_NEUTRAL_HADRON,
    CAT_PHOTON,
    Candidates,
)
from heptagon.generate.truth import Ghosts
from heptagon.physics.kinematics import delta_phi, delta_r

__all__ = ["JetSelection", "build_jets", "flavour_label", "substructure"]

vector.register_awkward()

#: leading jets per event that are considered (after clustering, before the window)
JETS_PER_EVENT = 2
#: minimum displaced-track significance |d0|/sigma(d0) and pT (GeV) for vertexing
SV_MIN_SIG = 3.0
SV_MIN_PT = 1.0
_PION_MASS = 0.13957
_GHOST_SCALE = 1e-18
FLAVOURS = ("b", "c", "uds", "g")

_banner_silenced = False


def _silence_banner() -> None:
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
            fastjet.ClusterSequence(one, fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4))
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


def _to_awkward(counts: np.ndarray, fields: dict[str, np.ndarray]) -> ak.Array:
    return ak.unflatten(ak.zip(fields, with_name="Momentum4D"), counts)


def _cluster(
    c: Candidates, sel: JetSelection, ghosts: Ghosts | None
) -> tuple[ak.Array, ak.Array]:
    """Cluster candidates (plus ghosts); return jets, their constituents' global candidate
    indices (ghosts are negative: ``-1 - ghost index``), both ``[event][jet]``, sorted by pT
    and cut to the leading ``JETS_PER_EVENT`` jets above ``pt_min``."""
    _silence_banner()
    index = np.arange(c.px.size, dtype=np.int64)
    fields = {"px": c.px, "py": c.py, "pz": c.pz, "E": c.e, "index": index}
    parts = _to_awkward(c.counts, fields)
    if ghosts is not None:
        g = _to_awkward(
            ghosts.counts,
            {
                "px": ghosts.px * _GHOST_SCALE,
                "py": ghosts.py * _GHOST_SCALE,
                "pz": ghosts.pz * _GHOST_SCALE,
                "E": ghosts.e * _GHOST_SCALE,
                "index": -1 - np.arange(ghosts.px.size, dtype=np.int64),
            },
        )
        parts = ak.concatenate([parts, g], axis=1)
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, sel.radius)
    seq = fastjet.ClusterSequence(parts, jet_def)
    jets = seq.inclusive_jets(min_pt=sel.pt_min)
    local = seq.constituent_index(min_pt=sel.pt_min)
    order = ak.argsort(jets.pt, axis=1, ascending=False)[:, :JETS_PER_EVENT]
    jets, local = jets[order], local[order]
    return jets, _gather(parts.index, local)


def _gather(values: ak.Array, local: ak.Array) -> ak.Array:
    """``values[event][local[event][jet][k]]`` as ``[event][jet][k]``."""
    counts = ak.to_numpy(ak.num(values)).astype(np.int64)
    start = np.cumsum(counts) - counts
    flat_values = ak.to_numpy(ak.flatten(values))
    per_jet = ak.flatten(local + start, axis=1)
    got = ak.unflatten(flat_values[ak.to_numpy(ak.flatten(per_jet))], ak.num(per_jet))
    return ak.unflatten(got, ak.num(local))


def flavour_label(ghost_kind: ak.Array, ghost_pt: ak.Array, ghost_pid: ak.Array) -> ak.Array:
    """Hadron-based flavour of each jet from its ghosts ``[jet][ghost]``: ``b`` if a
    weakly-decaying b hadron is inside, else ``c`` for a c hadron, else from the hardest
    final-shower parton: ``g`` for a gluon, ``uds`` otherwise (index into ``FLAVOURS``)."""
    has_b = ak.any(ghost_kind == Ghosts.B_HADRON, axis=1)
    has_c = ak.any(ghost_kind == Ghosts.C_HADRON, axis=1)
    parton_pt = ak.where(ghost_kind == Ghosts.PARTON, ghost_pt, -1.0)
    hardest = ak.argmax(parton_pt, axis=1, keepdims=True)
    gluon = ak.fill_none(ak.firsts(ghost_pid[hardest]) == 21, False)
    gluon = gluon & ak.fill_none(ak.max(parton_pt, axis=1) > 0, False)
    label = np.where(gluon, 3, 2)
    label = np.where(ak.to_numpy(has_c), 1, label)
    return np.where(ak.to_numpy(has_b), 0, label)


def substructure(
    px: ak.Array, py: ak.Array, pz: ak.Array, e: ak.Array, radius: float
) -> dict[str, np.ndarray]:
    """Soft-drop mass (beta = 0, z_cut = 0.1, R0 = radius) and N-subjettiness tau1..tau4
    (beta = 1, normalised measure, one-pass kT axes) of each jet ``[jet][constituent]``.
    Constituents are re-clustered with C/A at R = max(1.0, 2 radius) so none is lost."""
    cons = ak.zip({"px": px, "py": py, "pz": pz, "E": e}, with_name="Momentum4D")
    n = len(cons)
    if n == 0:
        empty = np.zeros(0, dtype=np.float32)
        return {"jet_sdmass": empty, **{f"jet_tau{i}": empty for i in range(1, 5)}}
    seq = fastjet.ClusterSequence(
        cons, fastjet.JetDefinition(fastjet.cambridge_algorithm, max(1.0, 2 * radius))
    )
    sd = seq.exclusive_jets_softdrop_grooming(njets=1, beta=0.0, symmetry_cut=0.1, R0=radius)
    tau = np.asarray(seq.njettiness(njets=[1, 2, 3, 4], beta=1.0, R0=radius)).reshape(n, 4)
    out = {"jet_sdmass": np.asarray(sd.msoftdrop, dtype=np.float32)}
    for i in range(4):
        out[f"jet_tau{i + 1}"] = tau[:, i].astype(np.float32)
    return out


def _secondary_vertices(
    c: Candidates, members: ak.Array, jet_eta: np.ndarray, jet_phi: np.ndarray
) -> dict[str, ak.Array]:
    """One secondary vertex per jet from its displaced tracks (``|d0|/sigma > SV_MIN_SIG``,
    pT > ``SV_MIN_PT``), when there are at least two: its position is the pT-weighted mean
    of the tracks' reconstructed production points, its flight distance ``sv_d3d`` the
    distance from the primary vertex (the origin) with the error of that weighted mean
    (``sv_d3dsig`` = d3d / error); mass and pT from the tracks (pion mass)."""
    idx = ak.to_numpy(ak.flatten(members))
    jet_of = np.repeat(np.arange(len(members)), ak.to_numpy(ak.num(members)))
    pt = np.hypot(c.px[idx], c.py[idx])
    sig = np.abs(c.d0[idx]) / np.where(c.d0err[idx] > 0, c.d0err[idx], np.inf)
    disp = (c.charge[idx] != 0) & (sig > SV_MIN_SIG) & (pt > SV_MIN_PT)
    j, t = jet_of[disp], idx[disp]
    n_jets = len(members)
    ntrk = np.bincount(j, minlength=n_jets)
    w = pt[disp]
    sw = np.bincount(j, weights=w, minlength=n_jets)
    safe = np.where(sw > 0, sw, 1.0)
    pos = [np.bincount(j, weights=w * v[t], minlength=n_jets) / safe for v in (c.vx, c.vy, c.vz)]
    var = np.bincount(j, weights=w**2 * (c.d0err[t] ** 2 + c.dzerr[t] ** 2), minlength=n_jets)
    d3d = np.sqrt(pos[0] ** 2 + pos[1] ** 2 + pos[2] ** 2)
    d3d_err = np.sqrt(var) / safe
    p3 = [np.bincount(j, weights=v[t], minlength=n_jets) for v in (c.px, c.py, c.pz)]
    energy = np.bincount(
        j, weights=np.sqrt(c.px[t] ** 2 + c.py[t] ** 2 + c.pz[t] ** 2 + _PION_MASS**2),
        minlength=n_jets,
    )
    mass = np.sqrt(np.maximum(energy**2 - p3[0] ** 2 - p3[1] ** 2 - p3[2] ** 2, 0.0))
    sv_pt = np.hypot(p3[0], p3[1])
    sv_eta = np.arcsinh(p3[2] / np.where(sv_pt > 0, sv_pt, 1.0))
    sv_phi = np.arctan2(p3[1], p3[0])
    has = ntrk >= 2
    fields = {
        "sv_mass": mass,
        "sv_pt": sv_pt,
        "sv_ntracks": ntrk,
        "sv_d3d": d3d,
        "sv_d3dsig": d3d / np.where(d3d_err > 0, d3d_err, np.inf),
        "sv_deta": sv_eta - jet_eta,
        "sv_dphi": delta_phi(sv_phi, jet_phi),
    }
    counts = has.astype(np.int64)
    return {k: ak.unflatten(v[has].astype(np.float32), counts) for k, v in fields.items()}


def build_jets(
    c: Candidates,
    sel: JetSelection,
    *,
    truth: ak.Array | None = None,
    ghosts: Ghosts | None = None,
    flavour: int | None = None,
    with_sv: bool = False,
) -> dict[str, np.ndarray | ak.Array]:
    """The selected jets of a batch of events, one entry per jet, in the JetClass schema
    plus ``event`` (the event index within the batch).

    ``truth``: truth objects ``[event][object]`` (see :mod:`heptagon.generate.truth`); a jet
    is kept only if some object and all its products lie within ``dR < radius``.
    ``ghosts`` + ``flavour``: keep only jets whose :func:`flavour_label` equals ``flavour``.
    """
    jets, members = _cluster(c, sel, ghosts)
    eta = jets.rapidity if sel.use_rapidity else jets.eta
    keep = (jets.pt >= sel.pt_min) & (jets.pt < sel.pt_max) & (abs(eta) < sel.eta_max)
    if truth is not None:
        pairs = ak.cartesian({"j": jets, "o": truth}, axis=1, nested=True)
        dr_axis = delta_r(pairs.j.eta, pairs.j.phi, pairs.o.eta, pairs.o.phi)
        dr_prod = ak.max(
            delta_r(pairs.j.eta, pairs.j.phi, pairs.o.products.eta, pairs.o.products.phi),
            axis=-1,
        )
        matched = (dr_axis < sel.radius) & ak.fill_none(dr_prod < sel.radius, False)
        keep = keep & ak.any(matched, axis=-1)
    jets, members = jets[keep], members[keep]
    event = np.repeat(np.arange(len(jets)), ak.to_numpy(ak.num(jets)))
    jets, members = ak.flatten(jets), ak.flatten(members, axis=1)
    if ghosts is not None:
        gidx = -1 - members[members < 0]
        label = flavour_label(
            ak.unflatten(ghosts.kind[ak.flatten(gidx)], ak.num(gidx)),
            ak.unflatten(np.hypot(ghosts.px, ghosts.py)[ak.flatten(gidx)], ak.num(gidx)),
            ak.unflatten(ghosts.pid[ak.flatten(gidx)], ak.num(gidx)),
        )
        if flavour is not None:
            chosen = label == flavour
            jets, members, event = jets[chosen], members[chosen], event[chosen]
    members = members[members >= 0]
    return _jet_branches(c, jets, members, event, sel, with_sv)


def _jet_branches(
    c: Candidates,
    jets: ak.Array,
    members: ak.Array,
    event: np.ndarray,
    sel: JetSelection,
    with_sv: bool,
) -> dict[str, np.ndarray | ak.Array]:
    counts = ak.to_numpy(ak.num(members))
    flat = ak.to_numpy(ak.flatten(members))
    pt = np.hypot(c.px[flat], c.py[flat])
    # constituents sorted by pT, descending, within each jet
    jet_of = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((-pt, jet_of))
    flat, pt = flat[order], pt[order]
    jet_pt = ak.to_numpy(jets.pt)
    jet_eta = ak.to_numpy(jets.eta)
    jet_phi = ak.to_numpy(jets.phi)
    jet_e = ak.to_numpy(jets.E)
    p_eta = np.arcsinh(c.pz[flat] / np.maximum(pt, 1e-12))
    p_phi = np.arctan2(c.py[flat], c.px[flat])
    cat = c.category[flat]

    def jag(x: np.ndarray) -> ak.Array:
        return ak.unflatten(x.astype(np.float32), counts)

    out: dict[str, np.ndarray | ak.Array] = {
        "part_px": jag(c.px[flat]),
        "part_py": jag(c.py[flat]),
        "part_pz": jag(c.pz[flat]),
        "part_energy": jag(c.e[flat]),
        "part_deta": jag(p_eta - np.repeat(jet_eta, counts)),
        "part_dphi": jag(delta_phi(p_phi, np.repeat(jet_phi, counts))),
        "part_charge": jag(c.charge[flat]),
        "part_isChargedHadron": jag(cat == CAT_CHARGED_HADRON),
        "part_isNeutralHadron": jag(cat == CAT_NEUTRAL_HADRON),
        "part_isPhoton": jag(cat == CAT_PHOTON),
        "part_isElectron": jag(cat == CAT_ELECTRON),
        "part_isMuon": jag(cat == CAT_MUON),
        "part_d0val": jag(c.d0[flat]),
        "part_d0err": jag(c.d0err[flat]),
        "part_dzval": jag(c.dz[flat]),
        "part_dzerr": jag(c.dzerr[flat]),
        "jet_pt": jet_pt.astype(np.float32),
        "jet_eta": jet_eta.astype(np.float32),
        "jet_phi": jet_phi.astype(np.float32),
        "jet_energy": jet_e.astype(np.float32),
        "jet_nparticles": counts.astype(np.float32),
    }
    out.update(
        substructure(
            ak.unflatten(c.px[flat], counts),
            ak.unflatten(c.py[flat], counts),
            ak.unflatten(c.pz[flat], counts),
            ak.unflatten(c.e[flat], counts),
            sel.radius,
        )
    )
    if with_sv:
        out.update(_secondary_vertices(c, ak.unflatten(flat, counts), jet_eta, jet_phi))
    out["event"] = event.astype(np.int64)
    return out
