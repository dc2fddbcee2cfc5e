"""PDG-id facts through the ``particle`` package, vectorised over arrays (one lookup per
unique id), and the JetClass particle types of reconstructed candidates.

The five particle types of the JetClass schema (``part_is<Type>`` flags): photons,
electrons and muons by their id, other charged particles are charged hadrons and other
neutral ones neutral hadrons.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from particle import InvalidParticle, Particle, ParticleNotFound
from particle.pdgid import charge as pdg_charge

__all__ = [
    "CAT_CHARGED_HADRON",
    "CAT_ELECTRON",
    "CAT_MUON",
    "CAT_NEUTRAL_HADRON",
    "CAT_PHOTON",
    "TYPE_FLAGS",
    "categories",
    "charges",
    "masses",
    "type_flags",
]

CAT_CHARGED_HADRON, CAT_NEUTRAL_HADRON, CAT_PHOTON, CAT_ELECTRON, CAT_MUON = range(5)
#: the JetClass flag branch of each category, in category order
TYPE_FLAGS = (
    "part_isChargedHadron",
    "part_isNeutralHadron",
    "part_isPhoton",
    "part_isElectron",
    "part_isMuon",
)


@lru_cache(maxsize=4096)
def _charge(pid: int) -> float:
    q = pdg_charge(pid)
    return 0.0 if q is None else float(q)


@lru_cache(maxsize=4096)
def _mass_gev(pid: int) -> float:
    mass = Particle.from_pdgid(pid).mass
    return 0.0 if mass is None else mass / 1000.0


def charges(pid: np.ndarray) -> np.ndarray:
    """Electric charge (e) of each PDG id (from the id's digits: any valid id works)."""
    uniq, inverse = np.unique(np.asarray(pid, dtype=np.int64), return_inverse=True)
    return np.array([_charge(int(p)) for p in uniq], dtype=np.float64)[inverse]


def masses(pid: np.ndarray) -> np.ndarray:
    """Mass (GeV) of each PDG id from the PDG table; ``KeyError`` naming an unknown id."""
    uniq, inverse = np.unique(np.asarray(pid, dtype=np.int64), return_inverse=True)
    out = np.empty(uniq.size)
    for i, p in enumerate(uniq):
        try:
            out[i] = _mass_gev(int(p))
        except (ParticleNotFound, InvalidParticle):
            raise KeyError(int(p)) from None
    return out[inverse]


def categories(pid: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """The ``CAT_*`` type of each particle from its id and charge."""
    apid = np.abs(pid)
    cat = np.where(charge != 0, CAT_CHARGED_HADRON, CAT_NEUTRAL_HADRON)
    cat = np.where(apid == 22, CAT_PHOTON, cat)
    cat = np.where(apid == 11, CAT_ELECTRON, cat)
    return np.where(apid == 13, CAT_MUON, cat)


def type_flags(category: np.ndarray) -> dict[str, np.ndarray]:
    """The JetClass ``part_is<Type>`` flags (booleans) of each category."""
    return {name: category == cat for cat, name in enumerate(TYPE_FLAGS)}
