"""Writers of tiny synthetic jet files in the JetClass schema (Parquet and ROOT), shared by
the data tests and their fixtures (a module of its own: ``conftest`` names collide across
test folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

JAGGED = [
    "part_px",
    "part_py",
    "part_pz",
    "part_energy",
    "part_deta",
    "part_dphi",
    "part_charge",
    "part_isChargedHadron",
    "part_isNeutralHadron",
    "part_isPhoton",
    "part_isElectron",
    "part_isMuon",
    "part_d0val",
    "part_d0err",
    "part_dzval",
    "part_dzerr",
]
SCALAR = [
    "jet_pt",
    "jet_eta",
    "jet_phi",
    "jet_energy",
    "jet_nparticles",
    "jet_sdmass",
    "jet_tau1",
    "jet_tau2",
    "jet_tau3",
    "jet_tau4",
]
CLASSES = ("QCD", "Tbqq")
N_PER_SHARD = 120


def make_jets(n: int, label: str, seed: int, n_max: int = 60) -> dict[str, Any]:
    """``n`` jets of class ``label`` as a dict of numpy / awkward arrays (JetClass names)."""
    rng = np.random.default_rng(seed)
    low = 5 if label == "QCD" else 20
    counts = rng.integers(low, n_max, size=n)
    total = int(counts.sum())
    jet_pt = rng.uniform(500, 1000, n)
    jet_eta = rng.uniform(-2, 2, n)
    jet_phi = rng.uniform(-np.pi, np.pi, n)
    frac = ak.unflatten(rng.exponential(1.0, total), counts)
    frac = frac / ak.sum(frac, axis=1)
    deta = rng.normal(0, 0.2, total)
    dphi = rng.normal(0, 0.2, total)
    pt = ak.flatten(frac * jet_pt).to_numpy()
    eta = np.repeat(jet_eta, counts) + deta
    phi = np.repeat(jet_phi, counts) + dphi
    kind = rng.integers(0, 5, total)
    charge = np.where(kind == 0, rng.choice([-1.0, 1.0], total), 0.0)
    flat = {
        "part_px": pt * np.cos(phi),
        "part_py": pt * np.sin(phi),
        "part_pz": pt * np.sinh(eta),
        "part_energy": pt * np.cosh(eta),
        "part_deta": deta,
        "part_dphi": dphi,
        "part_charge": charge,
        "part_isChargedHadron": (kind == 0) * 1.0,
        "part_isNeutralHadron": (kind == 1) * 1.0,
        "part_isPhoton": (kind == 2) * 1.0,
        "part_isElectron": (kind == 3) * 1.0,
        "part_isMuon": (kind == 4) * 1.0,
        "part_d0val": rng.normal(0, 0.05, total),
        "part_d0err": rng.uniform(0.01, 0.05, total),
        "part_dzval": rng.normal(0, 0.05, total),
        "part_dzerr": rng.uniform(0.01, 0.05, total),
    }
    out: dict[str, Any] = {k: ak.unflatten(v.astype(np.float32), counts) for k, v in flat.items()}
    out |= {
        "jet_pt": jet_pt,
        "jet_eta": jet_eta,
        "jet_phi": jet_phi,
        "jet_energy": ak.to_numpy(ak.sum(out["part_energy"], axis=1)),
        "jet_nparticles": counts,
        "jet_sdmass": rng.uniform(0, 250, n) if label == "QCD" else rng.normal(172, 15, n),
        "jet_tau1": rng.uniform(0.2, 1, n),
        "jet_tau2": rng.uniform(0.1, 0.6, n),
        "jet_tau3": rng.uniform(0.05, 0.4, n),
        "jet_tau4": rng.uniform(0.02, 0.3, n),
    }
    for key in SCALAR:
        out[key] = np.asarray(out[key], dtype=np.float32)
    for cls in CLASSES:
        out[f"label_{cls}"] = np.full(n, cls == label, dtype=np.int32)
    out["event"] = np.arange(n, dtype=np.int64)
    return out


def write_parquet(path: Path, jets: dict[str, Any], row_group_size: int = 50) -> Path:
    ak.to_parquet(ak.zip(jets, depth_limit=1), path, row_group_size=row_group_size)
    return path


def write_root(path: Path, jets: dict[str, Any], treename: str = "tree") -> Path:
    """A TTree with the same content, written in two baskets."""
    with uproot.recreate(path) as f:
        types = {
            k: ("var * float32" if isinstance(v, ak.Array) else v.dtype) for k, v in jets.items()
        }
        f.mktree(treename, types)
        n = len(jets["event"])
        for lo, hi in ((0, n // 2), (n // 2, n)):
            f[treename].extend({k: v[lo:hi] for k, v in jets.items()})
    return path
