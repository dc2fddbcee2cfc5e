"""Named event-level features through a data config: on a NanoAOD-schema ROOT file (written
here with uproot) and on a heptagon event sample, with the same config."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

from heptagon.data import JetDataset, compute_preprocess, load_config

FEATURES = ["n_jets", "n_bjets", "n_leptons", "ht", "m_ll", "dr_bb_closest", "mt_lep1", "lep1_pt"]


def values(files: Any, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each listed feature's raw values per selected entry, in file order."""
    cfg = load_config(config)
    data = JetDataset(
        files,
        cfg,
        compute_preprocess(files, cfg),
        split=None,
        shuffle=False,
        bucketing=False,
        batch_size=1000,
    )
    batches = list(data)
    x = np.concatenate([b.inputs["jet_features"].numpy() for b in batches])
    return {v.name: x[:, i] for i, v in enumerate(cfg.inputs["jet_features"].vars)}


@pytest.fixture
def nanoaod(tmp_path: Path) -> Path:
    """Three events in the CMS NanoAOD schema: Events (nJet, Jet_*, Muon_*, Electron_*,
    MET_*) plus the Runs tree a real file has."""
    jets = {
        "pt": [[120.0, 80.0, 60.0, 40.0], [50.0, 30.0], [90.0, 70.0, 45.0, 35.0, 30.0]],
        "eta": [[0.0, 1.0, 0.0, -1.0], [0.1, 0.2], [0.0, 0.0, 1.0, 2.0, -2.0]],
        "phi": [[0.0, 1.0, 2.0, -2.0], [0.0, 3.0], [0.0, 0.4, 1.0, 2.0, 3.0]],
        "mass": [[10.0, 8.0, 6.0, 4.0], [5.0, 3.0], [9.0, 7.0, 4.0, 3.0, 3.0]],
        "btagDeepFlavB": [[0.9, 0.8, 0.05, 0.01], [0.02, 0.01], [0.95, 0.6, 0.1, 0.1, 0.1]],
    }
    muons = {"pt": [[45.0], [], [25.0]], "eta": [[0.5], [], [0.0]], "phi": [[1.5], [], [0.0]]}
    electrons = {"pt": [[], [35.0, 20.0], [60.0]], "eta": [[], [0.0, 0.0], [0.0]]}
    electrons["phi"] = [[], [0.0, math.pi], [math.pi]]
    with uproot.recreate(tmp_path / "nano.root") as f:
        branches = {
            "run": np.ones(3, dtype=np.uint32),
            "event": np.arange(1, 4, dtype=np.uint64),
            "Jet": ak.zip({k: ak.Array(v) for k, v in jets.items()}),
            "Muon": ak.zip(
                {
                    **{k: ak.Array(v) for k, v in muons.items()},
                    "mass": ak.Array([[0.10566], [], [0.10566]]),
                    "charge": ak.Array([[1], [], [-1]]),
                }
            ),
            "Electron": ak.zip(
                {
                    **{k: ak.Array(v) for k, v in electrons.items()},
                    "mass": ak.Array([[], [0.000511, 0.000511], [0.000511]]),
                    "charge": ak.Array([[], [1, -1], [1]]),
                }
            ),
            "MET_pt": np.array([50.0, 10.0, 30.0]),
            "MET_phi": np.array([-1.5, 0.0, 0.0]),
        }
        types = {
            k: v.type.content if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()
        }
        f.mktree("Events", types).extend(branches)  # TTrees, as NanoAOD
        f.mktree("Runs", {"run": np.uint32}).extend({"run": np.ones(1, dtype=np.uint32)})
    return tmp_path / "nano.root"


NANO_CONFIG = {
    "treename": "Events",
    "new_variables": {"Jet_btag": "Jet_btagDeepFlavB", "Jet_isB": "Jet_btagDeepFlavB > 0.2783"},
    "inputs": {"jet_features": {"vars": FEATURES}},
}


def test_nanoaod_flat_tree_through_the_feature_builder(nanoaod: Path) -> None:
    v = values(nanoaod, NANO_CONFIG)
    assert v["n_jets"].tolist() == [4, 2, 5]
    assert v["n_bjets"].tolist() == [2, 0, 2]
    assert v["n_leptons"].tolist() == [1, 2, 2]
    assert v["ht"] == pytest.approx([300.0, 80.0, 270.0])
    assert v["lep1_pt"] == pytest.approx([45.0, 35.0, 60.0])  # electrons and muons by pT
    # two back-to-back electrons of 35 and 20 GeV: m = 2 sqrt(35 * 20)
    assert v["m_ll"] == pytest.approx(
        [0.0, 2 * math.sqrt(35 * 20), 2 * math.sqrt(60 * 25)], rel=1e-4
    )  # muon mass
    assert v["dr_bb_closest"] == pytest.approx([math.sqrt(2), 0.0, 0.4], abs=1e-6)
    # lepton at phi 1.5, MET at phi -1.5: m_T = sqrt(2 * 45 * 50 * (1 - cos 3))
    assert v["mt_lep1"][0] == pytest.approx(math.sqrt(2 * 45 * 50 * (1 - math.cos(3.0))))
    loose = values(nanoaod, {**NANO_CONFIG, "selection": "region_loose"})
    assert loose["n_jets"].tolist() == [4, 5]


def test_heptagon_sample_through_the_same_features(event_sample: Path) -> None:
    files = sorted((event_sample / "shards").glob("tth_*.parquet"))
    v = values(files, {"inputs": {"jet_features": {"vars": FEATURES}}})
    events = ak.concatenate([ak.from_parquet(f) for f in files])
    assert v["n_jets"].tolist() == ak.num(events.Jet_pt).tolist()
    assert v["n_bjets"].tolist() == ak.sum(events.Jet_btag > 0.5, axis=1).tolist()
    assert v["ht"] == pytest.approx(ak.to_numpy(ak.sum(events.Jet_pt, axis=1)), rel=1e-5)
    n_lep = ak.num(events.Muon_pt) + ak.num(events.Electron_pt)
    assert v["n_leptons"].tolist() == n_lep.tolist()
