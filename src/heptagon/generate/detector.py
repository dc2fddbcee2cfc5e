"""The parametric detector response: the one place where hadron-level particles become
reconstructed particle-flow candidates (used by jet and event samples alike).

Pure array functions over flat numpy arrays plus per-event counts; every number is a field
of :class:`DetectorConfig` and is recorded in the sample manifest. Defaults are CMS-like
(``shared/reference/detector.md``: the Delphes CMS card and CMS performance papers).

The response, in order:

1. **Tracks.** Charged particles within ``|eta| <= tracker_eta_max`` and above
   ``track_pt_min`` are found with an efficiency by type, ``|eta|`` and pT; their pT is
   smeared with the CMS parametrisation ``sigma(pT)/pT = sqrt(a^2 + (b pT)^2)`` by
   ``|eta|`` region (direction kept). Transverse and longitudinal impact parameters
   (``d0``, ``dz``, mm) are computed from the true production vertex in the straight-line
   approximation (``d0 = (x py - y px) / pT``) and smeared with
   ``sigma(d0) = sqrt(a^2 + (b / pT)^2)``, ``sigma(dz) = dz_scale * sigma(d0)``, so
   products of b/c-hadron decays are displaced. Tracked hadrons become charged-hadron
   candidates, tracked electrons and muons become lepton candidates (an ideal
   particle-flow: their calorimeter energy is attributed to the track).
2. **Calorimeters.** Photons, untracked electrons and neutral hadrons (and charged hadrons
   that were not tracked) deposit energy in ECAL / HCAL towers: photons and electrons in
   ECAL; K0S and Lambda ``k0s_lambda_ecal_fraction`` in ECAL, the rest in HCAL; other
   hadrons in HCAL; beyond ``|eta| = calo_eta_max`` (3.0) everything lands in the forward
   calorimeter. Deposits are summed per tower (granularity by layer and ``|eta|``), the
   tower energy is smeared with the layer's resolution, and towers below the layer's
   ``E_min`` are dropped. Each tower becomes one massless candidate at the tower centre:
   ECAL towers are photons, HCAL and forward towers are neutral hadrons.
   Muons without a track and neutrinos leave nothing.
3. **Vertex truth.** Given the pile-up particles (``apply_detector(..., pileup=mask)``),
   each candidate records where it came from in ``vertex``: a track its particle's
   (0 hard scatter, 1 pile-up), a tower 1 when pile-up particles deposited more than half
   of its true energy.

**Displaced tracks and IP tails** (off by default; the ``ak4-flavour`` sample turns them
on, docs/flavour.md): with a ``displaced_track_rmax`` (mm), the tracking efficiency is
multiplied by ``max(0, 1 - r / displaced_track_rmax)``, ``r`` the transverse production
radius (the daughters of K0S and Lambda decays in flight); with ``ip_tail_fraction`` > 0,
that fraction of tracks is smeared in d0 and dz with ``ip_tail_scale`` times the quoted
errors (non-Gaussian tails: the quoted errors stay the core ones).

The longitudinal impact-parameter resolution is what lets tracks be told apart by vertex:
``sigma(dz) = dz_res_scale * sigma(d0)``, with ``dz_res_scale = 2`` about 20 um for a hard
and 200 um for a 1 GeV central track (CMS tracker performance, JINST 9 (2014) P10009:
the longitudinal resolution is 1.5-3 times the transverse one in the barrel), far below
the ~5 cm spread of pile-up vertices and comparable to the spacing of the closest ones
at mu = 200.

The response of a particle does not depend on the rest of its event except through the
calorimeter towers, where deposits overlap: :func:`detector_response` stops before them
(tracks and :class:`Deposits`), :meth:`Deposits.cell_sums` sums deposits per cell (the
same towers come out of the sums), and :func:`towers` smears and thresholds the summed
cells. Pile-up uses this to simulate its minimum-bias library once and overlay it at
tower level (:mod:`heptagon.generate.pileup`).

``apply_detector(..., config=None)`` returns hadron level instead: every visible
final-state particle with its true momentum and impact parameters (errors 0).

**Calibration knobs** (the detector-level systematic variations of
:mod:`heptagon.physics.systematics`, and a mis-calibrated detector for pseudo-data): the
energy scale (``jes_*``, multiplying the measured momentum or energy) and the resolution
(``jer_*``, multiplying the smearing width) of each particle-flow component -- tracks, ECAL
towers, HCAL towers (forward calorimeter included) --, the tracking efficiency
(``track_eff_scale``, multiplying the efficiency, capped at 1) and the true impact-parameter
resolution (``ip_res_scale``, multiplying the d0 / dz smearing while the quoted errors
``d0err`` / ``dzerr`` stay the nominal ones: the reconstruction does not know). All are 1
by default, and at 1 the output is bit for bit that of the nominal detector (the same
random numbers are drawn in the same order). Tower thresholds apply to the calibrated
energy.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from heptagon.physics.arrays import owner_index, stable_order
from heptagon.physics.kinematics import wrap_phi
from heptagon.physics.pdg import CAT_NEUTRAL_HADRON, CAT_PHOTON, categories, charges

__all__ = [
    "ECAL",
    "FORWARD",
    "HCAL",
    "BinnedDeposits",
    "Candidates",
    "CellLayout",
    "Cells",
    "Deposits",
    "DetectorConfig",
    "Particles",
    "apply_detector",
    "bin_cells",
    "calorimeter_resolution",
    "detector_response",
    "merge_candidates",
    "reconstruct_tracks",
    "tower_layout",
    "towers",
    "track_efficiency",
]

_NEUTRINOS = (12, 14, 16)
_K0S_LAMBDA = (310, 3122)


#: detector parameters' ranges: a size, an |eta| edge or a scale (> 0), a threshold or a
#: resolution term (>= 0), an efficiency or a fraction ([0, 1])
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class DetectorConfig(BaseModel):
    """Every parameter of the parametric detector (GeV, mm, radians)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # tracker
    tracker_eta_max: Positive = 2.5
    track_pt_min: NonNegative = 0.1
    barrel_eta_max: Positive = 1.5
    hadron_eff_pt_threshold: NonNegative = 1.0
    hadron_eff_barrel: tuple[Fraction, Fraction] = (0.70, 0.95)  # below / above the pT threshold
    hadron_eff_endcap: tuple[Fraction, Fraction] = (0.60, 0.85)
    electron_eff: Fraction = 0.95
    muon_eff: Fraction = 0.99
    # CMS measured track pT resolution, by |eta| region upper edges
    track_res_eta_edges: tuple[Positive, ...] = (0.5, 1.5, 2.5)
    track_res_a: tuple[NonNegative, ...] = (0.006, 0.010, 0.025)
    track_res_b: tuple[NonNegative, ...] = (1.3e-4, 1.7e-4, 3.1e-4)  # per GeV
    # impact parameters: sigma(d0) = sqrt(a^2 + (b/pT)^2) mm; sigma(dz) = dz_scale * sigma(d0)
    d0_res_a: NonNegative = 0.010
    d0_res_b: NonNegative = 0.100  # mm GeV
    dz_res_scale: Positive = 2.0
    # tracks from displaced origins and IP tails (module docstring; off by default: only
    # the ak4-flavour sample turns them on, heptagon.generate.run.FLAVOUR_DETECTOR)
    displaced_track_rmax: float | None = Field(
        None, gt=0, description="production radius (mm) where tracking ends (None: nowhere)"
    )
    ip_tail_fraction: float = Field(
        0.0, ge=0, le=1, description="fraction of tracks with a wider d0 / dz smearing"
    )
    ip_tail_scale: float = Field(1.0, ge=1, description="their width, times the quoted errors")
    # calorimeters
    calo_eta_max: Positive = 3.0
    forward_eta_max: Positive = 5.0
    ecal_barrel_cell: Positive = 0.0174
    ecal_endcap_cell: Positive = 0.05
    hcal_cell: Positive = 0.087
    forward_cell: Positive = 0.175
    ecal_e_min: NonNegative = 0.5
    hcal_e_min: NonNegative = 1.0
    forward_e_min: NonNegative = 1.0
    # ECAL: Delphes CMS card, sigma = f(eta) * sqrt((c E)^2 + s^2 E + n^2)
    ecal_c: NonNegative = 0.008
    ecal_s: NonNegative = 0.11
    ecal_n: NonNegative = 0.40
    # HCAL: sigma = sqrt((c E)^2 + s^2 E)
    hcal_c: NonNegative = 0.05
    hcal_s: NonNegative = 1.5
    # forward calorimeter (Delphes CMS card, hadronic part), sigma = sqrt((c E)^2 + s^2 E)
    forward_c: NonNegative = 0.130
    forward_s: NonNegative = 2.70
    k0s_lambda_ecal_fraction: Fraction = 0.3
    # calibration knobs (module docstring): 1 = nominal
    jes_track: float = Field(1.0, gt=0, description="track momentum scale")
    jes_ecal: float = Field(1.0, gt=0, description="ECAL tower energy scale")
    jes_hcal: float = Field(1.0, gt=0, description="HCAL and forward tower energy scale")
    jer_track: float = Field(1.0, ge=0, description="track pT resolution, times nominal")
    jer_ecal: float = Field(1.0, ge=0, description="ECAL resolution, times nominal")
    jer_hcal: float = Field(1.0, ge=0, description="HCAL / forward resolution, times nominal")
    track_eff_scale: float = Field(1.0, ge=0, description="tracking efficiency, times nominal")
    ip_res_scale: float = Field(
        1.0, gt=0, description="true d0 / dz resolution, times the quoted errors"
    )

    @model_validator(mode="after")
    def _track_resolution_regions(self) -> DetectorConfig:
        edges = self.track_res_eta_edges
        if not len(edges) == len(self.track_res_a) == len(self.track_res_b):
            raise ValueError("track_res_eta_edges, track_res_a and track_res_b: one per region")
        if np.any(np.diff(edges) <= 0):
            raise ValueError("track_res_eta_edges must increase")
        return self

    def settings(self) -> dict[str, Any]:
        """The settings a sample records (manifest, ``.generate.json``): every field, but
        the displaced-track and IP-tail fields only when they are on, so that a sample
        made without them records what it did before they existed (and resumes)."""
        off = {f for f in LATER_TRACKING_FIELDS if getattr(self, f) == _DEFAULTS[f]}
        return self.model_dump(exclude=off)


#: fields added after samples were recorded, left out of :meth:`DetectorConfig.settings`
#: while off
LATER_TRACKING_FIELDS = ("displaced_track_rmax", "ip_tail_fraction", "ip_tail_scale")
_DEFAULTS = {f: DetectorConfig.model_fields[f].default for f in LATER_TRACKING_FIELDS}


@dataclass(frozen=True)
class Particles:
    """Flat per-particle arrays of a batch of events; ``counts[i]`` particles in event i.

    Momenta in GeV, production vertex (``vx, vy, vz``) in mm."""

    counts: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pid: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray

    @property
    def event(self) -> np.ndarray:
        """The event index of each particle."""
        return owner_index(self.counts)


@dataclass(frozen=True)
class Candidates:
    """Flat reconstructed candidates of a batch of events (sorted by event).

    ``category`` is one of the ``CAT_*`` constants of :mod:`heptagon.physics.pdg`;
    ``charge`` in units of e; impact parameters and their errors in mm (0 for neutral
    candidates); ``vx, vy, vz`` the reconstructed production point of tracks (smeared; 0 for
    neutrals), used by vertexing; ``vertex`` the truth origin (0 hard scatter, 1 pile-up;
    module docstring).
    """

    counts: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    charge: np.ndarray
    category: np.ndarray
    d0: np.ndarray
    d0err: np.ndarray
    dz: np.ndarray
    dzerr: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray
    vertex: np.ndarray


def _eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    return np.arcsinh(pz / np.maximum(pt, 1e-12)), np.arctan2(py, px)


def _impact_parameters(p: Particles, pt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed transverse and longitudinal impact parameters (mm), straight-line tracks."""
    d0 = (p.vx * p.py - p.vy * p.px) / np.maximum(pt, 1e-12)
    dz = p.vz - (p.vx * p.px + p.vy * p.py) * p.pz / np.maximum(pt * pt, 1e-24)
    return d0, dz


def _hadron_level(
    p: Particles, charge: np.ndarray, visible: np.ndarray, pileup: np.ndarray
) -> Candidates:
    pt = np.hypot(p.px, p.py)
    d0, dz = _impact_parameters(p, pt)
    sel = visible
    zeros = np.zeros(int(sel.sum()))
    return Candidates(
        counts=np.bincount(p.event[sel], minlength=len(p.counts)),
        px=p.px[sel],
        py=p.py[sel],
        pz=p.pz[sel],
        e=p.e[sel],
        charge=charge[sel],
        category=categories(p.pid[sel], charge[sel]),
        d0=np.where(charge[sel] != 0, d0[sel], 0.0),
        d0err=zeros,
        dz=np.where(charge[sel] != 0, dz[sel], 0.0),
        dzerr=zeros,
        vx=p.vx[sel],
        vy=p.vy[sel],
        vz=p.vz[sel],
        vertex=pileup[sel].astype(np.int8),
    )


def track_efficiency(
    cfg: DetectorConfig,
    apid: np.ndarray,
    pt: np.ndarray,
    abseta: np.ndarray,
    rxy: np.ndarray | None = None,
) -> np.ndarray:
    """Tracking efficiency of particles with |PDG id| ``apid``, ``pt`` (GeV), ``abseta``
    (times ``track_eff_scale``, at most 1); given the production radius ``rxy`` (mm) and a
    ``displaced_track_rmax``, times ``max(0, 1 - rxy / displaced_track_rmax)``."""
    barrel = abseta <= cfg.barrel_eta_max
    high = pt > cfg.hadron_eff_pt_threshold
    eff = np.where(
        barrel,
        np.where(high, cfg.hadron_eff_barrel[1], cfg.hadron_eff_barrel[0]),
        np.where(high, cfg.hadron_eff_endcap[1], cfg.hadron_eff_endcap[0]),
    )
    eff = np.where(apid == 11, cfg.electron_eff, eff)
    eff = np.where(apid == 13, cfg.muon_eff, eff)
    inside = (abseta <= cfg.tracker_eta_max) & (pt > cfg.track_pt_min)
    if cfg.track_eff_scale != 1.0:
        eff = np.minimum(eff * cfg.track_eff_scale, 1.0)
    if rxy is not None and cfg.displaced_track_rmax is not None:
        eff = eff * np.clip(1.0 - rxy / cfg.displaced_track_rmax, 0.0, 1.0)
    return np.where(inside, eff, 0.0)


def _track_resolution(cfg: DetectorConfig, pt: np.ndarray, abseta: np.ndarray) -> np.ndarray:
    region = np.minimum(
        np.searchsorted(np.asarray(cfg.track_res_eta_edges), abseta), len(cfg.track_res_a) - 1
    )
    a = np.asarray(cfg.track_res_a)[region]
    b = np.asarray(cfg.track_res_b)[region]
    return np.asarray(np.sqrt(a**2 + (b * pt) ** 2))


def reconstruct_tracks(
    cfg: DetectorConfig,
    p: Particles,
    sel: np.ndarray,
    charge: np.ndarray,
    pt: np.ndarray,
    rng: np.random.Generator,
    pileup: np.ndarray | None = None,
) -> Candidates:
    """Reconstructed tracks of the particles in ``sel`` (already passed efficiency);
    ``pileup`` marks pile-up particles (none when None)."""
    abseta = np.abs(_eta_phi(p.px[sel], p.py[sel], p.pz[sel])[0])
    ptt = pt[sel]
    sigma = _track_resolution(cfg, ptt, abseta) * cfg.jer_track
    scale = np.maximum(1.0 + sigma * rng.standard_normal(ptt.size), 0.05) * cfg.jes_track
    px, py, pz = p.px[sel] * scale, p.py[sel] * scale, p.pz[sel] * scale
    mass2 = np.maximum(p.e[sel] ** 2 - (p.px[sel] ** 2 + p.py[sel] ** 2 + p.pz[sel] ** 2), 0.0)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass2)
    d0_true, dz_true = _impact_parameters(p, pt)
    ptr = ptt * scale
    d0err = np.sqrt(cfg.d0_res_a**2 + (cfg.d0_res_b / ptr) ** 2)
    dzerr = cfg.dz_res_scale * d0err
    n = ptt.size
    g = rng.standard_normal((2, n)) * cfg.ip_res_scale  # the true resolution (knob)
    if cfg.ip_tail_fraction > 0:  # a fraction of tracks in a wider Gaussian (d0 and dz)
        g *= np.where(rng.random(n) < cfg.ip_tail_fraction, cfg.ip_tail_scale, 1.0)
    # the reconstructed production point: the true one moved by the track's resolution
    phi = np.arctan2(py, px)
    vx = p.vx[sel] - g[0] * d0err * np.sin(phi)
    vy = p.vy[sel] + g[0] * d0err * np.cos(phi)
    return Candidates(
        counts=np.bincount(p.event[sel], minlength=len(p.counts)),
        px=px,
        py=py,
        pz=pz,
        e=e,
        charge=charge[sel],
        category=categories(p.pid[sel], charge[sel]),
        d0=d0_true[sel] + g[0] * d0err,
        d0err=d0err,
        dz=dz_true[sel] + g[1] * dzerr,
        dzerr=dzerr,
        vx=vx,
        vy=vy,
        vz=p.vz[sel] + g[1] * dzerr,
        vertex=(np.zeros(n, bool) if pileup is None else pileup[sel]).astype(np.int8),
    )


#: calorimeter layer codes of the deposits
ECAL, HCAL, FORWARD = 0, 1, 2


def _tower_grid(cfg: DetectorConfig, layer: np.ndarray, abseta: np.ndarray) -> np.ndarray:
    """Cell size (in eta and phi) of each deposit by layer and |eta|."""
    size = np.where(abseta <= cfg.barrel_eta_max, cfg.ecal_barrel_cell, cfg.ecal_endcap_cell)
    size = np.where(layer == HCAL, cfg.hcal_cell, size)
    return np.where(layer == FORWARD, cfg.forward_cell, size)


@dataclass(frozen=True)
class Cells:
    """Deposits binned into calorimeter cells (see :func:`bin_cells`)."""

    #: the cell of each deposit
    inverse: np.ndarray
    #: one deposit (the first) of each cell: index per-deposit arrays with it
    first: np.ndarray
    #: the centre of each cell
    eta: np.ndarray
    phi: np.ndarray

    def sum(self, weights: np.ndarray) -> np.ndarray:
        """The per-deposit ``weights`` summed per cell."""
        return np.bincount(self.inverse, weights=weights, minlength=self.first.size)


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of an array that holds a few (sorted; one pass per value)."""
    out = []
    while values.size:
        out.append(values[0])
        values = values[values != values[0]]
    return np.sort(np.asarray(out, dtype=float))


@dataclass(frozen=True)
class CellLayout:
    """Every calorimeter cell one event can have, numbered in the order of
    (part, eta index, phi index, cell size): square (eta, phi) cells of side ``size``,
    eta cells ``[k, k + 1) * size``, ``round(2 pi / size)`` phi cells from ``-pi``, one
    grid per (part, size) group over a range of eta indices (:meth:`grid`). A deposit's
    cell is then one integer (:meth:`index`), which a pile-up library computes once for
    its cells, and binning is a sort of (event, cell) integers (:meth:`occupied`)."""

    #: the distinct cell sizes (sorted)
    sizes: np.ndarray
    #: per group ``part * sizes.size + size index``: lowest eta index, eta and phi cells
    #: (0 for an absent group), first position in the layout
    lo: np.ndarray
    n_eta: np.ndarray
    nphi: np.ndarray
    offset: np.ndarray
    #: the layout position of a group's cell -> its number
    number: np.ndarray
    #: per cell number: its part and its centre
    part: np.ndarray
    eta: np.ndarray
    phi: np.ndarray

    @classmethod
    def grid(cls, sizes: np.ndarray, groups: list[tuple[int, int, int, int]]) -> CellLayout:
        """The layout of ``groups`` ``(part, size index into sizes, lowest eta index,
        highest eta index)``, one (part, size) each."""
        n_groups = (max((g[0] for g in groups), default=0) + 1) * sizes.size
        lo, n_eta, nphi, offset = (np.zeros(n_groups, np.int64) for _ in range(4))
        keys: list[list[np.ndarray]] = [[], [], [], []]
        start = 0
        for part, s, first, last in groups:
            g = part * sizes.size + s
            n_phi = int(np.round(2 * np.pi / sizes[s]))
            lo[g], n_eta[g], nphi[g], offset[g] = first, last - first + 1, n_phi, start
            ieta, iphi = np.divmod(np.arange(n_eta[g] * n_phi), n_phi)
            columns = (np.full(ieta.size, part), ieta + first, iphi, np.full(ieta.size, s))
            for k, v in enumerate(columns):
                keys[k].append(v)
            start += ieta.size
        part_, ieta_, iphi_, size_ = (np.concatenate(k) for k in keys)
        order = np.lexsort((size_, iphi_, ieta_, part_))
        number = np.empty(order.size, np.int64)
        number[order] = np.arange(order.size)
        size = sizes[size_[order]]
        n_phi_ = nphi[part_[order] * sizes.size + size_[order]]
        return cls(
            sizes=sizes,
            lo=lo,
            n_eta=n_eta,
            nphi=nphi,
            offset=offset,
            number=number,
            part=part_[order],
            eta=(ieta_[order] + 0.5) * size,
            phi=wrap_phi((iphi_[order] + 0.5) / n_phi_ * 2 * np.pi - np.pi),
        )

    def index(
        self, part: np.ndarray, size: np.ndarray, eta: np.ndarray, phi: np.ndarray
    ) -> np.ndarray:
        """The cell number of each deposit; ValueError if one is outside the layout."""
        s = np.minimum(np.searchsorted(self.sizes, size), self.sizes.size - 1)
        g = np.asarray(part, np.int64) * self.sizes.size + s
        if g.size and g.max() >= self.lo.size:
            raise ValueError("a deposit outside the calorimeter cell layout")
        nphi = self.nphi[g]
        ieta = np.floor(eta / size).astype(np.int64) - self.lo[g]
        iphi = np.floor((phi + np.pi) / (2 * np.pi) * nphi).astype(np.int64) % np.maximum(nphi, 1)
        inside = (self.sizes[s] == size) & (ieta >= 0) & (ieta < self.n_eta[g])
        if not inside.all():
            raise ValueError("a deposit outside the calorimeter cell layout")
        return np.asarray(self.number[self.offset[g] + ieta * nphi + iphi])

    def occupied(
        self, event: np.ndarray, number: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The cells holding deposits (cell ``number`` in event ``event``), ordered by
        event then number: the deposits in that order (stable, ``order``), the cell of each
        of them (``cell``, ascending), and each cell's event and number."""
        n = self.number.size
        key = np.asarray(event, np.int64) * n + number
        order = stable_order(key)
        key = key[order]
        new = np.empty(key.size, dtype=bool)
        new[:1] = True
        np.not_equal(key[1:], key[:-1], out=new[1:])
        event_of, number_of = np.divmod(key[new], n)
        return order, np.cumsum(new) - 1, event_of, number_of


def bin_cells(
    event: np.ndarray,
    part: np.ndarray,
    n_parts: int,
    size: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
) -> Cells:
    """Bin deposits into square (eta, phi) cells of side ``size`` (per deposit), one grid
    per event and calorimeter part (``0 <= part < n_parts``): eta cells ``[k, k + 1) *
    size``, ``round(2 pi / size)`` phi cells from ``-pi``; deposits of different sizes
    never share a cell (an ECAL barrel and an endcap cell can have the same indices). The
    cells are ordered by event, then part, eta index, phi index and size, so what is made
    of them stays sorted by event (:class:`CellLayout` over the eta range of the data)."""
    part = np.asarray(part, np.int64)
    if event.size == 0:
        empty = np.zeros(0, np.int64)
        return Cells(empty, empty, np.zeros(0), np.zeros(0))
    sizes = _distinct(size)
    group = part * sizes.size + np.searchsorted(sizes, size)
    ieta = np.floor(eta / size).astype(np.int64)
    groups = []
    for g in np.flatnonzero(np.bincount(group, minlength=n_parts * sizes.size)):
        mine = ieta[group == g]
        groups.append((int(g // sizes.size), int(g % sizes.size), int(mine.min()), int(mine.max())))
    layout = CellLayout.grid(sizes, groups)
    order, cell, _, number = layout.occupied(event, layout.index(part, size, eta, phi))
    inverse = np.empty(order.size, dtype=np.int64)
    inverse[order] = cell
    first = order[np.flatnonzero(np.diff(cell, prepend=-1))]  # the first of each run
    return Cells(inverse=inverse, first=first, eta=layout.eta[number], phi=layout.phi[number])


def calorimeter_resolution(
    cfg: DetectorConfig, layer: np.ndarray, e: np.ndarray, eta: np.ndarray
) -> np.ndarray:
    """Energy resolution sigma(E) in GeV of deposits of energy ``e`` in ``layer``
    (:data:`ECAL`, :data:`HCAL`, :data:`FORWARD`) at ``eta``."""
    out = np.empty(np.shape(e))
    layer, e, eta = np.broadcast_to(layer, out.shape), np.asarray(e), np.asarray(eta)
    ecal, hcal = layer == ECAL, layer == HCAL
    fwd = ~(ecal | hcal)
    ee, eta_e = e[ecal], eta[ecal]
    abseta = np.abs(eta_e)
    ecal_f = np.where(
        abseta <= cfg.barrel_eta_max,
        1.0 + 0.64 * eta_e**2,
        2.16 + 5.6 * (abseta - 2.0) ** 2,
    )
    out[ecal] = ecal_f * np.sqrt((cfg.ecal_c * ee) ** 2 + cfg.ecal_s**2 * ee + cfg.ecal_n**2)
    eh = e[hcal]
    out[hcal] = np.sqrt((cfg.hcal_c * eh) ** 2 + cfg.hcal_s**2 * eh)
    ef = e[fwd]
    out[fwd] = np.sqrt((cfg.forward_c * ef) ** 2 + cfg.forward_s**2 * ef)
    return out


@dataclass(frozen=True)
class Deposits:
    """Calorimeter deposits of a batch of events, not yet summed into towers: the event,
    the layer (:data:`ECAL`, :data:`HCAL`, :data:`FORWARD`), the true energy ``e`` (GeV)
    and the part of it from pile-up particles ``e_pileup``, the direction and the side
    ``size`` of the deposit's cell (it decides the cell: :func:`bin_cells`)."""

    event: np.ndarray
    layer: np.ndarray
    e: np.ndarray
    e_pileup: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    size: np.ndarray

    def _cells(self) -> Cells:
        return bin_cells(self.event, self.layer, 3, self.size, self.eta, self.phi)

    def cell_sums(self) -> Deposits:
        """One deposit per cell at its centre, energies summed: :func:`towers` of these
        (alone or with other deposits) bins them into the same cells as the originals."""
        cells = self._cells()
        return Deposits(
            event=self.event[cells.first],
            layer=self.layer[cells.first],
            e=cells.sum(self.e),
            e_pileup=cells.sum(self.e_pileup),
            eta=cells.eta,
            phi=cells.phi,
            size=self.size[cells.first],
        )


@functools.lru_cache(maxsize=16)
def tower_layout(cfg: DetectorConfig) -> CellLayout:
    """The calorimeter cells of :func:`detector_response`'s deposits (:func:`_tower_grid`):
    ECAL barrel and endcap cells, HCAL and forward cells, each over the |eta| its deposits
    can have; their numbers follow :func:`bin_cells`' order."""
    calo = min(cfg.calo_eta_max, cfg.forward_eta_max)
    spans = (
        (ECAL, cfg.ecal_barrel_cell, min(cfg.barrel_eta_max, calo)),
        (ECAL, cfg.ecal_endcap_cell, calo),
        (HCAL, cfg.hcal_cell, calo),
        (FORWARD, cfg.forward_cell, cfg.forward_eta_max),
    )
    sizes = _distinct(np.array([size for _, size, _ in spans]))
    ranges: dict[tuple[int, int], tuple[int, int]] = {}
    for layer, size, eta_max in spans:
        key = (layer, int(np.searchsorted(sizes, size)))
        lo, hi = int(np.floor(-eta_max / size)), int(np.floor(eta_max / size))
        old = ranges.get(key, (lo, hi))
        ranges[key] = (min(lo, old[0]), max(hi, old[1]))
    return CellLayout.grid(sizes, [(*key, lo, hi) for key, (lo, hi) in ranges.items()])


@dataclass(frozen=True)
class BinnedDeposits:
    """Deposits already on the cells of :func:`tower_layout`: each one's event, cell
    ``number``, true energy ``e`` and the part of it from pile-up ``e_pileup`` (GeV)."""

    event: np.ndarray
    number: np.ndarray
    e: np.ndarray
    e_pileup: np.ndarray


def towers(
    cfg: DetectorConfig,
    deposits: Deposits,
    n_events: int,
    rng: np.random.Generator,
    binned: BinnedDeposits | None = None,
) -> Candidates:
    """Sum deposits per (event, layer, cell), smear, apply thresholds, make candidates
    (sorted by event, then as :func:`bin_cells`); a tower's ``vertex`` is 1 when pile-up
    made more than half of its true energy. ``binned``: more deposits, already binned
    (a pile-up library's cell sums), summed after ``deposits``."""
    layout = tower_layout(cfg)
    event, e, e_pileup = deposits.event, deposits.e, deposits.e_pileup
    number = layout.index(deposits.layer, deposits.size, deposits.eta, deposits.phi)
    if binned is not None:
        event, number, e, e_pileup = (
            np.concatenate([a, b])
            for a, b in (
                (event, binned.event),
                (number, binned.number),
                (e, binned.e),
                (e_pileup, binned.e_pileup),
            )
        )
    order, cell, c_event, c_number = layout.occupied(event, number)
    deposited = np.bincount(cell, weights=e[order], minlength=c_event.size)
    from_pu = np.bincount(cell, weights=e_pileup[order], minlength=c_event.size)
    c_layer, c_eta, c_phi = layout.part[c_number], layout.eta[c_number], layout.phi[c_number]
    noise = rng.standard_normal(c_event.size)
    jer = np.where(c_layer == ECAL, cfg.jer_ecal, cfg.jer_hcal)
    jes = np.where(c_layer == ECAL, cfg.jes_ecal, cfg.jes_hcal)
    sigma = calorimeter_resolution(cfg, c_layer, deposited, c_eta) * jer
    energy = (deposited + sigma * noise) * jes
    e_min = np.select(
        [c_layer == ECAL, c_layer == HCAL], [cfg.ecal_e_min, cfg.hcal_e_min], cfg.forward_e_min
    )
    keep = np.flatnonzero(energy > e_min)
    energy, c_eta, c_phi, c_layer, c_event = (
        energy[keep],
        c_eta[keep],
        c_phi[keep],
        c_layer[keep],
        c_event[keep],
    )
    pu_tower = (from_pu[keep] > 0.5 * deposited[keep]).astype(np.int8)
    pt = energy / np.cosh(c_eta)
    zeros = np.zeros(energy.size)
    return Candidates(
        counts=np.bincount(c_event, minlength=n_events),
        px=pt * np.cos(c_phi),
        py=pt * np.sin(c_phi),
        pz=pt * np.sinh(c_eta),
        e=energy,
        charge=zeros,
        category=np.where(c_layer == ECAL, CAT_PHOTON, CAT_NEUTRAL_HADRON),
        d0=zeros,
        d0err=zeros,
        dz=zeros,
        dzerr=zeros,
        vx=zeros,
        vy=zeros,
        vz=zeros,
        vertex=pu_tower,
    )


def merge_candidates(*sets: Candidates) -> Candidates:
    """Concatenate candidate sets event by event (in each event, the first set's
    candidates first, then the second's, ...)."""
    counts = np.sum([c.counts for c in sets], axis=0)
    start = np.cumsum(counts) - counts
    positions = []
    for c in sets:
        event = owner_index(c.counts)
        own_start = np.cumsum(c.counts) - c.counts
        positions.append(start[event] + np.arange(event.size) - own_start[event])
        start = start + c.counts
    fields = {}
    for f in dataclasses.fields(Candidates):
        if f.name == "counts":
            continue
        values = [getattr(c, f.name) for c in sets]
        out = np.empty(sum(v.size for v in values), dtype=np.result_type(*values))
        for pos, v in zip(positions, values, strict=True):
            out[pos] = v
        fields[f.name] = out
    return Candidates(counts=counts, **fields)


def detector_response(
    particles: Particles,
    cfg: DetectorConfig,
    rng: np.random.Generator,
    pileup: np.ndarray | None = None,
) -> tuple[Candidates, Deposits]:
    """The tracks and the calorimeter deposits (not yet towers) of a batch of events
    (:func:`apply_detector`)."""
    apid = np.abs(particles.pid)
    charge = charges(particles.pid)
    visible = ~np.isin(apid, _NEUTRINOS)
    pileup = np.zeros(apid.size, dtype=bool) if pileup is None else pileup
    pt = np.hypot(particles.px, particles.py)
    eta, phi = _eta_phi(particles.px, particles.py, particles.pz)
    abseta = np.abs(eta)
    eff = track_efficiency(cfg, apid, pt, abseta, np.hypot(particles.vx, particles.vy))
    tracked = visible & (charge != 0) & (rng.random(pt.size) < eff)
    tracks = reconstruct_tracks(cfg, particles, tracked, charge, pt, rng, pileup)

    # calorimeter deposits of everything visible, untracked and not a muon
    calo = visible & ~tracked & (apid != 13) & (abseta < cfg.forward_eta_max)
    is_em = (apid == 22) | (apid == 11)
    split = np.isin(apid, _K0S_LAMBDA)
    in_fwd = abseta >= cfg.calo_eta_max
    f_ecal = np.where(is_em, 1.0, np.where(split, cfg.k0s_lambda_ecal_fraction, 0.0))
    f_ecal = np.where(in_fwd, 0.0, f_ecal)
    idx = np.flatnonzero(calo)
    dep_layer = np.concatenate([np.full(idx.size, ECAL), np.where(in_fwd[idx], FORWARD, HCAL)])
    dep_idx = np.concatenate([idx, idx])
    dep_e = particles.e[dep_idx] * np.concatenate([f_ecal[idx], 1.0 - f_ecal[idx]])
    nz = dep_e > 0
    dep_idx, dep_layer, dep_e = dep_idx[nz], dep_layer[nz], dep_e[nz]
    deposits = Deposits(
        event=particles.event[dep_idx],
        layer=dep_layer,
        e=dep_e,
        e_pileup=np.where(pileup[dep_idx], dep_e, 0.0),
        eta=eta[dep_idx],
        phi=phi[dep_idx],
        size=_tower_grid(cfg, dep_layer, abseta[dep_idx]),
    )
    return tracks, deposits


def apply_detector(
    particles: Particles,
    config: DetectorConfig | None,
    rng: np.random.Generator,
    pileup: np.ndarray | None = None,
) -> Candidates:
    """Reconstructed candidates of a batch of events, or hadron level if ``config`` is None.

    ``particles`` are the stable final-state particles; neutrinos are dropped here.
    ``pileup`` marks the pile-up particles (none when None): it sets the candidates'
    ``vertex`` and nothing else. Results depend only on the inputs, the config and the
    state of ``rng``.
    """
    if config is None:
        charge = charges(particles.pid)
        visible = ~np.isin(np.abs(particles.pid), _NEUTRINOS)
        pu = np.zeros(charge.size, dtype=bool) if pileup is None else pileup
        return _hadron_level(particles, charge, visible, pu)
    tracks, deposits = detector_response(particles, config, rng, pileup)
    return merge_candidates(tracks, towers(config, deposits, len(particles.counts), rng))
