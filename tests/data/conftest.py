"""Tiny synthetic input files in the layouts the data stage reads.

- ``jet_dataset``: a heptagon dataset dir (``shards/*.parquet`` written with
  ``ak.to_parquet``, ``manifest.json``) in the JetClass schema, two classes;
- ``jet_root_files``: the same shards as ROOT TTrees (uproot ``mktree``);
- ``nanoaod_file``: an event-level NanoAOD-schema ROOT file;
- ``top_landscape_file`` / ``qg_file``: the two public benchmark layouts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot
from jetfiles import N_PER_SHARD, make_jets, write_parquet, write_root


@pytest.fixture(scope="session")
def jet_shards() -> dict[str, dict[str, Any]]:
    """Shard name -> jets: two shards of QCD, one of Tbqq."""
    return {
        "qcd_000": make_jets(N_PER_SHARD, "QCD", 1),
        "qcd_001": make_jets(N_PER_SHARD, "QCD", 2),
        "tbqq_000": make_jets(N_PER_SHARD, "Tbqq", 3),
    }


@pytest.fixture(scope="session")
def jet_dataset(tmp_path_factory: pytest.TempPathFactory, jet_shards: dict[str, Any]) -> Path:
    """A dataset dir as ``heptagon generate`` writes it (Parquet shards + manifest)."""
    root = tmp_path_factory.mktemp("dataset")
    (root / "shards").mkdir()
    for name, jets in jet_shards.items():
        write_parquet(root / "shards" / f"{name}.parquet", jets)
    manifest = {"schema_version": 1, "files": sorted(jet_shards)}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="session")
def jet_root_files(tmp_path_factory: pytest.TempPathFactory, jet_shards: dict[str, Any]) -> Path:
    """The same shards as ROOT files, in a dir of their own."""
    root = tmp_path_factory.mktemp("rootshards")
    for name, jets in jet_shards.items():
        write_root(root / f"{name}.root", jets)
    return root


@pytest.fixture(scope="session")
def nanoaod_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An event-level file with NanoAOD branch names and counters, as CMS writes them."""
    rng = np.random.default_rng(7)
    n = 200
    n_jet = rng.integers(0, 7, n).astype(np.int32)
    n_muon = rng.integers(0, 3, n).astype(np.int32)

    def jagged(counts: np.ndarray, values: np.ndarray) -> ak.Array:
        return ak.unflatten(values.astype(np.float32), counts)

    tj, tm = int(n_jet.sum()), int(n_muon.sum())
    jet_pt = -np.sort(-rng.exponential(50, tj))  # sorted within the file, good enough
    branches = {
        "Jet_pt": jagged(n_jet, jet_pt + 20),
        "Jet_eta": jagged(n_jet, rng.uniform(-2.5, 2.5, tj)),
        "Jet_phi": jagged(n_jet, rng.uniform(-np.pi, np.pi, tj)),
        "Jet_mass": jagged(n_jet, rng.uniform(2, 30, tj)),
        "Jet_btag": jagged(n_jet, rng.uniform(0, 1, tj)),
        "Muon_pt": jagged(n_muon, rng.exponential(30, tm) + 5),
        "Muon_eta": jagged(n_muon, rng.uniform(-2.4, 2.4, tm)),
        "Muon_phi": jagged(n_muon, rng.uniform(-np.pi, np.pi, tm)),
        "MET_pt": rng.exponential(40, n).astype(np.float32),
        "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "genWeight": rng.choice([0.5, 2.0], n).astype(np.float32),
        "event": np.arange(1000, 1000 + n, dtype=np.uint64),
    }
    path = tmp_path_factory.mktemp("nano") / "nano.root"
    with uproot.recreate(path) as f:
        # uproot names the counters n<collection>; NanoAOD's are nJet, nMuon
        f.mktree(
            "Events",
            {
                "Jet": ak.zip({k[4:]: v for k, v in branches.items() if k.startswith("Jet_")}).type,
                "Muon": ak.zip(
                    {k[5:]: v for k, v in branches.items() if k.startswith("Muon_")}
                ).type,
                **{k: branches[k].dtype for k in ("MET_pt", "MET_phi", "genWeight", "event")},
            },
            counter_name=lambda name: f"n{name}",
        )
        f["Events"].extend(
            {
                "Jet": ak.zip({k[4:]: v for k, v in branches.items() if k.startswith("Jet_")}),
                "Muon": ak.zip({k[5:]: v for k, v in branches.items() if k.startswith("Muon_")}),
                **{k: branches[k] for k in ("MET_pt", "MET_phi", "genWeight", "event")},
            }
        )
    return path


@pytest.fixture(scope="session")
def top_landscape_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The top-tagging landscape layout: a pandas table of zero-padded E/PX/PY/PZ_i."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    rng = np.random.default_rng(11)
    n, m = 40, 30
    counts = rng.integers(3, m, n)
    cols: dict[str, np.ndarray] = {}
    pt = rng.exponential(50, (n, m))
    eta = rng.normal(0, 0.3, (n, m))
    phi = rng.normal(0, 0.3, (n, m))
    real = np.arange(m)[None, :] < counts[:, None]
    values = {
        "E": pt * np.cosh(eta),
        "PX": pt * np.cos(phi),
        "PY": pt * np.sin(phi),
        "PZ": pt * np.sinh(eta),
    }
    for i in range(m):
        for key, v in values.items():
            cols[f"{key}_{i}"] = np.where(real[:, i], v[:, i], 0.0).astype(np.float32)
    cols["truthE"] = np.zeros(n, dtype=np.float32)
    cols["ttv"] = np.zeros(n, dtype=np.int8)
    cols["is_signal_new"] = (np.arange(n) % 2).astype(np.int8)
    path = tmp_path_factory.mktemp("toplandscape") / "test.h5"
    pd.DataFrame(cols).to_hdf(path, key="table", format="table")
    return path


@pytest.fixture(scope="session")
def qg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quark/gluon layout: ``X`` (jets, particles, (pT, y, phi, pid)) zero-padded, ``y``."""
    rng = np.random.default_rng(13)
    n, m = 50, 25
    counts = rng.integers(2, m, n)
    x = np.zeros((n, m, 4))
    pids = np.array([22, 211, -211, 130, 2112, -2112, 321, -321, 2212, 11, -11, 13, -13])
    for i, c in enumerate(counts):
        x[i, :c, 0] = np.sort(rng.exponential(20, c))[::-1] + 1
        x[i, :c, 1] = rng.normal(0, 0.2, c)
        x[i, :c, 2] = rng.normal(3.0, 0.2, c)  # phi in [0, 2pi) as in the dataset
        x[i, :c, 3] = rng.choice(pids, c)
    path = tmp_path_factory.mktemp("qg") / "QG_jets.npz"
    np.savez_compressed(path, X=x, y=(np.arange(n) % 2).astype(np.float64))
    return path
