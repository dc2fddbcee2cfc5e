"""The top-landscape HDF5 reader never unpickles (issue 15, item 1): h5py reads the rows,
and the column names are disassembled from PyTables' pickled attributes, not loaded."""

from __future__ import annotations

import pickle
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heptagon.data.io import open_reader
from heptagon.data.readers.hdf5 import pickled_names
from heptagon.errors import DataError

pd = pytest.importorskip("pandas")
pytest.importorskip("tables")  # to WRITE the test files the way the public ones were written
h5py = pytest.importorskip("h5py")

BRANCHES = ["part_px", "part_energy", "jet_pt", "jet_nparticles", "label_Tbqq", "label_QCD"]


class _Touch:
    """Unpickling this creates ``marker``: the proof that a reader ran the file's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def landscape_frame(n: int = 12, m: int = 5) -> pd.DataFrame:
    """A small landscape table: E/PX/PY/PZ_i zero-padded, truth columns, ttv, the label."""
    rng = np.random.default_rng(3)
    counts = rng.integers(1, m + 1, n)
    real = np.arange(m)[None, :] < counts[:, None]
    cols: dict[str, np.ndarray] = {}
    for i in range(m):
        for key in ("E", "PX", "PY", "PZ"):
            value = rng.uniform(1, 50, n) * (1 if key == "E" else rng.choice([-1, 1], n))
            cols[f"{key}_{i}"] = np.where(real[:, i], value, 0).astype(np.float32)
    for key in ("truthE", "truthPX", "truthPY", "truthPZ"):
        cols[key] = rng.normal(size=n).astype(np.float32)
    cols["ttv"] = np.zeros(n, dtype=np.int64)
    cols["is_signal_new"] = (np.arange(n) % 2).astype(np.int64)
    return pd.DataFrame(cols)


def read(path: Path) -> ak.Array:
    with open_reader(path) as reader:
        return ak.concatenate(
            [c.arrays for u in reader.units(5) for c in reader.read(u, BRANCHES, 5)]
        )


def expected(frame: pd.DataFrame) -> dict[str, list]:
    m = sum(1 for c in frame.columns if c.startswith("E_"))
    e = frame[[f"E_{i}" for i in range(m)]].to_numpy(np.float64)
    px = frame[[f"PX_{i}" for i in range(m)]].to_numpy(np.float64)
    return {
        "part_px": [row[en > 0].tolist() for row, en in zip(px, e, strict=True)],
        "jet_nparticles": (e > 0).sum(axis=1).tolist(),
        "label_Tbqq": (frame["is_signal_new"] == 1).tolist(),
    }


@pytest.mark.parametrize(
    ("data_columns", "complib"),
    [(None, None), (["is_signal_new", "PX_1"], None), (None, "blosc"), (None, "zlib")],
)
def test_reads_the_same_jets_as_pandas(
    tmp_path: Path, data_columns: list[str] | None, complib: str | None
) -> None:
    """Data columns reorder the blocks (PX_1 leaves values_block_0): names still map.
    PyTables' compression filters (blosc needs hdf5plugin with h5py) read the same."""
    frame = landscape_frame()
    path = tmp_path / "top.h5"
    compression = {"complib": complib, "complevel": 5} if complib else {}
    frame.to_hdf(path, key="table", format="table", data_columns=data_columns, **compression)
    arrays, want = read(path), expected(pd.read_hdf(path, "table"))
    assert ak.to_list(arrays.jet_nparticles) == want["jet_nparticles"]
    assert ak.to_list(arrays.label_Tbqq) == want["label_Tbqq"]
    assert ak.to_list(arrays.label_QCD) == [not s for s in want["label_Tbqq"]]
    for got, row in zip(ak.to_list(arrays.part_px), want["part_px"], strict=True):
        assert got == pytest.approx(row, rel=1e-6)


def crafted(tmp_path: Path, marker: Path) -> Path:
    """A genuine landscape file whose pickled column-name attributes run code when loaded."""
    path = tmp_path / "evil.h5"
    landscape_frame().to_hdf(path, key="table", format="table")
    payload = np.bytes_(pickle.dumps([_Touch(marker)], protocol=0))
    with h5py.File(path, "r+") as f:
        f["table"].attrs["non_index_axes"] = payload
        f["table/table"].attrs["values_block_0_kind"] = payload
    return path


def test_a_crafted_file_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = crafted(tmp_path, marker)
    # the attack is real: the old reader (pandas / PyTables) runs the payload
    with pd.HDFStore(path, mode="r") as store:
        store.get_storer("table").non_index_axes  # noqa: B018
    assert marker.exists()
    marker.unlink()
    with pytest.raises(DataError, match=r"evil\.h5.*'values_block_0_kind'.*GLOBAL"):
        open_reader(path)
    assert not marker.exists()


def test_pickled_names_reads_plain_lists_only(tmp_path: Path) -> None:
    names = ["E_0", "PX_0", "ttv", "is_signal_new"]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickled_names(pickle.dumps(names, protocol), tmp_path, "a") == names
    assert pickled_names(pickle.dumps(["x", "x"], 0), tmp_path, "a") == ["x", "x"]
    refused = {
        b"junk": "malformed",
        pickle.dumps(("E_0",), 0): "list of column names",
        pickle.dumps([1, 2], 0): "list of column names",
        pickle.dumps([b"E_0"], 4): "SHORT_BINBYTES",
        pickle.dumps({"a": 1}, 0): "DICT",
        pickle.dumps([_Touch(tmp_path / "M")], 4): "STACK_GLOBAL",
        b"(lp0\na.": "malformed",  # APPEND onto the MARK: pop_mark is never reached
    }
    for raw, why in refused.items():
        with pytest.raises(DataError, match=why):
            pickled_names(raw, tmp_path, "a")
    assert not (tmp_path / "M").exists()


def test_layout_errors_name_the_file(tmp_path: Path) -> None:
    fixed = tmp_path / "fixed.h5"
    landscape_frame().to_hdf(fixed, key="table", format="fixed")
    with pytest.raises(DataError, match=r"fixed\.h5, branch 'table'.*format='table'"):
        open_reader(fixed)
    two = tmp_path / "two.h5"
    landscape_frame().to_hdf(two, key="a", format="table")
    landscape_frame().to_hdf(two, key="b", format="table")
    with pytest.raises(DataError, match=r"two\.h5: expected one pandas table"):
        open_reader(two)
    short = tmp_path / "short.h5"
    landscape_frame().drop(columns=["PY_3"]).to_hdf(short, key="table", format="table")
    with pytest.raises(DataError, match=r"short\.h5, branch 'PY_3': column missing"):
        open_reader(short)
    width = tmp_path / "width.h5"
    landscape_frame().to_hdf(width, key="table", format="table")
    with h5py.File(width, "r+") as f:
        f["table/table"].attrs["values_block_0_kind"] = np.bytes_(pickle.dumps(["E_0"], 0))
    with pytest.raises(DataError, match=r"width\.h5, branch 'values_block_0': 1 column names"):
        open_reader(width)
    cut = tmp_path / "cut.h5"
    data = (tmp_path / "short.h5").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.h5"):
        read(cut)
