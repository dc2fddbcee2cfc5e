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

import numpy as np
from pydantic import BaseModel, ConfigDict

from heptagon.generate.detector import Candidates, Particles, apply_detector
from heptagon.generate.jets import JetSelection, cluster
from heptagon.physics.kinematics import delta_r
from heptagon.physics.pdg import CAT_NEUTRAL_HADRON, CAT_PHOTON, categories, charges

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
#: PDG ids below this have their charge in a table (:func:`_charges`)
_TABLE_IDS = 4096


class FastDetectorConfig(BaseModel):
    """Every parameter of the fast detector (GeV, mm); recorded in the manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracker_eta_max: float = 2.5
    track_pt_min: float = 0.1
    track_eff: float = 0.90
    track_res: float = 0.01
    d0_res: float = 0.03
    dz_res: float = 0.06
    calo_eta_max: float = 3.0  # no forward calorimeter
    # sigma(E) / E = sqrt(c^2 + s^2 / E)
    em_c: float = 0.01
    em_s: float = 0.10
    had_c: float = 0.06
    had_s: float = 1.2
    em_e_min: float = 0.5
    had_e_min: float = 1.0


@lru_cache(maxsize=1)
def _charge_table() -> np.ndarray:
    """The charge of every PDG id ``0 <= id < _TABLE_IDS`` (:func:`charges`), built once."""
    return charges(np.arange(_TABLE_IDS))


def _charges(pid: np.ndarray) -> np.ndarray:
    """:func:`heptagon.physics.pdg.charges` by table look-up: stable particles' ids are
    small, and sorting the ids (what ``charges`` does) was half the fast chain's time."""
    apid = np.abs(pid)
    small = apid < _TABLE_IDS
    q = _charge_table()[np.where(small, apid, 0)] * np.sign(pid)
    if not small.all():
        q[~small] = charges(pid[~small])
    return np.asarray(q)


def fast_response(
    particles: Particles, cfg: FastDetectorConfig, rng: np.random.Generator
) -> Candidates:
    """Reconstructed candidates of a batch of events by the fast chain (module docstring);
    sorted by event like the particles. Depends only on the inputs and ``rng``'s state."""
    pt2 = particles.px**2 + particles.py**2
    apid = np.abs(particles.pid)
    # |eta| < eta_max  <=>  pz^2 < sinh(eta_max)^2 pT^2: no rapidity computed for the rest
    idx = np.flatnonzero(
        (particles.pz**2 < np.sinh(cfg.calo_eta_max) ** 2 * pt2)
        & (apid != 12)
        & (apid != 14)
        & (apid != 16)
    )
    apid, pt2 = apid[idx], pt2[idx]
    px, py, pz, e = (v[idx] for v in (particles.px, particles.py, particles.pz, particles.e))
    charge = _charges(particles.pid[idx])
    n = idx.size
    tracked = (
        (charge != 0)
        & (pz**2 <= np.sinh(cfg.tracker_eta_max) ** 2 * pt2)
        & (pt2 > cfg.track_pt_min**2)
        & (rng.random(n, dtype=np.float32) < cfg.track_eff)
    )
    is_em = (apid == 22) | (apid == 11)
    s, c = np.where(is_em, cfg.em_s, cfg.had_s), np.where(is_em, cfg.em_c, cfg.had_c)
    rel = np.where(tracked, cfg.track_res, np.sqrt(c**2 + s**2 / e))
    scale = np.maximum(1.0 + rel * rng.standard_normal(n, dtype=np.float32), 0.0)
    e_min = np.where(is_em, cfg.em_e_min, cfg.had_e_min)
    keep = np.flatnonzero(tracked | ((apid != 13) & (e * scale > e_min)))
    tracked, scale, charge, is_em = tracked[keep], scale[keep], charge[keep], is_em[keep]
    px, py, pz, e = px[keep], py[keep], pz[keep], e[keep]
    p2 = px**2 + py**2 + pz**2
    # tracks keep their mass; a neutral candidate is massless with the smeared energy
    mom = np.where(tracked, scale, e * scale / np.sqrt(p2))
    mass2 = np.where(tracked, np.maximum(e**2 - p2, 0.0), 0.0)
    px, py, pz = px * mom, py * mom, pz * mom
    energy = np.sqrt(mom**2 * p2 + mass2)
    t = np.flatnonzero(tracked)
    src = idx[keep[t]]
    vx, vy, vz = particles.vx[src], particles.vy[src], particles.vz[src]
    tpx, tpy, tpz = px[t], py[t], pz[t]
    tpt2 = tpx**2 + tpy**2
    tpt = np.sqrt(tpt2)
    g = rng.standard_normal((2, t.size), dtype=np.float32)
    track = np.zeros((7, keep.size))
    d0, d0err, dz, dzerr, rvx, rvy, rvz = track
    d0[t] = (vx * tpy - vy * tpx) / tpt + cfg.d0_res * g[0]
    dz[t] = vz - (vx * tpx + vy * tpy) * tpz / tpt2 + cfg.dz_res * g[1]
    d0err[t], dzerr[t] = cfg.d0_res, cfg.dz_res
    # the reconstructed production point: moved by the d0 and dz smearing
    rvx[t] = vx - cfg.d0_res * g[0] * tpy / tpt
    rvy[t] = vy + cfg.d0_res * g[0] * tpx / tpt
    rvz[t] = vz + cfg.dz_res * g[1]
    category = np.where(is_em, CAT_PHOTON, CAT_NEUTRAL_HADRON)
    category[t] = categories(particles.pid[src], charge[t])
    return Candidates(
        counts=np.bincount(particles.event[idx[keep]], minlength=len(particles.counts)),
        px=px,
        py=py,
        pz=pz,
        e=energy,
        charge=np.where(tracked, charge, 0.0),
        category=category,
        d0=d0,
        d0err=d0err,
        dz=dz,
        dzerr=dzerr,
        vx=rvx,
        vy=rvy,
        vz=rvz,
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
    pair_jet = np.repeat(np.arange(event.size), per)
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
