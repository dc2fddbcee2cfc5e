"""Data config: weaver forms, heptagon forms, key-precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from heptagon.data.config import load_config
from heptagon.errors import ConfigError

WEAVER_YAML = """
treename: tree
selection: (jet_pt > 500) & (jet_pt < 1000)
new_variables:
  part_mask: ak.ones_like(part_energy)
  part_pt: np.hypot(part_px, part_py)
preprocess:
  method: manual
  data_fraction: 0.5
inputs:
  pf_points:
    length: 128
    pad_mode: wrap
    vars:
      - [part_deta, null]
      - [part_dphi, null]
  pf_features:
    length: 128
    pad_mode: wrap
    vars:
      - [part_pt_log, 1.7, 0.7]
      - [part_deltaR, 0.2, 4.0, -3, 3, 0.5]
      - part_charge
  pf_mask:
    length: 128
    pad_mode: constant
    vars:
      - [part_mask, null]
labels:
  type: simple
  value: [label_QCD, label_Tbqq]
observers: [jet_pt, jet_sdmass]
weights:
  use_precomputed_weights: false
  reweight_method: flat
  reweight_vars:
    jet_pt: [500, 600, 800, 1000]
    jet_sdmass: [10, 100, 200, 500]
  reweight_classes: [label_QCD, label_Tbqq]
  class_weights: [1, 1]
  reweight_threshold: 15
"""


def test_weaver_config_reads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "weaver.yaml"
    path.write_text(WEAVER_YAML)
    config = load_config(path)
    points, features = config.inputs["pf_points"], config.inputs["pf_features"]
    assert points.pad_mode == "wrap"
    assert points.vars[0].center is None
    assert points.vars[0].clip is None
    pt_log, delta_r, charge = features.vars
    assert (pt_log.center, pt_log.scale, pt_log.clip) == (1.7, 0.7, (-5.0, 5.0))
    assert (delta_r.clip, delta_r.pad_value) == ((-3.0, 3.0), 0.5)
    assert charge.center is None
    assert config.labels is not None
    assert config.labels.names == ["QCD", "Tbqq"]
    assert config.weights is not None
    assert config.weights.reweight_threshold == 15
    assert set(config.expressions) >= {"selection", "new_variables.part_mask"}
    assert config.has_auto  # flat reweighting is computed from data


def test_weaver_auto_method_makes_missing_centers_auto() -> None:
    """As weaver 0.5.3: a missing subtract_by is auto (not for a ``_mask`` variable), an
    explicit null is no transformation, a literal ``auto`` computes the scale too."""
    config = load_config(
        {
            "preprocess": {"method": "auto"},
            "inputs": {
                "x": {"length": 4, "vars": ["a", ["b"], ["c", None], ["d", "auto", 2.0]]},
                "x_mask": {"length": 4, "vars": ["x_mask"]},
            },
        }
    )
    a, b, c, d = config.inputs["x"].vars
    for var in (a, b, d):
        assert (var.center, var.scale, var.clip) == ("auto", "auto", (-5.0, 5.0))
    assert (c.center, c.clip) == (None, None)
    assert config.inputs["x_mask"].vars[0].center is None


def test_heptagon_forms() -> None:
    config = load_config(
        {
            "inputs": {
                "jet": {"vars": ["jet_pt", {"name": "jet_sdmass", "center": "auto"}]},
            },
            "labels": {"signal": "is_signal == 1", "background": "is_signal == 0"},
            "nan_policy": "drop",
        }
    )
    assert config.inputs["jet"].length is None
    assert config.inputs["jet"].vars[1].is_auto
    assert config.labels is not None
    assert config.labels.names == ["signal", "background"]
    assert [e.key for e in config.label_exprs] == [
        "labels.value.signal",
        "labels.value.background",
    ]


@pytest.mark.parametrize(
    ("data", "key", "text"),
    [
        ({"inputs": {"a": {"vars": ["x"]}}, "bogus": 1}, "bogus", "unknown key"),
        ({"inputs": {"a": {"vars": ["x"], "lenght": 3}}}, "inputs.a.lenght", "unknown key"),
        ({"inputs": {"a": {"length": "many", "vars": ["x"]}}}, "inputs.a.length", "integer"),
        (
            {"inputs": {"a": {"vars": [{"name": "x", "center": "aut"}]}}},
            "inputs.a.vars.0.center",
            "auto",
        ),
        ({"inputs": {}}, "inputs", "at least 1"),
        ({}, "inputs", "required"),
        ({"inputs": {"a": {"vars": ["x"]}}, "nan_policy": "ignore"}, "nan_policy", "error"),
        ({"inputs": {"a": {"vars": ["x"]}}, "selection": "x >"}, "selection", "syntax"),
        (
            {"inputs": {"a": {"vars": ["x"]}}, "new_variables": {"y": "eval('1')"}},
            "new_variables.y",
            "'eval'",
        ),
        (
            {"inputs": {"a": {"vars": ["x"]}}, "labels": {"type": "custom", "value": ["a"]}},
            "labels",
            "custom",
        ),
        (
            {
                "inputs": {"a": {"vars": ["x"]}},
                "labels": ["label_A"],
                "weights": {"reweight_vars": {"x": [0, 1]}},
            },
            "weights",
            "two reweight_vars",
        ),
        ({"inputs": {"a": {"vars": ["x"], "pad_mode": "wrap"}}}, "inputs.a", "length"),
    ],
)
def test_bad_config_names_the_key(data: dict, key: str, text: str) -> None:
    with pytest.raises(ConfigError, match=text) as err:
        load_config(data)
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}: ")


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("inputs: {a: {vars: [x]}}\ntreenmae: t\n")
    with pytest.raises(ConfigError, match=r"treenmae: unknown key \(in .*unknown.yaml\)"):
        load_config(unknown)
