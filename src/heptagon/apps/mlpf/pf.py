"""The rule-based particle-flow baseline: detector elements -> a particle list per event.

The algorithm (vectorised over a batch of events), on the elements of
:mod:`heptagon.generate.elements`:

1. **Link** each track to the tower nearest its calorimeter entry point
   (``Track_etaCalo, Track_phiCalo``) among the tower of that cell and its eight
   neighbours, within ``link_dr``.
2. **Identify** tracks: a muon has a muon-system hit; an electron's tower has
   ``E_ecal >= electron_ecal_min * p`` and ``E_hcal <= electron_hcal_max * E_ecal``;
   every other track is a charged hadron (pion mass). Each track becomes one particle
   with the track's momentum.
3. **Subtract** the expected charged energy per tower: electrons' momenta from ECAL,
   charged hadrons' from HCAL. What is left is a neutral particle only if it exceeds
   ``significance`` times the calorimeter resolution at the expected energy (and the
   layer's threshold): leftover ECAL becomes a photon, leftover HCAL a neutral hadron
   (its energy through the calibration ``nh_calibration``, see
   :func:`calibrate_neutral_hadrons`), both massless at the tower centre.

The output, :class:`PFParticles`, is the format MLPF's output is decoded into as well, so
the metrics treat both alike; each particle keeps the index of its element in the event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from heptagon.generate.detector import ECAL, FORWARD, HCAL, DetectorConfig, calorimeter_resolution
from heptagon.generate.elements import (
    CLS_CH,
    CLS_ELECTRON,
    CLS_MUON,
    CLS_NH,
    CLS_PHOTON,
    Elements,
)
from heptagon.physics.arrays import owner_index
from heptagon.physics.kinematics import delta_r

__all__ = [
    "PFConfig",
    "PFLinks",
    "PFParticles",
    "calibrate_neutral_hadrons",
    "link_elements",
    "rule_based_pf",
]

#: masses (GeV) given to charged particles by class
_MASS = {CLS_CH: 0.13957, CLS_ELECTRON: 0.000511, CLS_MUON: 0.10566}


class PFConfig(BaseModel):
    """Parameters of the rule-based PF (GeV, radians)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    link_dr: float = Field(0.1, gt=0)
    electron_ecal_min: float = Field(0.5, gt=0)
    electron_hcal_max: float = Field(0.1, ge=0)
    significance: float = Field(2.0, ge=0)
    #: (reconstructed neutral-hadron energy, factor) points, interpolated; empty: factor 1
    nh_calibration: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class PFParticles:
    """Reconstructed particles of a batch of events: flat arrays, ``counts`` per event.

    ``cls`` indexes :data:`heptagon.generate.elements.CLASSES`; ``element`` is the index of
    the particle's source element within its event (tracks first, then towers)."""

    counts: np.ndarray
    cls: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray
    charge: np.ndarray
    element: np.ndarray

    @property
    def event(self) -> np.ndarray:
        """The event index of each particle."""
        return owner_index(self.counts)


def _cells(
    det: DetectorConfig, event: np.ndarray, eta: np.ndarray, phi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(event*2 + forward, ieta, iphi, nphi) of the tower cell holding each point."""
    fwd = np.abs(eta) >= det.calo_eta_max
    size = np.where(fwd, det.forward_cell, det.hcal_cell)
    nphi = np.round(2 * np.pi / size).astype(np.int64)
    ieta = np.floor(eta / size).astype(np.int64)
    iphi = np.floor((phi + np.pi) / (2 * np.pi) * nphi).astype(np.int64) % nphi
    return event * 2 + fwd, ieta, iphi, nphi


def _key(group: np.ndarray, ieta: np.ndarray, iphi: np.ndarray) -> np.ndarray:
    return np.asarray((group * 1_000_003 + (ieta + 500_000)) * 4096 + iphi)


def _link(det: DetectorConfig, cfg: PFConfig, el: Elements) -> tuple[np.ndarray, np.ndarray]:
    """The (flat) tower index linked to each track, -1 where none is near, and the
    distance to it (``link_dr`` where none)."""
    tw_event = owner_index(el.n_towers)
    tr_event = owner_index(el.n_tracks)
    teta, tphi = el.tower["eta"].astype(np.float64), el.tower["phi"].astype(np.float64)
    g, ie, ip, _ = _cells(det, tw_event, teta, tphi)
    keys = _key(g, ie, ip)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    xeta = el.track["etaCalo"].astype(np.float64)
    xphi = el.track["phiCalo"].astype(np.float64)
    g, ie, ip, nphi = _cells(det, tr_event, xeta, xphi)
    best = np.full(xeta.size, -1, dtype=np.int64)
    best_dr = np.full(xeta.size, cfg.link_dr)
    if keys.size == 0:
        return best, best_dr
    for de in (-1, 0, 1):
        for dp in (-1, 0, 1):
            k = _key(g, ie + de, (ip + dp) % nphi)
            pos = np.minimum(np.searchsorted(sorted_keys, k), keys.size - 1)
            hit = sorted_keys[pos] == k
            cand = order[pos]
            dr = np.where(hit, delta_r(xeta, xphi, teta[cand], tphi[cand]), np.inf)
            better = dr < best_dr
            best = np.where(better, cand, best)
            best_dr = np.where(better, dr, best_dr)
    return best, best_dr


def _calibrated(cfg: PFConfig, energy: np.ndarray) -> np.ndarray:
    if not cfg.nh_calibration:
        return energy
    x, f = np.array(cfg.nh_calibration).T
    return np.asarray(energy * np.interp(energy, x, f))


@dataclass(frozen=True)
class PFLinks:
    """Steps 1-3 of the rule-based PF (module docstring), before particles are made: per
    track (flat) the linked tower and the identification, per tower (flat) the expected
    charged energy and what is left of it. The MLPF inputs reuse them as features."""

    #: per track: the linked tower (flat index, -1: none) and the distance to it
    link: np.ndarray
    link_dr: np.ndarray
    #: per track: momentum (GeV), the linked tower's ECAL and HCAL energies (0: no link)
    p: np.ndarray
    ecal_linked: np.ndarray
    hcal_linked: np.ndarray
    #: per track: identified as a muon / an electron
    muon: np.ndarray
    electron: np.ndarray
    #: per tower: the energy left in ECAL and HCAL after subtracting the linked tracks'
    #: expected energy, and the calorimeter resolution at that expected energy
    left_ecal: np.ndarray
    left_hcal: np.ndarray
    sigma_ecal: np.ndarray
    sigma_hcal: np.ndarray
    #: per tower: a significant leftover (a photon / a neutral hadron)
    photon: np.ndarray
    neutral: np.ndarray


def link_elements(
    el: Elements, detector: DetectorConfig | None = None, config: PFConfig | None = None
) -> PFLinks:
    """Link, identify and subtract (steps 1-3 of the module docstring) on ``el``."""
    det = detector or DetectorConfig()
    cfg = config or PFConfig()
    n_tw = el.tower["eta"].size
    tr, tw = el.track, el.tower
    link, link_dr = _link(det, cfg, el)
    linked = link >= 0
    safe = np.maximum(link, 0)
    p = tr["pt"].astype(np.float64) * np.cosh(tr["eta"].astype(np.float64))
    e_ecal, e_hcal = tw["eEcal"].astype(np.float64), tw["eHcal"].astype(np.float64)
    # the linked tower's energies (index -1, no link, reads an appended 0)
    ecal_l, hcal_l = np.append(e_ecal, 0.0)[link], np.append(e_hcal, 0.0)[link]
    muon = tr["muonHit"].astype(bool)
    electron = (
        ~muon
        & linked
        & (ecal_l >= cfg.electron_ecal_min * p)
        & (hcal_l <= cfg.electron_hcal_max * ecal_l)
    )
    hadron = ~muon & ~electron
    # expected charged energy per tower, and what is left
    exp_e = np.bincount(safe[electron & linked], weights=p[electron & linked], minlength=n_tw)
    exp_h = np.bincount(safe[hadron & linked], weights=p[hadron & linked], minlength=n_tw)
    t_eta = tw["eta"].astype(np.float64)
    fwd = np.abs(t_eta) >= det.calo_eta_max
    sig_e = np.where(exp_e > 0, calorimeter_resolution(det, np.full(n_tw, ECAL), exp_e, t_eta), 0.0)
    h_layer = np.where(fwd, FORWARD, HCAL)
    sig_h = np.where(exp_h > 0, calorimeter_resolution(det, h_layer, exp_h, t_eta), 0.0)
    left_e, left_h = e_ecal - exp_e, e_hcal - exp_h
    photon = left_e > np.maximum(cfg.significance * sig_e, np.where(exp_e > 0, det.ecal_e_min, 0))
    h_min = np.where(fwd, det.forward_e_min, det.hcal_e_min)
    neutral = left_h > np.maximum(cfg.significance * sig_h, np.where(exp_h > 0, h_min, 0))
    return PFLinks(
        link=link,
        link_dr=link_dr,
        p=p,
        ecal_linked=ecal_l,
        hcal_linked=hcal_l,
        muon=muon,
        electron=electron,
        left_ecal=left_e,
        left_hcal=left_h,
        sigma_ecal=sig_e,
        sigma_hcal=sig_h,
        photon=photon,
        neutral=neutral,
    )


def rule_based_pf(
    el: Elements, detector: DetectorConfig | None = None, config: PFConfig | None = None
) -> PFParticles:
    """The particles of each event of ``el`` (see the module docstring)."""
    det = detector or DetectorConfig()
    cfg = config or PFConfig()
    n = len(el.n_tracks)
    n_tw = el.tower["eta"].size
    tr, tw = el.track, el.tower
    links = link_elements(el, det, cfg)
    p, muon, electron = links.p, links.muon, links.electron
    left_e, left_h = links.left_ecal, links.left_hcal
    pt = tr["pt"].astype(np.float64)
    eta = tr["eta"].astype(np.float64)
    t_eta = tw["eta"].astype(np.float64)
    tr_cls = np.where(muon, CLS_MUON, np.where(electron, CLS_ELECTRON, CLS_CH))
    mass = np.select([muon, electron], [_MASS[CLS_MUON], _MASS[CLS_ELECTRON]], _MASS[CLS_CH])
    # assemble: tracks, then tower photons, then tower neutral hadrons; sorted by event
    tr_event = owner_index(el.n_tracks)
    tw_event = owner_index(el.n_towers)
    tr_local = np.arange(tr_event.size) - np.repeat(
        np.cumsum(el.n_tracks) - el.n_tracks, el.n_tracks
    )
    tw_local = (
        np.arange(n_tw)
        - np.repeat(np.cumsum(el.n_towers) - el.n_towers, el.n_towers)
        + np.repeat(el.n_tracks, el.n_towers)
    )
    ph, nh = np.flatnonzero(links.photon), np.flatnonzero(links.neutral)
    nh_e = _calibrated(cfg, left_h[nh])
    event = np.concatenate([tr_event, tw_event[ph], tw_event[nh]])
    order = np.argsort(event, kind="stable")

    def cat(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.concatenate([a, b, c])[order]

    t_phi = tw["phi"].astype(np.float64)
    return PFParticles(
        counts=np.bincount(event, minlength=n),
        cls=cat(tr_cls, np.full(ph.size, CLS_PHOTON), np.full(nh.size, CLS_NH)),
        pt=cat(pt, left_e[ph] / np.cosh(t_eta[ph]), nh_e / np.cosh(t_eta[nh])),
        eta=cat(eta, t_eta[ph], t_eta[nh]),
        phi=cat(tr["phi"].astype(np.float64), t_phi[ph], t_phi[nh]),
        energy=cat(np.sqrt(p**2 + mass**2), left_e[ph], nh_e),
        charge=cat(tr["charge"].astype(np.float64), np.zeros(ph.size), np.zeros(nh.size)),
        element=cat(tr_local, tw_local[ph], tw_local[nh]),
    )


def calibrate_neutral_hadrons(
    true_energy: np.ndarray, reco_energy: np.ndarray, bins: int = 8
) -> tuple[tuple[float, float], ...]:
    """Calibration points for :attr:`PFConfig.nh_calibration` from single neutral hadrons:
    the median ``E_true / E_reco`` in quantile bins of ``E_reco`` (at the bins' medians),
    which undoes the bias of the thresholds and the significance cut at low energy."""
    edges = np.quantile(reco_energy, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, reco_energy, side="right") - 1, 0, bins - 1)
    points = []
    for b in range(bins):
        sel = which == b
        if sel.sum() >= 10:
            ratio = float(np.median(true_energy[sel] / reco_energy[sel]))
            points.append((float(np.median(reco_energy[sel])), ratio))
    return tuple(points)
