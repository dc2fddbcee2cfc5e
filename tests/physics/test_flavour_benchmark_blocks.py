"""Building blocks of benchmarks/flavour.py (the benchmark itself is too long for the
suite): binomial fractions with their errors and limits, and the vertex-finder table with
and without the V0 veto on hand-made shards."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import flavour as bench  # benchmarks/ is on pytest's pythonpath
import numpy as np
import pytest


def test_binomial_fraction_error_and_limit() -> None:
    half = bench.binomial(np.array([True, False] * 50))
    assert half["value"] == 0.5
    assert half["err"] == pytest.approx(0.05)
    assert half["upper_95"] is None
    none = bench.binomial(np.zeros(300, dtype=bool))
    assert none["value"] == 0.0
    assert none["upper_95"] == pytest.approx(3.0 / 300, rel=0.01)  # the "rule of three"
    assert bench.binomial(np.zeros(0, dtype=bool))["value"] is None


def _shard(path: Path, pt: list[float], n_sv: list[int], n_v0: list[int]) -> None:
    ak.to_parquet(
        ak.Array(
            {
                "jet_pt": np.array(pt, dtype=np.float32),
                "sv_mass": [[1.0] * k for k in n_sv],
                "jet_nv0": np.array(n_v0, dtype=np.float32),
            }
        ),
        path,
    )


def test_vertex_finder_with_and_without_the_v0_veto(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    _shard(shards / "b_0000.parquet", [40, 60, 90, 150], [1, 1, 0, 2], [0, 0, 1, 0])
    _shard(shards / "c_0000.parquet", [40, 60], [0, 1], [0, 0])
    _shard(shards / "uds_0000.parquet", [40, 60, 300], [0, 0, 0], [1, 0, 1])
    _shard(shards / "g_ak4_0000.parquet", [45], [1], [1])
    table = bench.vertex_finder(tmp_path)
    assert table["with_v0_veto"]["b"]["value"] == 0.75
    assert table["without_v0_veto"]["b"]["value"] == 1.0
    # light = uds + g: 1 of 4 with an SV; 3 of 4 once the veto's K0S candidates count
    assert table["with_v0_veto"]["light"]["passed"] == 1
    assert table["without_v0_veto"]["light"]["passed"] == 3
    assert table["with_v0_veto"]["light"]["jets"] == 4
    low = table["vs_pt"]["light"][0]  # 30-50 GeV: the uds jet at 40 and the g jet at 45
    assert (low["pt_min"], low["pt_max"]) == (30.0, 50.0)
    assert low["with_v0_veto"]["value"] == 0.5
    assert low["without_v0_veto"]["value"] == 1.0


def test_runs_of_another_sample_or_settings_are_not_reused(tmp_path: Path) -> None:
    sample = {"path": "/x/sample-600", "pileup": None, "epochs": 3, "split": [0.6, 0.1, 0.3]}
    runs = bench.runs_dir(tmp_path, {**sample, "seeds": 3})
    assert json.loads((runs / "settings.json").read_text()) == sample
    assert bench.runs_dir(tmp_path, {**sample, "seeds": 5}) == runs  # more seeds: same runs
    others = [
        {**sample, "pileup": {"mu": 60.0, "mitigation": "chs"}},
        {**sample, "path": "/x/sample-600-pu60-chs"},
        {**sample, "epochs": 4},
        {**sample, "split": [0.7, 0.15, 0.15]},
    ]
    dirs = {bench.runs_dir(tmp_path, {**other, "seeds": 3}) for other in others}
    assert runs not in dirs
    assert len(dirs) == len(others)
