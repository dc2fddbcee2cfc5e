"""Auto standardisation, preprocess.json, flat reweighting tables, features."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heptagon.data.config import load_config
from heptagon.data.io import expand_files, open_reader
from heptagon.data.preprocess import Preprocess, auto_params, compute_preprocess
from heptagon.data.split import Split
from heptagon.data.transform import Transform
from heptagon.data.weights import FlatReweight
from heptagon.errors import ConfigError, DataError

CONFIG = {
    "selection": "jet_pt > 600",
    "inputs": {
        "pf": {
            "length": 30,
            "vars": [
                {"name": "part_pt_log", "center": "auto", "scale": "auto", "clip": [-5, 5]},
                {"name": "part_d0", "center": "auto", "scale": 2.0},
                "part_charge",
            ],
        },
        "jet": {"vars": [{"name": "jet_sdmass", "center": "auto", "scale": "auto"}]},
    },
    "labels": ["label_QCD", "label_Tbqq"],
}


def training_values(dataset: Path) -> dict[str, np.ndarray]:
    """Hand computation: all training entries passing the selection, by name."""
    pt_log, d0, mass = [], [], []
    for path in expand_files(dataset):
        with open_reader(path) as reader:
            chunks = [
                c for u in reader.units(10**6) for c in reader.read(u, reader.branches, 10**6)
            ]
        a = ak.concatenate([c.arrays for c in chunks])
        keep = Split().mask("train", path.stem, ak.to_numpy(a.event)) & ak.to_numpy(a.jet_pt > 600)
        a = a[keep]
        # every particle, not only the first ``length`` (30) the model sees, as weaver
        pt_log.append(ak.to_numpy(ak.flatten(np.log(np.hypot(a.part_px, a.part_py)))))
        d0.append(ak.to_numpy(ak.flatten(np.tanh(a.part_d0val))))
        mass.append(ak.to_numpy(a.jet_sdmass))
    return {k: np.concatenate(v) for k, v in (("pt", pt_log), ("d0", d0), ("m", mass))}


def test_auto_standardisation_matches_a_hand_computation(jet_dataset: Path) -> None:
    config = load_config(CONFIG)
    pre = compute_preprocess(jet_dataset, config)
    values = training_values(jet_dataset)
    pt, d0, charge = pre.inputs["pf"].vars
    (mass,) = pre.inputs["jet"].vars
    for params, x in ((pt, values["pt"]), (mass, values["m"])):
        q16, q50, q84 = np.percentile(x.astype(np.float32), [16, 50, 84])
        assert params.center == pytest.approx(q50, rel=1e-6)
        assert params.scale == pytest.approx(1 / max(q84 - q50, q50 - q16), rel=1e-5)
        assert params.auto
    assert d0.center == pytest.approx(np.median(d0_values := values["d0"].astype(np.float32)))
    assert d0.scale == 2.0
    assert len(d0_values) > 1000
    assert (charge.center, charge.scale, charge.clip, charge.auto) == (0.0, 1.0, None, False)
    assert pre.sample["entries"] == len(values["m"])


def test_auto_scale_is_weavers_larger_half_width() -> None:
    """weaver's definition: 1 / max(p84 - median, median - p16), not the mean half width."""
    x = np.exp(np.random.default_rng(1).normal(0.0, 1.0, 100_001)).astype(np.float32)
    center, scale = auto_params(x)  # log-normal: the upper half width is the larger
    low, median, high = np.percentile(x, [16, 50, 84])
    assert center == pytest.approx(1.0, rel=0.02)
    assert scale == pytest.approx(1 / (high - median), rel=1e-6)
    assert (high - median) > 2 * (median - low)  # skewed: the mean half width differs
    assert scale < 0.8 * 2 / (high - low)
    assert auto_params(np.full(10, 3.0, dtype=np.float32)) == (3.0, 1.0)  # no width: 1


def test_auto_sample_is_the_first_fraction_of_each_file(jet_dataset: Path) -> None:
    """weaver's load_range=(0, data_fraction): the first max(1, trunc(f * n)) entries of
    every file, whatever the file; explicit training files (no hash split) take all."""
    pf = CONFIG["inputs"]["pf"]  # type: ignore[index]
    mask = {"name": "part_mask", "center": "auto", "scale": "auto", "clip": [-5, 5]}
    config = load_config(
        {
            **CONFIG,
            "selection": None,
            "new_variables": {"part_mask": "ak.ones_like(part_px)"},
            "inputs": {**CONFIG["inputs"], "pf": {**pf, "vars": [*pf["vars"], mask]}},
            "preprocess": {"data_fraction": 0.25},
        }
    )
    pre = compute_preprocess(jet_dataset, config, split=Split((1.0, 0.0, 0.0)))
    mask_params = pre.inputs["pf"].vars[-1]  # weaver leaves an auto *_mask raw
    assert (mask_params.center, mask_params.scale, mask_params.clip) == (0.0, 1.0, None)
    masses = []
    for path in expand_files(jet_dataset):
        with open_reader(path) as reader:
            n = reader.num_entries
            unit = reader.units(n)[0]
            chunk = next(iter(reader.read(unit, ["jet_sdmass"], n)))
        masses.append(ak.to_numpy(chunk.arrays.jet_sdmass)[: max(1, int(0.25 * n))])
    first = np.concatenate(masses).astype(np.float32)
    (mass,) = pre.inputs["jet"].vars
    assert pre.sample["entries"] == len(first)
    assert (mass.center, mass.scale) == pytest.approx(auto_params(first), rel=1e-6)


def test_preprocess_json_round_trip(jet_dataset: Path, tmp_path: Path) -> None:
    config = load_config(
        {
            **CONFIG,
            "weights": {"reweight_vars": {"jet_pt": [500, 800, 1000], "jet_sdmass": [0, 300]}},
        }
    )
    pre = compute_preprocess(jet_dataset, config)
    path = tmp_path / "preprocess.json"
    pre.save(path)
    data = json.loads(path.read_text())
    assert (data["format"], data["schema_version"]) == ("heptagon-preprocess", 2)
    # weaver's / CMSSW's keys: the inputs at the top level, named in input_names
    assert data["input_names"] == ["jet", "pf", "pf_mask"]
    assert data["output_names"] == ["QCD", "Tbqq"]
    pt_log = data["pf"]["var_infos"]["part_pt_log"]
    assert (pt_log["lower_bound"], pt_log["upper_bound"]) == (-5.0, 5.0)
    assert pt_log["median"] == pre.inputs["pf"].vars[0].center
    assert pt_log["norm_factor"] == pre.inputs["pf"].vars[0].scale
    assert data["pf"]["var_infos"]["part_charge"]["upper_bound"] == 1e32  # no clip
    assert (data["pf"]["min_length"], data["pf"]["max_length"], data["jet"]["var_length"]) == (
        1,
        30,
        1,
    )
    assert "var_length" not in data["pf"]  # CMSSW would take it over min/max_length
    assert data["pf_mask"]["kind"] == "mask"
    loaded = Preprocess.load(path)
    assert loaded.inputs == pre.inputs
    assert loaded.label_names == ("QCD", "Tbqq")
    assert loaded.reweight is not None
    assert pre.reweight is not None
    np.testing.assert_array_equal(loaded.reweight.table, pre.reweight.table)
    data["schema_version"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"schema_version.: preprocess\.json version 3 is newer"):
        Preprocess.load(path)
    data["schema_version"] = 2
    del data["pf"]["var_infos"]["part_d0"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="var_infos must describe exactly the var_names"):
        Preprocess.load(path)
    with pytest.raises(DataError, match="file not found"):
        Preprocess.load(tmp_path / "none.json")


def test_from_config_refuses_auto() -> None:
    with pytest.raises(ConfigError, match="compute_preprocess"):
        Preprocess.from_config(load_config(CONFIG))


def test_standardisation_is_identical_at_inference(jet_dataset: Path, tmp_path: Path) -> None:
    """The saved parameters reproduce the training transform exactly."""
    from heptagon.data.loader import JetDataset

    config = load_config(CONFIG)
    pre = compute_preprocess(jet_dataset, config)
    pre.save(tmp_path / "preprocess.json")
    kw = {"split": "test", "shuffle": False, "batch_size": 50}
    a = list(JetDataset(jet_dataset, config, pre, **kw))
    b = list(JetDataset(jet_dataset, config, Preprocess.load(tmp_path / "preprocess.json"), **kw))
    for x, y in zip(a, b, strict=True):
        assert (x.inputs["pf"] == y.inputs["pf"]).all()


def test_flat_reweight_table_is_flat_per_class() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    label = rng.integers(0, 2, n)
    x = np.where(
        label == 0, np.minimum(rng.exponential(100, n) + 500, 999), rng.uniform(500, 999, n)
    )
    y = rng.uniform(0, 300, n)
    spec = load_config(
        {
            "inputs": {"j": {"vars": ["a"]}},
            "labels": ["label_a", "label_b"],
            "weights": {
                "reweight_vars": {"x": [500, 600, 700, 800, 900, 1000], "y": [0, 150, 300]},
                "class_weights": [1, 2],
                "reweight_classes": ["label_a", "label_b"],
                "reweight_threshold": 1000,
            },
        }
    ).weights
    assert spec is not None
    rw = FlatReweight.build(spec, ["label_a", "label_b"], x, y, label)
    w = rw(x, y, label)
    assert w.mean() == pytest.approx(1.0, rel=1e-6)
    assert w[label == 1].sum() / w[label == 0].sum() == pytest.approx(2.0, rel=1e-6)
    for c in (0, 1):
        hist, _, _ = np.histogram2d(
            x[label == c], y[label == c], bins=[rw.bins[0], rw.bins[1]], weights=w[label == c]
        )
        np.testing.assert_allclose(hist, hist.mean(), rtol=1e-6)  # flat
    # with a threshold, sparse bins are capped
    capped = FlatReweight.build(
        spec.model_copy(update={"reweight_threshold": 2.0}), ["label_a", "label_b"], x, y, label
    )
    ratio = capped.table[0][capped.table[0] > 0]
    assert ratio.max() / ratio.min() <= 2.0 + 1e-9


def test_features_are_lazy_and_files_take_precedence(jet_dataset: Path) -> None:
    config = load_config({"inputs": {"pf": {"length": 5, "vars": ["part_logptrel", "part_eta"]}}})
    transform = Transform(config, None)
    with open_reader(jet_dataset / "shards" / "qcd_000.parquet") as reader:
        branches = transform.branches(reader.branches)
    assert sorted(branches) == ["jet_eta", "jet_pt", "part_deta", "part_px", "part_py"]
    assert transform.branches(["part_logptrel", "part_eta"]) == ["part_logptrel", "part_eta"]
