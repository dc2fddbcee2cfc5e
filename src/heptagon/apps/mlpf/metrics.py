"""Particle-flow metrics, the same for MLPF and the rule-based PF (on :class:`PFParticles`).

- per element: the confusion matrix of target class vs reconstructed class (an element's
  reconstructed class is that of its most energetic particle, ``none`` without one);
  per class the efficiency (true class ``c`` reconstructed as ``c``) and the fake rate
  (reconstructed as ``c`` but truly another class);
- particle energy response per class on elements whose target and reconstruction agree;
- anti-kT R = 0.4 jets (FastJet) of the particles matched to the generator jets
  (``GenJet_*``, nearest within ``dR < 0.2``): pT response median and IQR;
- missing transverse momentum against ``GenMET``: response median and IQR of
  ``MET / GenMET`` and the resolution of its x and y components (IQR / 1.349, GeV).

Response summaries come from :func:`heptagon.physics.metrics.response` and the confusion
matrix from :func:`heptagon.physics.metrics.confusion_matrix`.

With pile-up, :func:`with_puppi` applies PUPPI (:mod:`heptagon.physics.puppi`, the same
weights as ``heptagon generate --mitigation puppi``) to the reconstructed particles before
the jets and MET are made. An element sample records no vertices, so the vertex
association is CMS PUPPI's own rule for tracks not used in a vertex fit: a charged
particle made from a track is from the leading vertex (the hard scatter, z = 0) when its
track's ``|dz| < dz_cut_mm``, from pile-up otherwise; a charged particle without a track
is weighted like a neutral one.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import fastjet
import numpy as np

from heptagon.apps.mlpf.pf import PFParticles
from heptagon.generate.elements import CLASSES, Elements
from heptagon.generate.jets import silence_fastjet_banner
from heptagon.physics.kinematics import delta_r
from heptagon.physics.metrics import confusion_matrix, response
from heptagon.physics.puppi import (
    FROM_PV_NONE,
    FROM_PV_USED_IN_FIT,
    MitigationConfig,
    puppi_weights,
)

__all__ = [
    "element_classes",
    "jet_response",
    "met_metrics",
    "particle_metrics",
    "pf_metrics",
    "reco_jets",
    "with_puppi",
]

_N = len(CLASSES)
#: IQR of a unit Gaussian
_IQR_SIGMA = 1.349


def element_classes(parts: PFParticles, el: Elements) -> tuple[np.ndarray, np.ndarray]:
    """(reconstructed class, energy) of each element: its most energetic particle's, or
    ``none`` and 0 (flat, in element order)."""
    n_el = el.n_tracks + el.n_towers
    start = np.cumsum(n_el) - n_el
    flat = start[parts.event] + parts.element
    order = np.lexsort((parts.energy, flat))
    last = np.r_[flat[order][1:] != flat[order][:-1], True] if flat.size else np.zeros(0, bool)
    top = order[last]
    cls = np.zeros(int(n_el.sum()), dtype=np.int64)
    energy = np.zeros(int(n_el.sum()))
    cls[flat[top]] = parts.cls[top]
    energy[flat[top]] = parts.energy[top]
    return cls, energy


def particle_metrics(parts: PFParticles, el: Elements) -> dict[str, Any]:
    """Confusion matrix, per-class efficiency / fake rate and energy response."""
    true = el.target["class"].astype(np.int64)
    pred, energy = element_classes(parts, el)
    cm = confusion_matrix(true, pred, _N)
    out: dict[str, Any] = {"confusion": cm.tolist(), "per_class": {}}
    for c in range(1, _N):
        n_true, n_pred = cm[c].sum(), cm[:, c].sum()
        both = (true == c) & (pred == c)
        entry: dict[str, Any] = {
            "n_true": int(n_true),
            "efficiency": float(cm[c, c] / n_true) if n_true else None,
            "fake_rate": float(1 - cm[c, c] / n_pred) if n_pred else None,
        }
        if both.sum() >= 2:
            r = response(energy[both], el.target["energy"][both])
            entry["energy_response_median"], entry["energy_response_iqr"] = r.median, r.iqr
        out["per_class"][CLASSES[c]] = entry
    return out


def reco_jets(parts: PFParticles, radius: float = 0.4, pt_min: float = 5.0) -> ak.Array:
    """Anti-kT jets (records ``pt, eta, phi`` per event) of the particles."""
    silence_fastjet_banner()
    px = parts.pt * np.cos(parts.phi)
    py = parts.pt * np.sin(parts.phi)
    pz = parts.pt * np.sinh(parts.eta)
    vecs = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": parts.energy}), parts.counts)
    seq = fastjet.ClusterSequence(vecs, fastjet.JetDefinition(fastjet.antikt_algorithm, radius))
    jets = seq.inclusive_jets(min_pt=pt_min)
    pt = np.hypot(jets.px, jets.py)
    return ak.zip(
        {
            "pt": pt,
            "eta": np.arcsinh(jets.pz / np.maximum(pt, 1e-12)),
            "phi": np.arctan2(jets.py, jets.px),
        }
    )


def jet_response(
    parts: PFParticles,
    el: Elements,
    pt_min: float = 25.0,
    eta_max: float = 2.5,
    max_dr: float = 0.2,
) -> dict[str, Any]:
    """pT response of the reconstructed jets matched to generator jets above ``pt_min``
    within ``|eta| < eta_max`` (the nearest reconstructed jet within ``max_dr``)."""
    reco = reco_jets(parts)
    gen = ak.zip({k: el.event[f"GenJet_{k}"] for k in ("pt", "eta", "phi")})
    gen = gen[(gen.pt > pt_min) & (np.abs(gen.eta) < eta_max)]
    pairs = ak.cartesian({"g": gen, "r": reco}, nested=True)
    dr = delta_r(pairs.g.eta, pairs.g.phi, pairs.r.eta, pairs.r.phi)
    best = ak.argmin(dr, axis=2, keepdims=True)
    best_dr = ak.fill_none(ak.flatten(dr[best], axis=2), np.inf)
    best_pt = ak.fill_none(ak.flatten(pairs.r.pt[best], axis=2), 0.0)
    ok = best_dr < max_dr
    g_pt = ak.to_numpy(ak.flatten(gen.pt[ok])).astype(np.float64)
    r_pt = ak.to_numpy(ak.flatten(best_pt[ok])).astype(np.float64)
    n_gen = int(ak.sum(ak.num(gen)))
    out: dict[str, Any] = {"n_gen": n_gen, "matched": float(g_pt.size / n_gen) if n_gen else None}
    if g_pt.size >= 2:
        r = response(r_pt, g_pt)
        out.update(response_median=r.median, response_iqr=r.iqr, resolution=r.resolution)
    return out


def met_metrics(parts: PFParticles, el: Elements) -> dict[str, Any]:
    """MET of the particles against ``GenMET``: response and component resolution."""
    n = len(parts.counts)
    ev = parts.event
    mx = -np.bincount(ev, weights=parts.pt * np.cos(parts.phi), minlength=n)
    my = -np.bincount(ev, weights=parts.pt * np.sin(parts.phi), minlength=n)
    gpt = ak.to_numpy(el.event["GenMET_pt"]).astype(np.float64)
    gphi = ak.to_numpy(el.event["GenMET_phi"]).astype(np.float64)
    dx = np.concatenate([mx - gpt * np.cos(gphi), my - gpt * np.sin(gphi)])
    q25, q75 = np.quantile(dx, [0.25, 0.75])
    out: dict[str, Any] = {"resolution_xy_gev": float((q75 - q25) / _IQR_SIGMA)}
    sel = gpt > 20.0
    if sel.sum() >= 2:
        r = response(np.hypot(mx, my)[sel], gpt[sel])
        out.update(response_median=r.median, response_iqr=r.iqr)
    return out


def pf_metrics(parts: PFParticles, el: Elements) -> dict[str, Any]:
    """All of the above in one JSON-ready dict."""
    return {
        "particles": particle_metrics(parts, el),
        "jets": jet_response(parts, el),
        "met": met_metrics(parts, el),
    }


def with_puppi(
    parts: PFParticles, el: Elements, mu: float, cfg: MitigationConfig | None = None
) -> PFParticles:
    """The particles PUPPI keeps, four-momenta times their weights (module docstring);
    ``1 + mu`` vertices per event in the neutral pT cut."""
    cfg = cfg or MitigationConfig()
    event = parts.event
    n_tracks = el.n_tracks[event]
    from_track = (parts.charge != 0) & (parts.element < n_tracks)
    track_start = np.cumsum(el.n_tracks) - el.n_tracks
    dz = np.zeros(parts.pt.size)
    dz[from_track] = el.track["dz"][track_start[event[from_track]] + parts.element[from_track]]
    from_pv = np.where(np.abs(dz) < cfg.dz_cut_mm, FROM_PV_USED_IN_FIT, FROM_PV_NONE)
    weight = puppi_weights(
        parts.counts,
        parts.pt * np.cos(parts.phi),
        parts.pt * np.sin(parts.phi),
        parts.pt * np.sinh(parts.eta),
        np.where(from_track, parts.charge, 0.0),
        np.where(from_track, from_pv, FROM_PV_USED_IN_FIT),
        dz,
        np.full(len(parts.counts), 1 + round(mu)),
        cfg,
    )
    keep = weight > 0
    return PFParticles(
        counts=np.bincount(event[keep], minlength=len(parts.counts)),
        cls=parts.cls[keep],
        pt=parts.pt[keep] * weight[keep],
        eta=parts.eta[keep],
        phi=parts.phi[keep],
        energy=parts.energy[keep] * weight[keep],
        charge=parts.charge[keep],
        element=parts.element[keep],
    )
