"""weaver-core 0.5.3's data-config keys and expression helpers, without weaver installed
(test_weaver_equivalence.py compares the tensors with weaver itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from heptagon.data.config import DataConfig, load_config
from heptagon.data.expr import Expr
from heptagon.data.io import open_reader
from heptagon.data.pipeline import iter_tables
from heptagon.data.preprocess import Preprocess
from heptagon.data.split import Split
from heptagon.data.transform import Table, Transform
from heptagon.errors import ConfigError

PT = ak.Array([[3.0, 4.0], [1.0]])
ARRAYS = {"pt": PT, "eta": PT * 0, "phi": PT * 0, "m": PT * 0 + 4.0, "jet": np.array([1.0, 2.0])}


def ev(text: str) -> Any:
    return ak.to_list(Expr(text, "k").evaluate(ARRAYS.__getitem__))


def test_weaver_helpers() -> None:
    assert ev("_concat([pt, pt * 10], axis=1)") == [[3, 4, 30, 40], [1, 10]]
    assert ev("_stack([pt, -pt], axis=1)") == [[[3, 4], [-3, -4]], [[1], [-1]]]
    assert ev("_pad(pt, 3)") == [[3, 4, 0], [1, 0, 0]]
    assert ev("_pad(pt, 1, value=-9)") == [[3], [1]]
    assert ev("_clip(pt, 1.5, 3.5)") == [[3, 3.5], [1.5]]
    assert ev("np.pi * jet") == pytest.approx([np.pi, 2 * np.pi])
    # pt 3, eta 0, phi 0, m 4: px = 3, pz = 0, E = sqrt(3^2 + 4^2) = 5
    assert ev("_p4_from_ptetaphim(pt, eta, phi, m).px") == [[3, 4], [1]]
    assert ev("_p4_from_ptetaphim(pt, eta, phi, m).energy")[0][0] == pytest.approx(5.0)
    assert ev("_p4_from_pxpypze(pt, eta, phi, m + 1).mass")[0][0] == pytest.approx(4.0)
    assert ev("_p4_from_ptetaphie(pt, eta, phi, m + 1).eta")[0][0] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("pt.px", "only a four-vector"),
        ("_pad(pt, 3, fill=1)", "keyword argument 'fill' of _pad()"),
        ("np.__dict__", "np.__dict__"),
        ("_concat([pt, [pt]])", "the list"),
        ("_pad(pt, 0)", "length of _pad()"),
    ],
)
def test_weaver_helper_misuse_is_a_config_error(text: str, culprit: str) -> None:
    with pytest.raises(ConfigError, match=r"new_variables\.x") as err:
        Expr(text, "new_variables.x").evaluate(ARRAYS.__getitem__)
    assert culprit in str(err.value)


def _auto_yaml(**change: Any) -> dict[str, Any]:
    """A config as weaver 0.5.3 dumps it into an *.auto.yaml (every key, nulls included)."""
    params = {
        "part_pt": {
            "length": 4, "pad_mode": "wrap", "center": 1.5, "scale": 0.5,
            "min": -3, "max": 3, "pad_value": 0,
        },
        "part_mask": {
            "length": 4, "pad_mode": "wrap", "center": None, "scale": 1,
            "min": -5, "max": 5, "pad_value": 0,
        },
    }  # fmt: skip
    data = {
        "treename": None,
        "branch_magic": None,
        "file_magic": None,
        "selection": "jet_pt > 0",
        "test_time_selection": None,
        "preprocess": {"method": "auto", "data_fraction": None, "params": params},
        "new_variables": {"part_mask": "ak.ones_like(part_pt)"},
        "inputs": {"pf": {"length": 4, "pad_mode": "Wrap", "vars": ["part_pt", "part_mask"]}},
        "labels": {"type": "simple", "value": ["label_QCD", "label_Tbqq"]},
        "observers": [],
        "monitor_variables": [],
        "weights": None,
        "bucketing": None,
    }
    data.update(change)
    return data


def test_an_auto_yaml_resolves_through_its_params() -> None:
    config = load_config(_auto_yaml())
    pt, mask = config.inputs["pf"].vars
    assert (pt.center, pt.scale, pt.clip) == (1.5, 0.5, (-3.0, 3.0))
    assert (mask.center, mask.clip) == (None, None)  # weaver neither transforms nor clips
    assert config.inputs["pf"].pad_mode == "wrap"
    assert config.preprocess.data_fraction is None
    assert not config.has_auto  # nothing left to compute: weaver's numbers are used
    params = Preprocess.from_config(config).inputs["pf"].vars
    assert (params[0].center, params[0].scale, params[0].clip) == (1.5, 0.5, (-3.0, 3.0))


def _with_params(name: str, **change: Any) -> dict[str, Any]:
    data = _auto_yaml()
    data["preprocess"]["params"][name].update(change)
    return data


def _weights(**change: Any) -> dict[str, Any]:
    weights = {
        "use_precomputed_weights": False,
        "reweight_method": "flat",
        "reweight_vars": {"jet_pt": [500, 750, 1000], "jet_sdmass": [0, 100, 300]},
        "reweight_classes": ["label_QCD", "label_Tbqq"],
        "class_weights": [1, 1],
        "reweight_threshold": 10,
        "reweight_hists": {"label_QCD": [[1, 0.5], [0.25, 1]], "label_Tbqq": [[1, 1], [1, 1]]},
    }
    return _auto_yaml(weights=weights | change)


@pytest.mark.parametrize(
    ("data", "key", "text"),
    [
        (_auto_yaml(branch_magic={"a": "b"}), "branch_magic", "unknown key"),
        (_auto_yaml(bucketing={"var": "n", "bins": 4}), "bucketing", "unknown key"),
        (_with_params("part_pt", length=8), "preprocess.params.part_pt", "length"),
        (_with_params("part_pt", center="x"), "preprocess.params.part_pt.center", "number"),
        (_with_params("part_pt", bogus=1), "preprocess.params.part_pt.bogus", "unknown key"),
        (
            _auto_yaml(inputs={"pf": {"length": 4, "pad_mode": "wrap", "vars": ["other"]}}),
            "preprocess.params.other",
            "no parameters",
        ),
        (
            _auto_yaml(inputs={"pf_mask": {"length": 4, "pad_mode": "wrap", "vars": ["x"]}}),
            "inputs.pf_mask.pad_mode",
            "constant",
        ),
        (_auto_yaml(observers=["jet_pt"], monitor_variables=["jet_pt"]), None, "not both"),
        (_auto_yaml(preprocess={"data_fraction": 0}), "preprocess.data_fraction", "greater"),
        (_weights(reweight_hists={"label_QCD": [[1, 1], [1, 1]]}), "weights", "one table"),
        (
            _weights(reweight_hists={"label_QCD": [[1, 1]], "label_Tbqq": [[1, 1]]}),
            "weights",
            "2 x 2 table",
        ),
        (_weights(reweight_method="ref", reweight_hists=None), "weights", "reweight_hists"),
        (_weights(reweight_method="spline"), "weights.reweight_method", "flat"),
        (_weights(reweight_basewgt="jet_pt >"), "weights.reweight_basewgt", "syntax"),
        (_auto_yaml(test_time_selection="open(x)"), "test_time_selection", "'open'"),
    ],
)
def test_a_weaver_key_heptagon_cannot_honour_is_an_error(
    data: dict[str, Any], key: str | None, text: str
) -> None:
    with pytest.raises(ConfigError, match=text) as err:
        load_config(data)
    assert err.value.key == key


# --- behaviour on files: which selection, monitor variables, weights --------------------


def _config(**change: Any) -> DataConfig:
    data: dict[str, Any] = {
        "selection": "jet_pt > 600",
        "inputs": {"jet": {"vars": ["jet_pt"]}},
        "labels": ["label_QCD", "label_Tbqq"],
        "observers": ["event", "jet_pt", "jet_sdmass", "jet_tau1"],
    }
    return load_config(data | change)


def _table(dataset: Path, config: DataConfig, split_name: Any = None) -> Table:
    preprocess = Preprocess.from_config(config)
    split = Split((1.0, 0.0, 0.0)) if split_name == "train" else Split((0.0, 0.0, 1.0))
    transform = Transform(config, preprocess, split=split, split_name=split_name)
    units = []
    for path in sorted((dataset / "shards").glob("*.parquet")):
        with open_reader(path) as reader:
            units.extend(reader.units(1000))
    return Table.concatenate(list(iter_tables(units, transform, 1000, files_at_once=1)))


def test_test_time_selection_is_for_test_and_inference(jet_dataset: Path) -> None:
    config = _config(test_time_selection="jet_pt > 800")
    for split_name, cut in (("train", 600), ("test", 800), (None, 800)):
        pt = _table(jet_dataset, config, split_name).observers["jet_pt"]
        assert len(pt) > 0
        assert pt.min() > cut
        assert (pt < 800).any() == (cut == 600)


def test_monitor_variables_are_carried_like_observers(jet_dataset: Path) -> None:
    config = _config(observers=[], monitor_variables=["event", "jet_sdmass"])
    table = _table(jet_dataset, config)
    assert sorted(table.observers) == ["event", "jet_sdmass"]
    assert len(table.observers["event"]) == len(table)


def test_weaver_reweight_tables_discard_and_base_weight(jet_dataset: Path) -> None:
    """weaver's tables as they are: an entry weighs table[class][x bin, y bin] times its
    base weight, and 0 outside the bins (reweight_discard_under_overflow, the default)."""
    hists = {"label_QCD": [[1.0, 0.5], [0.25, 0.125]], "label_Tbqq": [[2.0, 3.0], [4.0, 5.0]]}
    weights = {
        "reweight_vars": {"jet_pt": [650, 800, 950], "jet_sdmass": [0, 120, 300]},
        "reweight_classes": ["label_QCD", "label_Tbqq"],
        "reweight_hists": hists,
        "reweight_basewgt": "1 + jet_tau1",
    }
    table = _table(jet_dataset, _config(weights=weights), "train")
    pt, mass, tau1 = (table.observers[k] for k in ("jet_pt", "jet_sdmass", "jet_tau1"))
    inside = (pt >= 650) & (pt <= 950) & (mass >= 0) & (mass <= 300)
    assert 0 < inside.sum() < len(table)
    hist = np.array([hists["label_QCD"], hists["label_Tbqq"]])
    expected = hist[table.label, (pt >= 800).astype(int), (mass >= 120).astype(int)]
    expected = np.where(inside, expected * (1 + tau1), 0.0)
    np.testing.assert_allclose(table.weight, expected, rtol=1e-6)
    # without discarding, the entries outside count in the edge bins
    kept = _table(
        jet_dataset,
        _config(weights=weights | {"reweight_discard_under_overflow": False}),
        "train",
    )
    assert (kept.weight > 0).all()
