"""The tag-and-probe samples of ``heptagon sf generate`` (tests/conftest.py
``tag_probe_samples``): the selection, the truth, the variations and the pseudo-data's
sealed settings and truth."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from heptagon.artifacts.scale_factors import SealedTruth, TagProbeManifest
from heptagon.errors import ConfigError, DataError
from heptagon.generate.tagprobe import (
    HEMISPHERE,
    PSEUDO_DATA_RANGES,
    TAG_LEPTON_PT_MIN,
    TagProbeOptions,
    hidden_settings,
    read_sealed,
    sealed_truth,
)
from heptagon.physics.kinematics import delta_phi


def _columns(dataset: Path) -> dict[str, np.ndarray]:
    manifest = TagProbeManifest.read(dataset / "manifest.json")
    tables = [pq.read_table(dataset / f.file) for f in manifest.files]
    names = [n for n in tables[0].column_names if not n.startswith("part_")]
    return {n: np.concatenate([t[n].to_numpy() for t in tables]) for n in names}


def test_simulation_probes_pass_the_selection_and_carry_truth(
    tag_probe_samples: dict[str, Path],
) -> None:
    sim = _columns(tag_probe_samples["sim"])
    assert sim["jet_pt"].size == 60
    assert (sim["jet_pt"] >= 300).all()
    assert (np.abs(sim["jet_eta"]) < 2.0).all()
    assert (sim["tag_lepton_pt"] > TAG_LEPTON_PT_MIN).all()
    assert (sim["MET_pt"] > 30).all()
    assert (sim["tag_nbjets"] >= 1).all()
    assert set(np.unique(sim["tag_lepton_pdgid"])) <= {11, 13}
    assert set(np.unique(sim["probe_category"])) <= {0, 1, 2}
    # merged tops sit near the top mass, the others mostly do not
    top = sim["probe_category"] == 0
    assert top.any()
    assert 140 < np.median(sim["jet_sdmass"][top]) < 210
    assert np.median(sim["jet_sdmass"][~top]) < np.median(sim["jet_sdmass"][top])
    for name in ("isr_up", "isr_down", "fsr_up", "fsr_down"):
        assert np.isfinite(sim[f"weight_{name}"]).all()
    manifest = TagProbeManifest.read(tag_probe_samples["sim"] / "manifest.json")
    assert manifest.weight_variations == ["isr_up", "isr_down", "fsr_up", "fsr_down"]
    assert manifest.sigma_gen_pb > 0
    assert sim["xsec_weight_pb"].sum() == pytest.approx(
        manifest.sigma_gen_pb * manifest.probes / manifest.events_generated, rel=0.3
    )


def test_a_shape_variation_uses_the_same_generator_events(
    tag_probe_samples: dict[str, Path],
) -> None:
    sim = _columns(tag_probe_samples["sim"])
    manifest = TagProbeManifest.read(tag_probe_samples["jes_hcal_up"] / "manifest.json")
    assert manifest.variation is not None
    assert manifest.variation["name"] == "jes_hcal_up"
    assert manifest.detector is not None
    assert manifest.detector["jes_hcal"] == pytest.approx(1.03)
    # the same events (``event`` counts within a shard): the same muons (tracks are not
    # HCAL; the HCAL scale only changes which lepton is isolated now and then), harder
    # probe jets
    sim_m = TagProbeManifest.read(tag_probe_samples["sim"] / "manifest.json")
    n_common, same_muon, ratios = 0, [], []
    for a, b in zip(sim_m.files, manifest.files, strict=True):
        x = pq.read_table(tag_probe_samples["sim"] / a.file).to_pydict()
        y = pq.read_table(tag_probe_samples["jes_hcal_up"] / b.file).to_pydict()
        _, i, j = np.intersect1d(x["event"], y["event"], return_indices=True)
        n_common += i.size
        muon = np.asarray(x["tag_lepton_pdgid"])[i] == 13
        lep_x, lep_y = np.asarray(x["tag_lepton_pt"])[i], np.asarray(y["tag_lepton_pt"])[j]
        same_muon.extend(np.isclose(lep_x[muon], lep_y[muon]))
        ratios.extend(np.asarray(y["jet_pt"])[j] / np.asarray(x["jet_pt"])[i])
    assert n_common > 0.7 * sim["jet_pt"].size
    assert np.mean(same_muon) > 0.8
    assert np.mean(ratios) > 1.003


def test_pseudo_data_hide_their_settings_and_truth(tag_probe_samples: dict[str, Path]) -> None:
    path = tag_probe_samples["pseudo"]
    manifest = TagProbeManifest.read(path / "manifest.json")
    assert manifest.pseudo_data
    assert manifest.detector is None
    assert manifest.generator["extra_settings"] == []
    assert "probe_category" not in manifest.branches
    assert "xsec_weight_pb" not in manifest.branches
    assert not any(b.startswith("label_") for b in manifest.branches)
    text = (path / "manifest.json").read_text()
    assert "alphaSvalue" not in text
    assert "jes_hcal" not in text
    _, hidden = read_sealed(path)
    assert hidden["pseudo_data_seed"] == 11
    pythia, knobs = hidden_settings(11)
    assert hidden["pythia"] == list(pythia)
    assert hidden["detector"] == knobs
    truth = sealed_truth(path)
    for f in manifest.files:
        assert truth[Path(f.file).stem].size == f.entries
    assert set(np.concatenate(list(truth.values()))) <= {0, 1, 2}


def test_hidden_settings_are_drawn_within_their_ranges() -> None:
    pythia, knobs = hidden_settings(3)
    assert hidden_settings(3) == (pythia, knobs)
    assert hidden_settings(4) != (pythia, knobs)
    for key, value in knobs.items():
        lo, hi = PSEUDO_DATA_RANGES[key]
        assert lo <= value <= hi
    for line in pythia:
        key, _, value = line.partition(" = ")
        lo, hi = PSEUDO_DATA_RANGES[key]
        assert lo <= float(value) <= hi
    assert {line.split(" = ")[0] for line in pythia} == {
        "TimeShower:alphaSvalue",
        "StringZ:aLund",
    }


def test_a_tampered_seal_or_truth_file_is_refused(
    tag_probe_samples: dict[str, Path], tmp_path: Path
) -> None:
    sealed = SealedTruth.seal({"a": 1})
    assert sealed.unseal("x") == {"a": 1}
    forged = sealed.model_copy(
        update={"payload": base64.b64encode(json.dumps({"a": 2}).encode()).decode()}
    )
    with pytest.raises(DataError, match="checksum"):
        forged.unseal("x")
    copy = tmp_path / "pseudo"
    shutil.copytree(tag_probe_samples["pseudo"], copy)
    truth = next((copy / "sealed").glob("*.parquet"))
    truth.write_bytes(truth.read_bytes()[:-10])
    with pytest.raises(DataError, match="sealed truth"):
        read_sealed(copy)
    with pytest.raises(DataError, match="not pseudo-data"):
        read_sealed(tag_probe_samples["sim"])


def test_options_refuse_what_a_tag_and_probe_sample_cannot_be(tmp_path: Path) -> None:
    base = {"probes": 5, "seed": 1, "out": tmp_path}
    with pytest.raises(ConfigError, match="pseudo-data take no"):
        TagProbeOptions(**base, pseudo_data=1, variation="jes_hcal_up")
    with pytest.raises(ConfigError, match="needs the detector"):
        TagProbeOptions(**base, detector="none")
    with pytest.raises(ConfigError, match="unknown tag-and-probe"):
        TagProbeOptions(**base, sample="dy")


def test_probe_is_opposite_the_lepton(tag_probe_samples: dict[str, Path]) -> None:
    sim = _columns(tag_probe_samples["sim"])
    assert (np.abs(delta_phi(sim["jet_phi"], sim["tag_lepton_phi"])) >= HEMISPHERE).all()
