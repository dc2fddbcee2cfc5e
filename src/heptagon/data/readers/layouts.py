"""The JetClass branches of the two public benchmark layouts, from their zero-padded
constituent arrays (shared by :mod:`~heptagon.data.readers.hdf5` and
:mod:`~heptagon.data.readers.npz`).

The jet is the four-vector sum of its constituents. What the public files do not store is
derived so that the shipped configs read them unchanged:

- ``event``: the entry's row index in the file (the layouts have no event number; it is
  also the key of the train / val / test split, so the split is the same either way);
- ``jet_sdmass`` and ``jet_tau1..4``: soft-drop mass (beta = 0, z_cut = 0.1, R0 = the
  layout's jet radius) and N-subjettiness (beta = 1) recomputed with FastJet from the
  constituents (:func:`heptagon.generate.jets.substructure`, the same definitions
  ``heptagon generate`` writes). Computed only when a config asks for them (a few
  hundred microseconds per jet).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import awkward as ak
import numpy as np
import vector

from heptagon.physics.kinematics import delta_phi

__all__ = ["EVENT", "JET", "PARTICLE", "SUBSTRUCTURE", "jet_branches"]

PARTICLE = ("part_px", "part_py", "part_pz", "part_energy", "part_deta", "part_dphi")
JET = ("jet_pt", "jet_eta", "jet_phi", "jet_energy", "jet_mass", "jet_nparticles")
#: recomputed from the constituents, only when asked for
SUBSTRUCTURE = ("jet_sdmass", "jet_tau1", "jet_tau2", "jet_tau3", "jet_tau4")
EVENT = "event"


def jet_branches(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    energy: np.ndarray,
    real: np.ndarray,
    *,
    start: int,
    radius: float,
    wanted: Collection[str],
) -> dict[str, Any]:
    """JetClass branches from zero-padded ``(jets, particles)`` momenta [GeV] of entries
    ``start...``; ``real`` marks the particles. The substructure branches (anti-kT jets of
    ``radius``) are computed only if one of them is in ``wanted``."""
    counts = real.sum(axis=1)
    jet: Any = vector.array(
        {
            "px": (px * real).sum(axis=1),
            "py": (py * real).sum(axis=1),
            "pz": (pz * real).sum(axis=1),
            "E": (energy * real).sum(axis=1),
        }
    )
    part: Any = vector.array({"px": px[real], "py": py[real], "pz": pz[real], "E": energy[real]})
    jet_eta, jet_phi = np.repeat(jet.eta, counts), np.repeat(jet.phi, counts)

    def jagged(flat: np.ndarray) -> ak.Array:
        return ak.unflatten(np.asarray(flat, dtype=np.float32), counts)

    out: dict[str, Any] = {
        "part_px": jagged(part.px),
        "part_py": jagged(part.py),
        "part_pz": jagged(part.pz),
        "part_energy": jagged(part.E),
        "part_deta": jagged(part.eta - jet_eta),
        "part_dphi": jagged(delta_phi(part.phi, jet_phi)),
        "jet_pt": jet.pt.astype(np.float32),
        "jet_eta": jet.eta.astype(np.float32),
        "jet_phi": jet.phi.astype(np.float32),
        "jet_energy": jet.E.astype(np.float32),
        "jet_mass": jet.mass.astype(np.float32),
        "jet_nparticles": counts.astype(np.float32),
        EVENT: np.arange(start, start + len(counts), dtype=np.int64),
    }
    if any(name in wanted for name in SUBSTRUCTURE):
        from heptagon.generate.jets import silence_fastjet_banner, substructure

        silence_fastjet_banner()
        flat = (np.asarray(part.px), np.asarray(part.py), np.asarray(part.pz), np.asarray(part.E))
        out |= substructure(counts, *flat, radius)
    return out
