"""Detector elements for particle-flow reconstruction (MLPF and the rule-based PF):
``Track_*`` and ``Tower_*`` per event with a ``GenPart_*`` target per element.

The response is the one detector module's (:mod:`heptagon.generate.detector`: track
efficiency, CMS pT resolution, impact parameters, calorimeter resolutions and thresholds,
every number a :class:`~heptagon.generate.detector.DetectorConfig` field) at the level of
detector elements rather than ideal PF candidates:

- **Tracks**: found charged particles (the detector's efficiency and smearing); each is
  propagated as a helix in the solenoid field (``bz_tesla``, from its production point) to
  the calorimeter surface, a cylinder of radius ``calo_radius_m`` closed by endcaps at
  ``|z| = calo_half_length_m``; ``Track_etaCalo, Track_phiCalo`` is that entry point,
  computed from the reconstructed momentum. ``Track_muonHit`` marks tracks of muons with
  ``p > muon_p_min`` within ``|eta| < muon_eta_max`` (the muon system).
- **Towers**: every visible particle but muons (tracked or not) deposits its energy at its
  true calorimeter entry point (charged ones bent by the field): photons and electrons in
  ECAL, K0S and Lambda ``k0s_lambda_ecal_fraction`` in ECAL and the rest in HCAL, other
  hadrons in HCAL, everything beyond ``calo_eta_max`` in the forward calorimeter (counted
  as HCAL). Towers have the HCAL granularity (``hcal_cell``; ``forward_cell`` beyond
  ``calo_eta_max``), ECAL and HCAL energies are summed per tower, smeared with their
  layer's resolution at the tower centre and zeroed below the layer's ``E_min``; a tower
  with neither left is dropped.
- **Targets** (``GenPart_*``, one per element, tracks first then towers, the order of
  the elements in the event): a track's own generator particle; a tower's summed
  untracked generator particles (4-vector sum) with the class of the largest energy
  share, where a tower cannot see charge, so an untracked charged hadron counts as a
  neutral hadron and an untracked electron as a photon (charge 0); ``none`` (class 0,
  zero kinematics) for a tower without untracked deposits. Classes: :data:`CLASSES`.
  Untracked particles in towers below threshold, and muons without a track, have no
  element (they are lost, as in a real detector).
- **Event truth**: ``GenJet_*`` (anti-kT R = 0.4, FastJet, of the visible final-state
  particles of the hard event, pT > ``genjet_pt_min``) and ``GenMET_pt, GenMET_phi`` (the
  hard event's neutrinos).

Pile-up (:mod:`heptagon.generate.pileup`, shared with ``heptagon generate``): events of a
minimum-bias library (generated once per sample and reused by every shard) are overlaid
with a Poisson mean ``pileup`` at vertices spread along z like the luminous region's;
their particles make elements and targets like the hard event's, but not the generator
jets or MET.

Samples: ``ttbar`` and ``qcd`` from Pythia (the event processes of
:mod:`heptagon.generate.processes`) and ``gun``, a particle gun (:func:`particle_gun`) of
single pi+, photons, K0L, electrons and muons at log-uniform energies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from heptagon.artifacts.manifest import ElementManifest, ShardRecord
from heptagon.cpu import retain_freed_memory
from heptagon.generate.detector import (
    ECAL,
    FORWARD,
    HCAL,
    DetectorConfig,
    Particles,
    apply_detector,
    bin_cells,
    calorimeter_resolution,
    reconstruct_tracks,
    track_efficiency,
)
from heptagon.generate.jets import JetSelection, cluster
from heptagon.generate.options import DetectorSetOptions
from heptagon.generate.pileup import (
    BEAMSPOT_SIGMA_Z_MM,
    minbias_library,
    overlay_pileup,
    process_settings,
    pythia_final_state,
    read_library,
)
from heptagon.generate.run import COMMON_SETTINGS, ECM_GEV, versions
from heptagon.generate.shards import (
    branch_names,
    prepare_out,
    run_shards,
    shard_seed,
    write_table,
)
from heptagon.io import sha256sum
from heptagon.physics.kinematics import wrap_phi
from heptagon.physics.pdg import charges, masses

__all__ = [
    "CLASSES",
    "GUN_PARTICLES",
    "ElementConfig",
    "ElementOptions",
    "ElementSummary",
    "Elements",
    "build_elements",
    "generate_elements",
    "particle_gun",
    "run_element_shard",
]

#: target classes, by index
CLASSES = ("none", "charged_hadron", "neutral_hadron", "photon", "electron", "muon")
CLS_NONE, CLS_CH, CLS_NH, CLS_PHOTON, CLS_ELECTRON, CLS_MUON = range(6)
#: the particle gun's particles by name
GUN_PARTICLES = {"pi+": 211, "photon": 22, "k0l": 130, "electron": 11, "muon": 13}
#: GeV per (T m) for a unit charge: R[m] = pT / (0.299792458 Bz q)
_C_LIGHT = 0.299792458
_NEUTRINOS = (12, 14, 16)
_K0S_LAMBDA = (310, 3122)
_FLOAT = np.float32


class ElementConfig(BaseModel):
    """Geometry of the element response beyond :class:`DetectorConfig` (m, T, GeV)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bz_tesla: float = Field(3.8, gt=0)
    calo_radius_m: float = Field(1.29, gt=0)
    calo_half_length_m: float = Field(3.0, gt=0)
    muon_p_min: float = Field(2.5, ge=0)
    muon_eta_max: float = Field(2.4, gt=0)
    genjet_pt_min: float = Field(5.0, ge=0)


@dataclass(frozen=True)
class Elements:
    """Elements of a batch of events as flat arrays with per-event counts.

    ``track`` and ``tower`` map branch suffixes to flat arrays (``n_tracks`` /
    ``n_towers`` per event), ``target`` maps ``GenPart_*`` suffixes to flat arrays with
    ``n_tracks + n_towers`` per event (each event's tracks first), ``event`` holds per-event
    branches and jagged generator jets.
    """

    n_tracks: np.ndarray
    n_towers: np.ndarray
    track: dict[str, np.ndarray]
    tower: dict[str, np.ndarray]
    target: dict[str, np.ndarray]
    event: dict[str, Any]

    @classmethod
    def from_table(cls, arr: ak.Array) -> Elements:
        """The elements of a table of events with the branches of :meth:`table` (a read
        shard); per-event branches other than the elements' are left out."""

        def flat(prefix: str) -> dict[str, np.ndarray]:
            return {
                name.split("_", 1)[1]: ak.to_numpy(ak.flatten(arr[name]))
                for name in arr.fields
                if name.startswith(prefix + "_")
            }

        return cls(
            n_tracks=ak.to_numpy(ak.num(arr["Track_pt"])).astype(np.int64),
            n_towers=ak.to_numpy(ak.num(arr["Tower_eta"])).astype(np.int64),
            track=flat("Track"),
            tower=flat("Tower"),
            target=flat("GenPart"),
            event={
                k: arr[k]
                for k in (
                    "GenJet_pt",
                    "GenJet_eta",
                    "GenJet_phi",
                    "GenJet_mass",
                    "GenMET_pt",
                    "GenMET_phi",
                )
            },
        )

    def table(self) -> dict[str, Any]:
        """The NanoAOD-style branches (jagged per event)."""
        n_el = self.n_tracks + self.n_towers
        out: dict[str, Any] = {}
        for prefix, cols, counts in (
            ("Track", self.track, self.n_tracks),
            ("Tower", self.tower, self.n_towers),
            ("GenPart", self.target, n_el),
        ):
            for k, v in cols.items():
                out[f"{prefix}_{k}"] = ak.unflatten(v, counts)
        out.update(self.event)
        return out


def particle_gun(
    pid: np.ndarray, energy: np.ndarray, eta: np.ndarray, rng: np.random.Generator
) -> Particles:
    """One particle per event from the origin: ids, energies (GeV), pseudorapidities, phi
    uniform (arrays of one length, the number of events)."""
    pid = np.asarray(pid, dtype=np.int64)
    energy = np.asarray(energy, dtype=np.float64)
    n = pid.size
    m = masses(pid)
    p = np.sqrt(np.maximum(energy**2 - m**2, 0.0))
    pt = p / np.cosh(eta)
    phi = rng.uniform(-np.pi, np.pi, n)
    zeros = np.zeros(n)
    return Particles(
        counts=np.ones(n, dtype=np.int64),
        px=pt * np.cos(phi),
        py=pt * np.sin(phi),
        pz=pt * np.sinh(eta),
        e=energy,
        pid=pid,
        vx=zeros,
        vy=zeros.copy(),
        vz=zeros.copy(),
    )


def _calo_entry(
    geo: ElementConfig,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    charge: np.ndarray,
    vz: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(eta, phi) of the point where a particle from the beam line at ``z = vz`` (mm)
    reaches the calorimeter surface: a helix in ``Bz`` (a straight line if neutral).

    A positive particle bends clockwise seen from +z (towards decreasing phi). Particles
    that curl up inside the barrel radius (``2R < r``) are carried to the endcap."""
    pt = np.maximum(np.hypot(px, py), 1e-9)
    phi0 = np.arctan2(py, px)
    r_cal, half = geo.calo_radius_m, geo.calo_half_length_m
    z0 = vz / 1000.0
    cot = pz / pt
    charged = charge != 0
    q = np.sign(charge)
    # bending radius (m) of charged particles; a dummy 1 for neutral ones (never used)
    rad = np.where(charged, pt / (_C_LIGHT * geo.bz_tesla * np.maximum(np.abs(charge), 1.0)), 1.0)
    # barrel: the turning angle alpha at which the chord 2R sin(alpha/2) equals r
    ratio = np.where(charged, r_cal / (2 * rad), 0.0)
    alpha_b = 2 * np.arcsin(np.minimum(ratio, 1.0))
    z_b = z0 + cot * np.where(charged, rad * alpha_b, r_cal)
    barrel = (ratio <= 1.0) & (np.abs(z_b) <= half)
    # endcap: the transverse path length that reaches |z| = half
    zend = np.where(pz >= 0, half, -half)
    safe_cot = np.where(cot >= 0, np.maximum(cot, 1e-12), np.minimum(cot, -1e-12))
    arc_e = np.maximum((zend - z0) / safe_cot, 0.0)
    alpha_e = np.where(charged, arc_e / rad, 0.0)
    r_e = np.where(charged, 2 * rad * np.abs(np.sin(alpha_e / 2)), arc_e)
    r = np.where(barrel, r_cal, np.maximum(r_e, 1e-6))
    z = np.where(barrel, z_b, zend)
    phi = wrap_phi(phi0 - q * np.where(barrel, alpha_b, alpha_e) / 2)
    return np.arcsinh(z / r), phi


def _towers(
    cfg: DetectorConfig,
    event: np.ndarray,
    layer: np.ndarray,
    e: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Towers from deposits: (columns, tower event, tower index of each deposit or -1
    where its tower was dropped)."""
    fwd = np.abs(eta) >= cfg.calo_eta_max
    cells = bin_cells(event, fwd, 2, np.where(fwd, cfg.forward_cell, cfg.hcal_cell), eta, phi)
    ecal = cells.sum(np.where(layer == ECAL, e, 0.0))
    hcal = cells.sum(np.where(layer == ECAL, 0.0, e))
    c_fwd, c_eta, n_cells = fwd[cells.first], cells.eta, cells.first.size
    noise = rng.standard_normal((2, n_cells))
    h_layer = np.where(c_fwd, FORWARD, HCAL)
    e_ecal = ecal + calorimeter_resolution(cfg, np.full(n_cells, ECAL), ecal, c_eta) * noise[0]
    e_hcal = hcal + calorimeter_resolution(cfg, h_layer, hcal, c_eta) * noise[1]
    e_ecal = np.where((ecal > 0) & (e_ecal > cfg.ecal_e_min), e_ecal, 0.0)
    h_min = np.where(c_fwd, cfg.forward_e_min, cfg.hcal_e_min)
    e_hcal = np.where((hcal > 0) & (e_hcal > h_min), e_hcal, 0.0)
    keep = (e_ecal > 0) | (e_hcal > 0)
    index = np.full(n_cells, -1, dtype=np.int64)
    index[keep] = np.arange(int(keep.sum()))
    cols = {
        "eta": c_eta[keep],
        "phi": cells.phi[keep],
        "eEcal": e_ecal[keep],
        "eHcal": e_hcal[keep],
    }
    return cols, event[cells.first][keep], index[cells.inverse]


def _genjets_met(
    p: Particles, hard: np.ndarray, geo: ElementConfig, rng: np.random.Generator
) -> dict[str, Any]:
    """Generator jets and MET of the hard-event particles."""
    n = len(p.counts)
    sel = hard
    hp = Particles(
        counts=np.bincount(p.event[sel], minlength=n),
        **{k: getattr(p, k)[sel] for k in ("px", "py", "pz", "e", "pid", "vx", "vy", "vz")},
    )
    visible = apply_detector(hp, None, rng)
    jets = cluster(
        visible, JetSelection(0.4, geo.genjet_pt_min, np.inf, np.inf), None, leading=None
    )
    order = np.lexsort((-jets.pt, jets.event))
    counts = np.bincount(jets.event, minlength=n)
    mass = np.sqrt(np.maximum(jets.e**2 - jets.px**2 - jets.py**2 - jets.pz**2, 0.0))
    out: dict[str, Any] = {
        f"GenJet_{k}": ak.unflatten(v[order].astype(_FLOAT), counts)
        for k, v in (("pt", jets.pt), ("eta", jets.eta), ("phi", jets.phi), ("mass", mass))
    }
    nu = np.isin(np.abs(hp.pid), _NEUTRINOS)
    ev = hp.event[nu]
    mx = np.bincount(ev, weights=hp.px[nu], minlength=n)
    my = np.bincount(ev, weights=hp.py[nu], minlength=n)
    out["GenMET_pt"] = np.hypot(mx, my).astype(_FLOAT)
    out["GenMET_phi"] = np.arctan2(my, mx).astype(_FLOAT)
    return out


def _kinematics(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    return pt, np.arcsinh(pz / np.maximum(pt, 1e-12)), np.arctan2(py, px)


def _tracks(
    cfg: DetectorConfig,
    geo: ElementConfig,
    p: Particles,
    charge: np.ndarray,
    visible: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The found charged particles: (mask of the tracked particles, tracks per event,
    the ``Track_*`` columns)."""
    apid = np.abs(p.pid)
    pt, eta, _ = _kinematics(p.px, p.py, p.pz)
    eff = track_efficiency(cfg, apid, pt, np.abs(eta))
    tracked = visible & (charge != 0) & (rng.random(pt.size) < eff)
    trk = reconstruct_tracks(cfg, p, tracked, charge, pt, rng)
    it = np.flatnonzero(tracked)
    t_pt, t_eta, t_phi = _kinematics(trk.px, trk.py, trk.pz)
    t_eta_calo, t_phi_calo = _calo_entry(geo, trk.px, trk.py, trk.pz, trk.charge, trk.vz)
    p_true = np.sqrt(p.px[it] ** 2 + p.py[it] ** 2 + p.pz[it] ** 2)
    muon_hit = (apid[it] == 13) & (p_true > geo.muon_p_min) & (np.abs(eta[it]) < geo.muon_eta_max)
    columns = {
        "pt": t_pt,
        "eta": t_eta,
        "phi": t_phi,
        "charge": trk.charge,
        "etaCalo": t_eta_calo,
        "phiCalo": t_phi_calo,
        "d0": trk.d0,
        "dz": trk.dz,
        "muonHit": muon_hit,
        "pdgId": p.pid[it],
    }
    return tracked, trk.counts, columns


def _deposits(
    cfg: DetectorConfig, geo: ElementConfig, p: Particles, charge: np.ndarray, visible: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The calorimeter deposits at the particles' true entry points: (particle, layer,
    energy, eta, phi) of each non-empty deposit (see the module docstring)."""
    apid = np.abs(p.pid)
    c_eta, c_phi = _calo_entry(geo, p.px, p.py, p.pz, charge, p.vz)
    calo = visible & (apid != 13) & (np.abs(c_eta) < cfg.forward_eta_max)
    in_fwd = np.abs(c_eta) >= cfg.calo_eta_max
    is_em = (apid == 22) | (apid == 11)
    f_ecal = np.where(
        is_em, 1.0, np.where(np.isin(apid, _K0S_LAMBDA), cfg.k0s_lambda_ecal_fraction, 0.0)
    )
    f_ecal = np.where(in_fwd, 0.0, f_ecal)
    idx = np.flatnonzero(calo)
    dep_idx = np.concatenate([idx, idx])
    dep_layer = np.concatenate([np.full(idx.size, ECAL), np.where(in_fwd[idx], FORWARD, HCAL)])
    dep_e = p.e[dep_idx] * np.concatenate([f_ecal[idx], 1.0 - f_ecal[idx]])
    nz = dep_e > 0
    dep_idx = dep_idx[nz]
    return dep_idx, dep_layer[nz], dep_e[nz], c_eta[dep_idx], c_phi[dep_idx]


def _tower_targets(
    p: Particles, tracked: np.ndarray, dep_idx: np.ndarray, dep_tower: np.ndarray, n_tw: int
) -> dict[str, np.ndarray]:
    """The target of each tower: the 4-vector sum of its untracked particles with the
    class and PDG id of the largest energy share (``none`` and zeros without one)."""
    # the tower of each particle (every deposit of a particle lands in the same tower)
    part_tower = np.full(p.pid.size, -1, dtype=np.int64)
    part_tower[dep_idx] = dep_tower
    ut = np.flatnonzero((part_tower >= 0) & ~tracked)
    owner = part_tower[ut]
    sums = {
        k: np.bincount(owner, weights=getattr(p, k)[ut], minlength=n_tw)
        for k in ("px", "py", "pz", "e")
    }
    # the class of the largest energy share: sort by (tower, energy), take the last
    order = np.lexsort((p.e[ut], owner))
    last = np.r_[owner[order][1:] != owner[order][:-1], True] if ut.size else np.zeros(0, bool)
    lead = ut[order][last]
    pid = np.zeros(n_tw, dtype=np.int64)
    pid[part_tower[lead]] = p.pid[lead]
    cls = np.where(np.isin(np.abs(pid), (11, 22)), CLS_PHOTON, CLS_NH)
    cls = np.where(pid == 0, CLS_NONE, cls)
    pt, eta, phi = _kinematics(sums["px"], sums["py"], sums["pz"])
    has = cls != CLS_NONE
    return {
        "class": cls,
        "pt": np.where(has, pt, 0.0),
        "eta": np.where(has, eta, 0.0),
        "phi": np.where(has, phi, 0.0),
        "energy": sums["e"],
        "charge": np.zeros(n_tw),
        "pdgId": pid,
    }


def _track_targets(p: Particles, it: np.ndarray, charge: np.ndarray) -> dict[str, np.ndarray]:
    """The target of each track (particles ``it``): its own generator particle."""
    apid = np.abs(p.pid[it])
    pt, eta, phi = _kinematics(p.px[it], p.py[it], p.pz[it])
    return {
        "class": np.where(apid == 11, CLS_ELECTRON, np.where(apid == 13, CLS_MUON, CLS_CH)),
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "energy": p.e[it],
        "charge": charge[it],
        "pdgId": p.pid[it],
    }


def build_elements(
    particles: Particles,
    detector: DetectorConfig,
    geometry: ElementConfig,
    rng: np.random.Generator,
    hard: np.ndarray | None = None,
) -> Elements:
    """Tracks, towers and their targets of a batch of events (see the module docstring).

    ``hard`` marks the particles of the hard event (all when None): only they make the
    generator jets and MET. Results depend only on the inputs and the state of ``rng``.
    """
    p = particles
    n = len(p.counts)
    hard = np.ones(p.pid.size, dtype=bool) if hard is None else hard
    charge = charges(p.pid)
    visible = ~np.isin(np.abs(p.pid), _NEUTRINOS)
    tracked, n_tracks, track = _tracks(detector, geometry, p, charge, visible, rng)
    dep_idx, dep_layer, dep_e, dep_eta, dep_phi = _deposits(detector, geometry, p, charge, visible)
    tower, tw_event, dep_tower = _towers(
        detector, p.event[dep_idx], dep_layer, dep_e, dep_eta, dep_phi, rng
    )
    it = np.flatnonzero(tracked)
    tr_target = _track_targets(p, it, charge)
    tw_target = _tower_targets(p, tracked, dep_idx, dep_tower, tw_event.size)
    # targets: per event, tracks then towers
    order = np.argsort(np.concatenate([p.event[it], tw_event]), kind="stable")
    target = {k: np.concatenate([v, tw_target[k]])[order] for k, v in tr_target.items()}
    for k in ("class", "charge", "pdgId"):
        target[k] = target[k].astype(np.int32)
    per_event = _genjets_met(p, hard, geometry, rng)
    per_event["nPileup"] = np.bincount(p.event[~hard], minlength=n).astype(np.int32)
    return Elements(
        n_tracks=n_tracks,
        n_towers=np.bincount(tw_event, minlength=n),
        track={k: _cast(v) for k, v in track.items()},
        tower={k: _cast(v) for k, v in tower.items()},
        target={k: _cast(v) for k, v in target.items()},
        event=per_event,
    )


def _cast(v: np.ndarray) -> np.ndarray:
    if v.dtype == np.float64:
        return v.astype(_FLOAT)
    if v.dtype == np.int64:
        return v.astype(np.int32)
    return v


Sample = Literal["ttbar", "qcd", "gun"]


class ElementOptions(DetectorSetOptions):
    """Everything that defines an element sample (``heptagon mlpf generate``); the
    detector's parameters ``detector_set`` sets are recorded in its manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample: Sample
    events: int = Field(gt=0)
    seed: int = Field(ge=0)
    out: Path
    pileup: float = Field(0.0, ge=0, le=200, description="mean number of pile-up events")
    pileup_library: int = Field(500, gt=0, description="minimum-bias library events")
    gun_energy: tuple[float, float] = (1.0, 200.0)
    gun_eta_max: float = Field(2.5, gt=0)
    jobs: int = Field(1, ge=1)
    shard_size: int = Field(500, gt=0)


@dataclass(frozen=True)
class ElementShardSpec:
    """One shard of an element sample."""

    sample: str
    index: int
    n_events: int
    seed: int
    detector: dict[str, Any]
    pileup: float
    library: str | None
    gun_energy: tuple[float, float]
    gun_eta_max: float
    path: str

    @property
    def entries(self) -> int:
        """Entries (events) the shard holds."""
        return self.n_events


def _gun_events(spec: ElementShardSpec, rng: np.random.Generator) -> Particles:
    pids = np.array(list(GUN_PARTICLES.values()))
    pid = pids[rng.integers(0, pids.size, spec.n_events)]
    sign = rng.choice([-1, 1], spec.n_events)
    pid = np.where(np.isin(pid, (22, 130)), pid, pid * sign)
    lo, hi = np.log(spec.gun_energy[0]), np.log(spec.gun_energy[1])
    energy = np.exp(rng.uniform(lo, hi, spec.n_events))
    eta = rng.uniform(-spec.gun_eta_max, spec.gun_eta_max, spec.n_events)
    return particle_gun(pid, energy, eta, rng)


def run_element_shard(
    spec: ElementShardSpec, report: Callable[[int], None] | None = None
) -> ShardRecord:
    """Generate one shard of elements and write it; return its manifest record."""
    rng = np.random.default_rng(spec.seed)
    if spec.sample == "gun":
        batches = [_gun_events(spec, rng)]
    else:
        batches = pythia_final_state(process_settings(spec.sample, spec.seed), spec.n_events)
    library = None
    if spec.library is not None:
        retain_freed_memory()  # as the jet shards with pile-up (generate.run.run_shard)
        library = read_library(Path(spec.library))
    det, geo = DetectorConfig(**spec.detector), ElementConfig()
    parts = []
    for particles in batches:
        hard = None
        if library is not None:
            overlay = overlay_pileup(particles, library, spec.pileup, BEAMSPOT_SIGMA_Z_MM, rng)
            particles, hard = overlay.particles, ~overlay.pileup
        parts.append(build_elements(particles, det, geo, rng, hard).table())
        if report is not None:
            report(len(particles.counts))
    table = {k: ak.concatenate([q[k] for q in parts]) for k in parts[0]}
    table["event"] = np.arange(spec.n_events, dtype=np.int64)
    path = Path(spec.path)
    write_table(table, path, "parquet")
    return ShardRecord(
        file=f"shards/{path.name}",
        cls=spec.sample,
        entries=spec.n_events,
        sha256=sha256sum(path),
        seed=spec.seed,
    )


@dataclass(frozen=True)
class ElementSummary:
    """What an element run made."""

    out: Path
    manifest: ElementManifest
    wall_s: float
    skipped_shards: int


def generate_elements(opts: ElementOptions, *, show_progress: bool = True) -> ElementSummary:
    """Generate (or finish) the element sample of ``opts`` in ``opts.out``: shards and a
    ``manifest.json`` with every detector and geometry setting."""
    det, geo = DetectorConfig(**opts.detector_knobs), ElementConfig()
    settings = {
        "sample": opts.sample,
        "events": opts.events,
        "seed": opts.seed,
        "pileup": opts.pileup,
        "pileup_library": opts.pileup_library,
        "beamspot_sigma_z_mm": BEAMSPOT_SIGMA_Z_MM,
        "gun_energy": list(opts.gun_energy),
        "gun_eta_max": opts.gun_eta_max,
        "shard_size": opts.shard_size,
        "detector": det.settings(),
        "geometry": geo.model_dump(),
    }
    prepare_out(opts.out, settings)
    library = None
    if opts.pileup > 0:
        library = opts.out / "pileup" / "minbias.parquet"
        minbias_library(library, opts.pileup_library, shard_seed(opts.seed, "minbias", 0))
    n_shards = -(-opts.events // opts.shard_size)
    specs = [
        ElementShardSpec(
            sample=opts.sample,
            index=i,
            n_events=min(opts.shard_size, opts.events - i * opts.shard_size),
            seed=shard_seed(opts.seed, opts.sample, i),
            detector=det.settings(),
            pileup=opts.pileup,
            library=None if library is None else str(library),
            gun_energy=opts.gun_energy,
            gun_eta_max=opts.gun_eta_max,
            path=str(opts.out / "shards" / f"{opts.sample}_{i:04d}.parquet"),
        )
        for i in range(n_shards)
    ]
    done = run_shards(
        specs,
        run_element_shard,
        jobs=opts.jobs,
        scheduler=None,
        title=f"mlpf generate {opts.sample}",
        unit="events",
        show_progress=show_progress,
    )
    manifest = ElementManifest.model_validate(
        {
            "kind": "elements",
            "versions": versions(),
            "generator": {"beams_ecm_gev": ECM_GEV, "common_settings": list(COMMON_SETTINGS)},
            **settings,
            "classes": list(CLASSES),
            "files": [r.listing() for r in done.records],
            "branches": branch_names(opts.out / done.records[0].file, "parquet"),
        }
    )
    manifest.write(opts.out / "manifest.json")
    return ElementSummary(opts.out, manifest, done.wall_s, done.skipped)
