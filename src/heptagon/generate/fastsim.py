"""The fast detector chain (``heptagon generate ... --detector fast``) and the
generator-level jets that pair its samples with the full chain's.

:func:`fast_response` turns the same hadron-level particles as
:func:`heptagon.generate.detector.apply_detector` (the ``full`` chain) into
reconstructed candidates, cheaper and measurably different, in one vectorised pass over
the particles (no calorimeter cells, no sorting, no merging of track and tower lists):

- **Tracks.** Charged particles inside ``|eta| <= tracker_eta_max`` above
  ``track_pt_min`` are found with one flat efficiency (no dependence on type, pT or
  region), their momentum scaled by ``1 + track_res * N(0, 1)`` (one resolution for all
  pT and ``|eta|``), their impact parameters smeared with constant resolutions
  ``d0_res`` and ``dz_res`` (mm; no ``1/pT`` multiple-scattering term).
- **Neutrals.** Every other visible particle (photons, neutral hadrons, untracked
  charged particles except muons) becomes *one* massless candidate along its own
  direction with its energy smeared by a stochastic + constant term, electromagnetic or
  hadronic: no showering, no towers (so no granularity, no merging of nearby particles,
  no noise term), and it is kept above ``em_e_min`` / ``had_e_min``.

Pile-up is not simulated by the fast chain (``GenerateOptions`` refuses the pair).

The two chains read the same Pythia events for the same seed (Pythia's seed is the
shard's; the detector draws from its own generator), so paired samples share event ids.
:func:`generator_jets` gives each reconstructed jet the anti-kT jet of the hadron-level
visible particles nearest it within ``dR < GEN_MATCH_DR`` (``jet_gen_pt``,
``jet_gen_eta``, ``jet_gen_phi``; ``0`` where there is none): the generator-level jet
that matches a full-chain jet to a fast-chain jet and the condition of the refinement
(:mod:`heptagon.apps.refine`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from heptagon.generate.detector import (
    Candidates,
    Fraction,
    NonNegative,
    Particles,
    Positive,
    apply_detector,
)
from heptagon.generate.jets import JetSelection, cluster
from heptagon.physics.arrays import owner_index
from heptagon.physics.kinematics import delta_r
from heptagon.physics.pdg import (
    CAT_CHARGED_HADRON,
    CAT_ELECTRON,
    CAT_MUON,
    CAT_NEUTRAL_HADRON,
    CAT_PHOTON,
    charges,
)

__all__ = [
    "GEN_BRANCHES",
    "GEN_MATCH_DR",
    "FastDetectorConfig",
    "fast_response",
    "generator_jets",
]

#: generator-level jet match radius (a reconstructed jet to its hadron-level jet)
GEN_MATCH_DR = 0.2
#: the generator-level jet branches :func:`generator_jets` writes
GEN_BRANCHES = ("jet_gen_pt", "jet_gen_eta", "jet_gen_phi")
#: generator-level jets are clustered down to this fraction of the reconstructed pT_min
_GEN_PT_FRACTION = 0.5
#: PDG ids of magnitude below this are looked up in a table (:func:`_pdg_tables`)
_TABLE_IDS = 4096
#: particles per block of the particle-level pass (:func:`_acceptance`)
_BLOCK = 16384


class FastDetectorConfig(BaseModel):
    """Every parameter of the fast detector (GeV, mm); recorded in the manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracker_eta_max: Positive = 2.5
    track_pt_min: NonNegative = 0.1
    track_eff: Fraction = 0.90
    track_res: NonNegative = 0.01
    d0_res: NonNegative = 0.03
    dz_res: NonNegative = 0.06
    calo_eta_max: Positive = 3.0  # no forward calorimeter
    # sigma(E) / E = sqrt(c^2 + s^2 / E)
    em_c: NonNegative = 0.01
    em_s: NonNegative = 0.10
    had_c: NonNegative = 0.06
    had_s: NonNegative = 1.2
    em_e_min: NonNegative = 0.5
    had_e_min: NonNegative = 1.0

    def settings(self) -> dict[str, Any]:
        """The settings a sample records (every field; as
        :meth:`heptagon.generate.detector.DetectorConfig.settings`)."""
        return self.model_dump()


# particle types of the look-up tables (:func:`_pdg_tables`); a candidate's *kind* is its
# type, plus ``_N_TYPES`` if it is a track: every per-candidate parameter is one table
# look-up by kind (cheaper than ``np.where`` on a random mask, which mispredicts branches).
# The charged (trackable) types are the consecutive ``_ELECTRON`` ... ``_CHARGED``.
_PHOTON, _ELECTRON, _MUON, _CHARGED, _NEUTRAL, _INVISIBLE = range(6)
_N_TYPES = 6


@lru_cache(maxsize=1)
def _pdg_tables() -> tuple[np.ndarray, np.ndarray]:
    """The type (``_PHOTON`` ...) and three times the charge (:func:`charges`, in thirds of
    e: quark content) of every PDG id ``-_TABLE_IDS <= id < _TABLE_IDS``, indexed by the id
    itself (negative ids from the end, as numpy indexes), built once."""
    ids = np.arange(2 * _TABLE_IDS)
    ids[_TABLE_IDS:] -= 2 * _TABLE_IDS
    apid = np.abs(ids)
    charge = charges(np.arange(_TABLE_IDS + 1))[apid] * np.sign(ids)
    ptype = np.where(charge != 0, _CHARGED, _NEUTRAL).astype(np.int8)
    for pdg, t in (
        ((22,), _PHOTON),
        ((11,), _ELECTRON),
        ((13,), _MUON),
        ((12, 14, 16), _INVISIBLE),
    ):
        ptype[np.isin(apid, pdg)] = t
    return ptype, np.round(3 * charge).astype(np.int16)


def _pdg_look_up(pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The type (``_PHOTON`` ...) and three times the charge (``int16``; :func:`charges` is
    ``charge3 / 3``) of each PDG id by table look-up: stable particles' ids are small, and
    ``charges`` sorts the ids (that was half the fast chain's time); ids beyond the tables
    are charged or neutral hadrons, their charge from ``charges``."""
    type_table, charge3_table = _pdg_tables()
    if pid.size == 0 or (pid.min() >= -_TABLE_IDS and pid.max() < _TABLE_IDS):
        return type_table[pid], charge3_table[pid]
    big = (pid < -_TABLE_IDS) | (pid >= _TABLE_IDS)
    small_pid = np.where(big, 0, pid)
    ptype, charge3 = type_table[small_pid], charge3_table[small_pid]
    q = charges(pid[big])
    ptype[big] = np.where(q != 0, _CHARGED, _NEUTRAL)
    charge3[big] = np.round(3 * q)
    return ptype, charge3


@lru_cache(maxsize=8)
def _kind_tables(cfg: FastDetectorConfig) -> dict[str, np.ndarray]:
    """Per kind (type, + ``_N_TYPES`` for tracks): the resolution terms ``c2``, ``s2``
    (``sigma(E) / E = sqrt(c2 + s2 / E)``), the smeared-energy threshold ``e_min`` and the
    ``CAT_*`` category of the candidate."""
    em = (cfg.em_c**2, cfg.em_s**2, cfg.em_e_min)
    had = (cfg.had_c**2, cfg.had_s**2, cfg.had_e_min)
    track = (cfg.track_res**2, 0.0, -np.inf)  # always kept
    dropped = (0.0, 0.0, np.inf)  # never kept (untracked muons; kinds never made)
    rows = (
        (*em, CAT_PHOTON),  # photon
        (*em, CAT_PHOTON),  # untracked electron
        (*dropped, CAT_MUON),  # untracked muon
        (*had, CAT_NEUTRAL_HADRON),  # untracked charged hadron
        (*had, CAT_NEUTRAL_HADRON),  # neutral hadron
        (*dropped, CAT_NEUTRAL_HADRON),  # invisible (cut before)
        (*dropped, CAT_PHOTON),  # tracked photon (none)
        (*track, CAT_ELECTRON),
        (*track, CAT_MUON),
        (*track, CAT_CHARGED_HADRON),
        (*dropped, CAT_NEUTRAL_HADRON),  # tracked neutral hadron (none)
        (*dropped, CAT_NEUTRAL_HADRON),  # tracked invisible (none)
    )
    c2, s2, e_min, category = zip(*rows, strict=True)
    return {
        "c2": np.array(c2),
        "s2": np.array(s2),
        "e_min": np.array(e_min),
        "category": np.array(category, dtype=np.int64),
    }


def _acceptance(particles: Particles, cfg: FastDetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Whether each particle is inside the calorimeters (``|eta| < calo_eta_max``) and
    inside the tracker above its pT threshold; in blocks of ``_BLOCK`` particles, whose
    temporaries stay in cache."""
    # |eta| < eta_max  <=>  pz^2 < sinh(eta_max)^2 pT^2: no rapidity computed
    calo, tracker = np.sinh(cfg.calo_eta_max) ** 2, np.sinh(cfg.tracker_eta_max) ** 2
    size = particles.px.size
    visible, trackable = np.empty(size, dtype=bool), np.empty(size, dtype=bool)
    buf = np.empty((3, min(size, _BLOCK)))
    low = np.empty(min(size, _BLOCK), dtype=bool)
    for lo in range(0, size, _BLOCK):
        hi = min(lo + _BLOCK, size)
        pt2, pz2, cut = buf[:, : hi - lo]
        np.multiply(particles.px[lo:hi], particles.px[lo:hi], out=pt2)
        pt2 += np.multiply(particles.py[lo:hi], particles.py[lo:hi], out=pz2)
        np.multiply(particles.pz[lo:hi], particles.pz[lo:hi], out=pz2)
        np.less(pz2, np.multiply(pt2, calo, out=cut), out=visible[lo:hi])
        np.less_equal(pz2, np.multiply(pt2, tracker, out=cut), out=trackable[lo:hi])
        trackable[lo:hi] &= np.greater(pt2, cfg.track_pt_min**2, out=low[: hi - lo])
    return visible, trackable


def _four_momenta(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    e: np.ndarray,
    scale: np.ndarray,
    smeared: np.ndarray,
    tracked: np.ndarray,
) -> np.ndarray:
    """Scales the candidates' momenta (in place) and returns their energies: a track keeps
    its mass, its momentum times ``scale``; a neutral candidate is massless with the
    ``smeared`` energy (consumed: it becomes the energies)."""
    t = np.flatnonzero(tracked)
    p2 = px * px
    buf = py * py
    p2 += buf
    np.multiply(pz, pz, out=buf)
    p2 += buf
    mom = smeared  # divided in place: E scale / |p|
    mom /= np.sqrt(p2, out=buf)
    mom[t] = scale[t]
    mass2 = np.multiply(e, e, out=buf)
    mass2 -= p2
    np.maximum(mass2, 0.0, out=mass2)
    mass2 *= tracked
    px *= mom
    py *= mom
    pz *= mom
    energy = np.multiply(mom, mom, out=mom)
    energy *= p2
    energy += mass2
    return np.sqrt(energy, out=energy)


def _track_parameters(
    particles: Particles,
    src: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    t: np.ndarray,
    cfg: FastDetectorConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """``d0, dz, vx, vy, vz`` of the candidates (0 but for the tracks ``t``, particles
    ``src``): the impact parameters w.r.t. the origin, smeared, and the production point
    moved by that smearing."""
    vx, vy, vz = (v[src] for v in (particles.vx, particles.vy, particles.vz))
    tpx, tpy, tpz = (v[t] for v in (px, py, pz))
    tpt2 = tpx * tpx
    tmp = tpy * tpy
    tpt2 += tmp
    tpt = np.sqrt(tpt2)
    g = rng.standard_normal((2, t.size), dtype=np.float32)
    g0, g1 = cfg.d0_res * g[0], cfg.dz_res * g[1]
    d0, dz, rvx, rvy, rvz = (np.zeros(px.size) for _ in range(5))
    d0_t = vx * tpy
    d0_t -= np.multiply(vy, tpx, out=tmp)
    d0_t /= tpt
    d0_t += g0
    d0[t] = d0_t
    dz_t = np.multiply(vx, tpx, out=d0_t)
    dz_t += np.multiply(vy, tpy, out=tmp)
    dz_t *= tpz
    dz_t /= tpt2
    np.subtract(vz, dz_t, out=dz_t)
    dz_t += g1
    dz[t] = dz_t
    shift = np.multiply(g0, tpy, out=tmp)
    shift /= tpt
    rvx[t] = np.subtract(vx, shift, out=shift)
    shift = np.multiply(g0, tpx, out=tmp)
    shift /= tpt
    rvy[t] = np.add(vy, shift, out=shift)
    rvz[t] = np.add(vz, g1, out=tmp)
    return d0, dz, rvx, rvy, rvz


def fast_response(
    particles: Particles, cfg: FastDetectorConfig, rng: np.random.Generator
) -> Candidates:
    """Reconstructed candidates of a batch of events by the fast chain (module docstring);
    sorted by event like the particles. Depends only on the inputs and ``rng``'s state."""
    # Written for few fresh float arrays (arithmetic in place, cuts as 1-byte masks, small
    # integer codes): a fresh array the size of a batch is fresh pages and cache misses,
    # which cost more than the arithmetic on it.
    tables = _kind_tables(cfg)
    ptype, charge3 = _pdg_look_up(particles.pid)
    visible, trackable = _acceptance(particles, cfg)
    visible &= ptype != _INVISIBLE
    trackable &= (ptype >= _ELECTRON) & (ptype <= _CHARGED)
    idx = np.flatnonzero(visible)
    n = idx.size
    e, ptype, charge3, tracked = (v[idx] for v in (particles.e, ptype, charge3, trackable))
    tracked &= rng.random(n, dtype=np.float32) < cfg.track_eff
    kind = np.multiply(tracked, _N_TYPES, dtype=np.int8)
    kind += ptype
    # the smearing factor 1 + sqrt(c2 + s2 / E) N(0, 1), at least 0
    scale = np.take(tables["s2"], kind)
    scale /= e
    scale += np.take(tables["c2"], kind)
    np.sqrt(scale, out=scale)
    scale *= rng.standard_normal(n, dtype=np.float32)
    scale += 1.0
    np.maximum(scale, 0.0, out=scale)
    smeared = e * scale
    keep = np.flatnonzero(smeared > np.take(tables["e_min"], kind))
    sel = idx[keep]
    e, smeared, scale, kind, charge3 = (v[keep] for v in (e, smeared, scale, kind, charge3))
    px, py, pz = (v[sel] for v in (particles.px, particles.py, particles.pz))
    tracked = kind >= _N_TYPES
    energy = _four_momenta(px, py, pz, e, scale, smeared, tracked)
    t = np.flatnonzero(tracked)
    d0, dz, vx, vy, vz = _track_parameters(particles, sel[t], px, py, pz, t, cfg, rng)
    charge = np.zeros(keep.size)
    charge[t] = charge3[t] / 3.0
    return Candidates(
        counts=np.diff(np.searchsorted(sel, np.cumsum(particles.counts)), prepend=0),
        px=px,
        py=py,
        pz=pz,
        e=energy,
        charge=charge,
        category=np.take(tables["category"], kind),
        d0=d0,
        d0err=tracked * cfg.d0_res,
        dz=dz,
        dzerr=tracked * cfg.dz_res,
        vx=vx,
        vy=vy,
        vz=vz,
        vertex=np.zeros(px.size, dtype=np.int8),
    )


def generator_jets(
    particles: Particles,
    sel: JetSelection,
    event: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
) -> dict[str, np.ndarray]:
    """The generator-level jet (anti-kT of the visible hadron-level particles, the
    selection's radius, down to half its pT_min) nearest each reconstructed jet
    (``event``, ``eta``, ``phi``: its event in the batch and axis) within
    ``dR < GEN_MATCH_DR``: :data:`GEN_BRANCHES` (float32; 0 where none matches)."""
    hadrons = apply_detector(particles, None, np.random.default_rng(0))  # draws nothing
    gen_sel = replace(sel, pt_min=_GEN_PT_FRACTION * sel.pt_min, pt_max=np.inf)
    gen = cluster(hadrons, gen_sel, None, leading=None)
    out = {k: np.zeros(event.size, dtype=np.float32) for k in GEN_BRANCHES}
    if gen.event.size == 0 or event.size == 0:
        return out
    # every (reconstructed jet, generator jet) pair of the same event
    n_events = int(max(gen.event.max(), event.max())) + 1
    n_gen = np.bincount(gen.event, minlength=n_events)
    start = np.cumsum(n_gen) - n_gen
    per = n_gen[event]
    pair_jet = owner_index(per)
    pair_gen = np.repeat(start[event], per) + (
        np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
    )
    gen_eta, gen_phi, gen_pt = gen.eta, gen.phi, gen.pt
    dr = delta_r(eta[pair_jet], phi[pair_jet], gen_eta[pair_gen], gen_phi[pair_gen])
    ok = dr < GEN_MATCH_DR
    order = np.lexsort((dr[ok], pair_jet[ok]))  # by jet, nearest first
    jet, best = pair_jet[ok][order], pair_gen[ok][order]
    first = np.unique(jet, return_index=True)[1]
    jet, best = jet[first], best[first]
    out["jet_gen_pt"][jet] = gen_pt[best]
    out["jet_gen_eta"][jet] = gen_eta[best]
    out["jet_gen_phi"][jet] = gen_phi[best]
    return out
