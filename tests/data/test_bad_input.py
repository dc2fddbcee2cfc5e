"""Every "Bad input" case of issue 3 ends in one DataError / ConfigError naming the culprit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from jetfiles import make_jets, write_parquet

from heptagon.data.config import load_config
from heptagon.data.loader import JetDataset
from heptagon.data.preprocess import Preprocess
from heptagon.errors import ConfigError, DataError

BASE: dict[str, Any] = {
    "inputs": {
        "pf": {"length": 20, "vars": ["part_deta", "part_pt_log"]},
        "jet": {"vars": ["jet_pt"]},
    },
    "labels": ["label_QCD", "label_Tbqq"],
    "observers": ["event"],
}


def run(path: Path, **changes: Any) -> list:
    config = load_config({**BASE, **changes})
    return list(JetDataset(path, config, Preprocess.from_config(config), split=None, batch_size=8))


@pytest.fixture
def jets() -> dict[str, Any]:
    return make_jets(40, "QCD", 21)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone\.parquet: no input files found"):
        run(tmp_path / "gone.parquet")


def test_missing_branch_at_construction(tmp_path: Path, jets: dict[str, Any]) -> None:
    del jets["part_px"]
    path = write_parquet(tmp_path / "nopx.parquet", jets)
    # part_pt_log -> part_pt -> part_px: the dependency of a standard feature is reported
    with pytest.raises(DataError, match=r"nopx\.parquet, branch 'part_px': branch not found"):
        run(path)


def test_scalar_where_jagged_expected(tmp_path: Path, jets: dict[str, Any]) -> None:
    path = write_parquet(tmp_path / "j.parquet", jets)
    inputs = {"pf": {"length": 20, "vars": ["part_deta", "jet_eta"]}}
    with pytest.raises(
        DataError, match=r"j\.parquet, branch 'jet_eta': expected a jagged .* one value per entry"
    ):
        run(path, inputs=inputs)


def test_jagged_where_scalar_expected(tmp_path: Path, jets: dict[str, Any]) -> None:
    path = write_parquet(tmp_path / "j.parquet", jets)
    with pytest.raises(DataError, match=r"branch 'part_deta': expected a value per entry"):
        run(path, inputs={"jet": {"vars": ["part_deta"]}})


def test_group_with_different_multiplicities(tmp_path: Path, jets: dict[str, Any]) -> None:
    jets["sv_mass"] = ak.Array([[1.0, 2.0]] * 40)
    path = write_parquet(tmp_path / "j.parquet", jets)
    config_inputs = {"pf": {"length": 20, "vars": ["part_deta", "sv_mass"]}}
    with pytest.raises(DataError, match=r"branch 'sv_mass': has a different number of particles"):
        run(path, inputs=config_inputs)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_error_by_default(tmp_path: Path, jets: dict[str, Any], bad: float) -> None:
    jets["part_deta"] = jets["part_deta"] * np.where(np.arange(40) == 5, bad, 1.0)
    path = write_parquet(tmp_path / "nan.parquet", jets)
    with pytest.raises(DataError, match=r"nan\.parquet, branch 'part_deta': \d+ NaN/inf values"):
        run(path)


def test_nan_policy_zero_and_drop(tmp_path: Path, jets: dict[str, Any]) -> None:
    jets["jet_pt"] = np.where(np.arange(40) == 5, np.nan, jets["jet_pt"]).astype(np.float32)
    path = write_parquet(tmp_path / "nan.parquet", jets)
    zero = run(path, nan_policy="zero")
    events = np.concatenate([b.observers["event"] for b in zero])
    jet_pt = np.concatenate([b.inputs["jet"][:, 0].numpy() for b in zero])
    assert jet_pt[events == 5].tolist() == [0.0]
    dropped = run(path, nan_policy="drop")
    events = np.concatenate([b.observers["event"] for b in dropped])
    assert sorted(events.tolist()) == [e for e in range(40) if e != 5]


def test_no_events_after_selection(tmp_path: Path, jets: dict[str, Any]) -> None:
    path = write_parquet(tmp_path / "sel.parquet", jets)
    with pytest.raises(
        DataError, match=r"sel\.parquet: no entries pass the selection 'jet_pt < 0'"
    ):
        run(path, selection="jet_pt < 0")


def test_selection_must_be_boolean(tmp_path: Path, jets: dict[str, Any]) -> None:
    path = write_parquet(tmp_path / "sel.parquet", jets)
    with pytest.raises(ConfigError, match="selection: must give a boolean per entry"):
        run(path, selection="jet_pt * 2")


def test_label_not_one_hot(tmp_path: Path, jets: dict[str, Any]) -> None:
    jets["label_Tbqq"] = np.where(np.arange(40) < 3, 1, 0).astype(np.int32)  # two labels set
    path = write_parquet(tmp_path / "lab.parquet", jets)
    with pytest.raises(
        DataError, match=r"lab\.parquet, branch 'label_QCD,label_Tbqq': 3 of 40 entries are not"
    ):
        run(path)


def test_unknown_config_key() -> None:
    with pytest.raises(ConfigError, match=r"inputs\.pf\.pad_mod: unknown key"):
        load_config({**BASE, "inputs": {"pf": {"length": 3, "pad_mod": "wrap", "vars": ["a"]}}})


@pytest.mark.parametrize(
    ("expression", "culprit"),
    [("log(part_pt", "syntax error"), ("__import__('os').system('x')", "__import__")],
)
def test_bad_expressions(expression: str, culprit: str) -> None:
    with pytest.raises(ConfigError, match=r"new_variables\.bad: .*" + culprit):
        load_config({**BASE, "new_variables": {"bad": expression}})


def test_self_referencing_new_variable(tmp_path: Path, jets: dict[str, Any]) -> None:
    path = write_parquet(tmp_path / "j.parquet", jets)
    with pytest.raises(ConfigError, match=r"new_variables\.a: 'a' refers to itself"):
        run(path, new_variables={"a": "b + 1", "b": "a * 2"}, inputs={"jet": {"vars": ["a"]}})


def test_preprocess_json_mismatch(jet_dataset: Path) -> None:
    config = load_config(BASE)
    pre = Preprocess.from_config(load_config({**BASE, "inputs": {"jet": {"vars": ["jet_pt"]}}}))
    with pytest.raises(ConfigError, match=r"inputs\.pf: group not in preprocess\.json"):
        JetDataset(jet_dataset, config, pre)
