"""`heptagon generate-events`: NanoAOD-style schema, physics sanity, weights, reproducibility."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

from heptagon.errors import ConfigError
from heptagon.generate.events import EventOptions, generate_events

vector.register_awkward()

BRANCHES = {
    *(f"Jet_{k}" for k in ["pt", "eta", "phi", "mass", "btag", "hadronFlavour", "nConstituents"]),
    *(f"{o}_{k}" for o in ("Muon", "Electron") for k in ["pt", "eta", "phi", "mass", "charge"]),
    "MET_pt",
    "MET_phi",
    "GenMET_pt",
    "GenHiggs_pt",
    "xsec_weight_pb",
    "event",
    "label_tth",
    "label_ttbar",
    "label_dy",
    "label_qcd",
}


def load(dataset: Path, cls: str) -> ak.Array:
    files = sorted((dataset / "shards").glob(f"{cls}_*.parquet"))
    return ak.concatenate([ak.from_parquet(f) for f in files])


def test_schema_and_manifest(event_sample: Path) -> None:
    manifest = json.loads((event_sample / "manifest.json").read_text())
    assert manifest["kind"] == "events"
    assert set(manifest["branches"]) >= BRANCHES
    for cls in ("tth", "ttbar", "dy"):
        info = manifest["classes"][cls]
        assert info["events"] == 300
        assert info["sigma_gen_pb"] > 0
        events = load(event_sample, cls)
        assert len(events) == 300
        assert ak.all(events[f"label_{cls}"])
        for other in ("tth", "ttbar", "dy", "qcd", "minbias"):
            assert other == cls or not ak.any(events[f"label_{other}"])
        # the per-event weights of a class sum to its cross section
        assert np.sum(events.xsec_weight_pb) == pytest.approx(info["sigma_gen_pb"], rel=1e-6)
        # objects sorted by pT, jets in the window
        for coll in ("Jet", "Muon", "Electron"):
            pt = events[f"{coll}_pt"]
            assert ak.all(pt[:, 1:] <= pt[:, :-1])
        assert ak.all(events.Jet_pt >= 25)
        assert ak.all(abs(events.Jet_eta) < 2.5)
    sigma = {c: manifest["classes"][c]["sigma_gen_pb"] for c in ("tth", "ttbar", "dy")}
    assert sigma["tth"] < 1 < sigma["ttbar"] < sigma["dy"]  # 14 TeV, LO: ~0.4, ~600, ~3000 pb


def _pair_mass(events: ak.Array, coll: str) -> np.ndarray:
    two = events[ak.num(events[f"{coll}_pt"]) >= 2]
    lep = [
        vector.zip({k: two[f"{coll}_{k}"][:, i] for k in ("pt", "eta", "phi", "mass")})
        for i in (0, 1)
    ]
    opposite = ak.to_numpy(two[f"{coll}_charge"][:, 0] != two[f"{coll}_charge"][:, 1])
    return np.asarray(ak.to_numpy((lep[0] + lep[1]).mass))[opposite]


def test_drell_yan_z_peak(event_sample: Path) -> None:
    dy = load(event_sample, "dy")
    mass = np.concatenate([_pair_mass(dy, "Muon"), _pair_mass(dy, "Electron")])
    assert mass.size > 50
    assert np.median(mass) == pytest.approx(91.2, abs=3.0)
    assert np.mean(abs(mass - 91.2) < 10) > 0.6


def test_top_events_have_b_jets_and_the_tag_finds_them(event_sample: Path) -> None:
    tt = load(event_sample, "ttbar")
    flavour = ak.flatten(tt.Jet_hadronFlavour)
    tagged = ak.to_numpy(ak.flatten(tt.Jet_btag)) > 0.5
    b, light = ak.to_numpy(flavour == 5), ak.to_numpy(flavour == 0)
    assert ak.mean(ak.sum(tt.Jet_hadronFlavour == 5, axis=1)) > 1.0  # two b quarks per event
    assert tagged[b].mean() > 0.5  # efficiency
    assert tagged[light].mean() < 0.05  # mistag
    dy = load(event_sample, "dy")
    assert ak.mean(ak.sum(dy.Jet_btag > 0.5, axis=1)) < 0.2


def test_missing_momentum_follows_the_neutrinos(event_sample: Path) -> None:
    tt, dy = load(event_sample, "ttbar"), load(event_sample, "dy")
    assert np.corrcoef(tt.MET_pt, tt.GenMET_pt)[0, 1] > 0.8
    assert np.mean(tt.MET_pt) > 2 * np.mean(dy.MET_pt)
    assert np.mean(dy.GenMET_pt) < 5  # Z -> ll: no neutrinos from the hard process


def test_higgs_truth(event_sample: Path) -> None:
    tth, tt = load(event_sample, "tth"), load(event_sample, "ttbar")
    assert ak.all(tth.GenHiggs_pt > 0)
    assert ak.all(tt.GenHiggs_pt == 0)
    assert 50 < np.median(tth.GenHiggs_pt) < 200


def test_reproducible_root_output_and_resume(tmp_path: Path) -> None:
    def opts(out: Path, fmt: str = "parquet") -> EventOptions:
        return EventOptions(
            sample="dy", events=40, seed=3, out=out, mpi=False, shard_size=20, format=fmt
        )

    first = generate_events(opts(tmp_path / "a"), show_progress=False)
    second = generate_events(opts(tmp_path / "b"), show_progress=False)
    assert [f["sha256"] for f in first.manifest.to_json()["files"]] == [
        f["sha256"] for f in second.manifest.to_json()["files"]
    ]
    assert generate_events(opts(tmp_path / "a"), show_progress=False).skipped_shards == 2
    generate_events(opts(tmp_path / "r", "root"), show_progress=False)
    with uproot.open(tmp_path / "r" / "shards" / "dy_0000.root") as f:
        tree = f["tree"]
        assert {"nJet", "Jet_pt", "nMuon", "Muon_pt", "MET_pt"} <= set(tree.keys())
        pt = tree["Muon_pt"].array()
    assert ak.all(pt == load(tmp_path / "a", "dy")[:20].Muon_pt)


def test_unknown_sample() -> None:
    with pytest.raises(ConfigError, match="unknown event sample 'ttw'"):
        EventOptions(sample="ttw", events=1, seed=1, out=Path("x"))


def test_cli(tmp_path: Path) -> None:
    def heptagon(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "heptagon", "generate-events", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    out = tmp_path / "dy"
    ok = heptagon("dy", "--events", "20", "--seed", "1", "--out", str(out), "--no-mpi")
    assert ok.returncode == 0, ok.stderr
    assert "dy" in ok.stdout
    assert (out / "manifest.json").exists()
    bad = heptagon("ttw", "--events", "20", "--seed", "1", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2
    assert "unknown event sample 'ttw'" in bad.stderr.strip().splitlines()[-1]
