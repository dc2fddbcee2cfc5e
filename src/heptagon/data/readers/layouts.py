"""The JetClass branches of the two public benchmark layouts, from their zero-padded
constituent arrays (shared by :mod:`~heptagon.data.readers.hdf5` and
:mod:`~heptagon.data.readers.npz`).

The jet is the four-vector sum of its constituents. What the public files do not store is
derived so that the shipped configs read them unchanged:

- ``event``: the entry's row index in the file (the layouts have no event number; it is
  also the key of the train / val / test split, so the split is the same either way);
- ``jet_sdmass`` and ``jet_tau1..4``: soft-drop mass (beta = 0, z_cut = 0.1, R0 = the
  layout's jet radius) and N-subjettiness (beta = 1) recomputed with FastJet from the
  constituents, with the definitions of :func:`heptagon.generate.jets.substructure` (what
  ``heptagon generate`` writes). Each is computed only when a config asks for it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import awkward as ak
import numpy as np
import vector

from heptagon.physics.kinematics import delta_phi

__all__ = [
    "EVENT",
    "JET",
    "PARTICLE",
    "SUBSTRUCTURE",
    "jet_branches",
    "soft_drop_mass",
]

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
    flat = (np.asarray(part.px), np.asarray(part.py), np.asarray(part.pz), np.asarray(part.E))
    if "jet_sdmass" in wanted:
        out["jet_sdmass"] = soft_drop_mass(counts, *flat, radius)
    if any(name in wanted for name in SUBSTRUCTURE[1:]):
        from heptagon.generate.jets import n_subjettiness  # FastJet: only when asked

        out |= n_subjettiness(counts, *flat, radius)
    return out


def soft_drop_mass(
    counts: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray,
    radius: float, z_cut: float = 0.1, beta: float = 0.0,
) -> np.ndarray:  # fmt: skip
    """Soft-drop mass [GeV] of each jet (flat constituents, ``counts`` per jet): the C/A
    tree of its constituents declustered, following the harder (pT) branch, until
    ``min(pT1, pT2) / (pT1 + pT2) > z_cut (dR12 / radius) ** beta`` (FastJet contrib's
    SoftDrop defaults). The same numbers as FastJet's awkward
    ``exclusive_jets_softdrop_grooming`` (what ``heptagon generate`` writes), walking the
    tree with the PseudoJet interface: about 20x faster."""
    import fastjet

    from heptagon.generate.jets import recluster_radius, silence_fastjet_banner

    silence_fastjet_banner()
    definition = fastjet.JetDefinition(fastjet.cambridge_algorithm, recluster_radius(radius))
    out = np.zeros(len(counts), dtype=np.float32)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    for i, (start, n) in enumerate(zip(starts.tolist(), counts.tolist(), strict=True)):
        if n == 0:
            continue
        particles = [
            fastjet.PseudoJet(*p)
            for p in zip(px[start : start + n].tolist(), py[start : start + n].tolist(),
                         pz[start : start + n].tolist(), e[start : start + n].tolist(), strict=True)
        ]  # fmt: skip
        sequence = fastjet.ClusterSequence(particles, definition)
        jet = sequence.exclusive_jets(1)[0]
        first, second = fastjet.PseudoJet(), fastjet.PseudoJet()
        while jet.has_parents(first, second):
            pt1, pt2 = first.pt(), second.pt()
            if min(pt1, pt2) / (pt1 + pt2) > z_cut * (first.delta_R(second) / radius) ** beta:
                break
            jet = first if pt1 >= pt2 else second
            first, second = fastjet.PseudoJet(), fastjet.PseudoJet()
        out[i] = jet.m()
    return out
