"""Readers: ROOT, Parquet, top-landscape HDF5, q/g npz, and their errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
from jetfiles import make_jets, write_root

from heptagon.data.io import expand_files, open_reader
from heptagon.errors import DataError

BRANCHES = ["part_px", "part_energy", "jet_pt", "label_QCD", "event"]


def read_all(path: Path, branches: list[str], chunk_size: int = 40, **kw: Any) -> ak.Array:
    with open_reader(path, **kw) as reader:
        chunks = [c.arrays for u in reader.units(chunk_size) for c in reader.read(u, branches, 40)]
    return ak.concatenate(chunks)


def test_parquet_and_root_give_the_same_arrays(jet_dataset: Path, jet_root_files: Path) -> None:
    parquet = read_all(jet_dataset / "shards" / "qcd_000.parquet", BRANCHES)
    root = read_all(jet_root_files / "qcd_000.root", BRANCHES)
    assert len(parquet) == len(root) == 120
    for name in BRANCHES:
        assert ak.all(parquet[name] == root[name]), name


def test_units_and_chunks_cover_the_file_once(jet_dataset: Path) -> None:
    with open_reader(jet_dataset / "shards" / "qcd_000.parquet") as reader:
        units = reader.units(10_000)
        assert [(u.start, u.stop) for u in units] == [(0, 50), (50, 100), (100, 120)]  # row groups
        starts = [c.start for u in units for c in reader.read(u, ["event"], 30)]
    assert starts == [0, 30, 50, 80, 100]


def test_expand_files_reads_dataset_dirs_and_globs(jet_dataset: Path) -> None:
    assert [p.name for p in expand_files(jet_dataset)] == [
        "qcd_000.parquet",
        "qcd_001.parquet",
        "tbqq_000.parquet",
    ]
    assert len(expand_files(str(jet_dataset / "shards" / "qcd_*.parquet"))) == 2
    with pytest.raises(DataError, match="no input files found"):
        expand_files(jet_dataset / "nothing*.root")


def test_top_landscape_layout(top_landscape_file: Path) -> None:
    import pandas as pd

    frame = pd.read_hdf(top_landscape_file, "table")
    arrays = read_all(
        top_landscape_file,
        [
            "part_energy",
            "part_px",
            "part_deta",
            "part_dphi",
            "jet_pt",
            "jet_energy",
            "jet_nparticles",
            "label_Tbqq",
            "label_QCD",
        ],
        chunk_size=15,
    )
    e = frame[[f"E_{i}" for i in range(30)]].to_numpy()
    px = frame[[f"PX_{i}" for i in range(30)]].to_numpy()
    py = frame[[f"PY_{i}" for i in range(30)]].to_numpy()
    assert ak.to_list(ak.num(arrays.part_energy)) == (e > 0).sum(axis=1).tolist()
    assert ak.to_numpy(arrays.jet_nparticles).tolist() == (e > 0).sum(axis=1).tolist()
    assert ak.to_list(arrays.part_px[3]) == pytest.approx(px[3][e[3] > 0].tolist(), rel=1e-6)
    np.testing.assert_allclose(arrays.jet_energy, e.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(arrays.jet_pt, np.hypot(px.sum(axis=1), py.sum(axis=1)), rtol=1e-5)
    assert ak.all(abs(arrays.part_deta) < 2)
    assert ak.all(abs(arrays.part_dphi) < 2)
    signal = frame["is_signal_new"].to_numpy() == 1
    assert ak.to_list(arrays.label_Tbqq) == signal.tolist()
    assert ak.to_list(arrays.label_QCD) == (~signal).tolist()


def test_quark_gluon_layout(qg_file: Path) -> None:
    data = np.load(qg_file)
    x, y = data["X"], data["y"]
    arrays = read_all(
        qg_file,
        [
            "part_energy",
            "part_pz",
            "part_charge",
            "part_isChargedHadron",
            "part_isPhoton",
            "part_isMuon",
            "part_dphi",
            "jet_pt",
            "label_q",
            "label_g",
        ],
        chunk_size=20,
    )
    real = x[..., 0] > 0
    assert ak.to_list(ak.num(arrays.part_energy)) == real.sum(axis=1).tolist()
    pt, rap, pid = x[0, real[0], 0], x[0, real[0], 1], x[0, real[0], 3]
    mass = np.select(
        [
            np.abs(pid) == 211,
            np.abs(pid) == 321,
            np.abs(pid) == 2212,
            np.abs(pid) == 2112,
            pid == 130,
            np.abs(pid) == 11,
            np.abs(pid) == 13,
        ],
        [0.13957039, 0.493677, 0.93827209, 0.93956542, 0.497611, 0.000511, 0.1056584],
        0.0,
    )
    mt = np.hypot(pt, mass)
    np.testing.assert_allclose(arrays.part_energy[0], mt * np.cosh(rap), rtol=1e-5)
    np.testing.assert_allclose(arrays.part_pz[0], mt * np.sinh(rap), rtol=1e-5, atol=1e-6)
    charge = np.select(
        [np.isin(pid, [211, 321, 2212, -11, -13]), np.isin(pid, [-211, -321, -2212, 11, 13])],
        [1.0, -1.0],
        0.0,
    )
    assert ak.to_list(arrays.part_charge[0]) == charge.tolist()
    hadron = np.isin(np.abs(pid), [211, 321, 2212])
    assert ak.to_list(arrays.part_isChargedHadron[0]) == hadron.astype(float).tolist()
    assert ak.to_list(arrays.part_isPhoton[0]) == (pid == 22).astype(float).tolist()
    assert ak.to_list(arrays.part_isMuon[0]) == (np.abs(pid) == 13).astype(float).tolist()
    assert ak.all(abs(arrays.part_dphi) < 1.5)  # phi in [0, 2pi) is wrapped consistently
    assert ak.to_list(arrays.label_q) == (y == 1).tolist()
    assert ak.to_list(arrays.label_g) == (y == 0).tolist()


# ---- bad input -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.root: file not found"):
        open_reader(tmp_path / "missing.root")


def test_truncated_root(tmp_path: Path) -> None:
    good = write_root(tmp_path / "good.root", make_jets(200, "QCD", 5))
    bad = tmp_path / "truncated.root"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"truncated\.root.*(truncated|not a readable)"):
        read_all(bad, ["part_px"])


def test_corrupt_root(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.root"
    bad.write_bytes(b"this is not ROOT" * 100)
    with pytest.raises(DataError, match=r"corrupt\.root: not a readable ROOT file"):
        open_reader(bad)


def test_truncated_parquet(tmp_path: Path, jet_dataset: Path) -> None:
    good = (jet_dataset / "shards" / "qcd_000.parquet").read_bytes()
    bad = tmp_path / "truncated.parquet"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"truncated\.parquet: not a readable Parquet file"):
        open_reader(bad)


def test_missing_branch_names_file_and_branch(jet_dataset: Path) -> None:
    path = jet_dataset / "shards" / "qcd_000.parquet"
    with pytest.raises(DataError, match=r"qcd_000\.parquet, branch 'part_pxx'.*part_px") as err:
        read_all(path, ["part_pxx"])
    assert err.value.key == "part_pxx"


def test_tree_detection(tmp_path: Path) -> None:
    jets = {"jet_pt": np.ones(3, dtype=np.float32)}
    path = tmp_path / "two.root"
    with uproot.recreate(path) as f:
        for name in ("a", "b"):
            f.mktree(name, {"jet_pt": np.float32})
            f[name].extend(jets)
        f.mkrntuple("nt", {"x": np.float32})
    with pytest.raises(DataError, match=r"expected exactly one TTree.*a \(TTree\).*treename"):
        open_reader(path)
    with pytest.raises(DataError, match="'nt' is an RNTuple"):
        open_reader(path, treename="nt")
    with pytest.raises(DataError, match=r"no TTree 'c' \(TTrees: a, b\)"):
        open_reader(path, treename="c")
    with open_reader(path, treename="b") as reader:
        assert reader.num_entries == 3
    only_rntuple = tmp_path / "rntuple.root"
    with uproot.recreate(only_rntuple) as f:
        f.mkrntuple("Events", {"x": np.float32})
    with pytest.raises(DataError, match=r"found Events \(ROOT::RNTuple\)"):
        open_reader(only_rntuple)


def test_null_values_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "nulls.parquet"
    pq.write_table(
        pa.table({"x": pa.array([1.0, None, 3.0]), "y": pa.array([1.0, 2.0, 3.0])}), path
    )
    assert read_all(path, ["y"]).y.type.content == ak.types.NumpyType("float64")
    with pytest.raises(DataError, match=r"nulls\.parquet, branch 'x': 1 null"):
        read_all(path, ["x"])


def test_bad_benchmark_layouts(tmp_path: Path) -> None:
    npz = tmp_path / "noX.npz"
    np.savez(npz, Y=np.zeros(3))
    with pytest.raises(DataError, match=r"noX\.npz, key 'X'"):
        open_reader(npz)
    truncated = tmp_path / "trunc.npz"
    np.savez(truncated, X=np.ones((10, 3, 4)))
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(DataError, match=r"trunc\.npz"):
        read_all(truncated, ["jet_pt"])
    h5 = tmp_path / "junk.h5"
    h5.write_bytes(b"junk" * 100)
    pytest.importorskip("h5py")
    with pytest.raises(DataError, match=r"junk\.h5: not a readable HDF5 file"):
        open_reader(h5)
