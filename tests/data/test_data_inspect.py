"""``heptagon data inspect``: branches, entries, class counts, summaries, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from jetfiles import make_jets, write_parquet
from rich.console import Console

from heptagon.data.config import load_config
from heptagon.data.inspect import inspect_files
from heptagon.errors import DataError


def test_inspect(tmp_path: Path) -> None:
    jets = make_jets(30, "QCD", 4)
    jets["jet_sdmass"] = np.where(np.arange(30) == 2, np.nan, jets["jet_sdmass"]).astype(np.float32)
    path = write_parquet(tmp_path / "a.parquet", jets)
    tops = write_parquet(tmp_path / "b.parquet", make_jets(20, "Tbqq", 5))
    config = load_config(
        {
            "inputs": {
                "pf": {"length": 10, "vars": ["part_pt_log"]},
                "jet": {"vars": ["jet_pt", "jet_sdmass"]},
            },
            "labels": ["label_QCD", "label_Tbqq"],
        }
    )
    result = inspect_files([path, tops], config, tmp_path / "plots")
    assert result.entries == {str(path): 30, str(tops): 20}
    assert "part_px" in result.branches[str(path)]
    assert result.class_counts == {"QCD": 29, "Tbqq": 20}  # the NaN entry is left out
    by_name = {v.name: v for v in result.variables}
    assert by_name["jet_sdmass"].nan == 1
    assert by_name["jet_pt"].nan == 0
    jet_pt = np.concatenate([np.delete(jets["jet_pt"], 2), make_jets(20, "Tbqq", 5)["jet_pt"]])
    assert by_name["jet_pt"].median == np.median(jet_pt)
    assert by_name["jet_pt"].minimum == jet_pt.min()
    assert by_name["part_pt_log"].count > 49
    assert sorted(p.name for p in result.plots) == [
        "jet.jet_pt.png",
        "jet.jet_sdmass.png",
        "pf.part_pt_log.png",
    ]
    assert all(p.stat().st_size > 1000 for p in result.plots)
    console = Console(record=True, width=120)
    console.print(result.table())
    text = console.export_text()
    assert "jet_sdmass" in text
    assert "QCD: 29" in text


def test_an_all_nan_variable_is_named(tmp_path: Path) -> None:
    """It was reported as 'no entries pass the selection None'."""
    jets = make_jets(10, "QCD", 3)
    jets["jet_sdmass"] = np.full(10, np.nan, dtype=np.float32)
    path = write_parquet(tmp_path / "nan.parquet", jets)
    config = load_config({"inputs": {"jet": {"vars": ["jet_pt", "jet_sdmass"]}}})
    with pytest.raises(
        DataError, match=r"^nan\.parquet, branch 'jet_sdmass': every entry has NaN/inf"
    ):
        inspect_files([path], config)
    selected = load_config({"inputs": {"jet": {"vars": ["jet_pt"]}}, "selection": "jet_pt < 0"})
    with pytest.raises(DataError, match=r"no entries pass the selection 'jet_pt < 0'"):
        inspect_files([path], selected)
