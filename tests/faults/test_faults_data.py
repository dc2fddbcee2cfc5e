"""Fault injection: bad inputs to ``heptagon data inspect`` and ``heptagon trigger features``
(issue 15, items 1 and 8). Each case: exit 2, one line naming the file, branch or key, no
traceback, nothing half-written."""

from __future__ import annotations

import pickle
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from faults_helpers import assert_user_error, heptagon, no_temp_files, tree

CONFIG = "inputs:\n  jet:\n    vars: [jet_pt, jet_mass]\n"


def jets(n: int = 6, counts: list[int] | None = None) -> dict[str, np.ndarray | ak.Array]:
    """``n`` jets of a few constituents: part_px/py/pz/energy, jet_pt, jet_mass, a label."""
    rng = np.random.default_rng(5)
    counts = counts or [3 + i % 3 for i in range(n)]
    total = sum(counts)
    pt = rng.uniform(5, 50, total)
    eta, phi = rng.normal(0, 0.2, total), rng.normal(0, 0.2, total)
    flat = {
        "part_px": pt * np.cos(phi),
        "part_py": pt * np.sin(phi),
        "part_pz": pt * np.sinh(eta),
        "part_energy": pt * np.cosh(eta),
    }
    out: dict[str, np.ndarray | ak.Array] = {
        k: ak.unflatten(v.astype(np.float32), counts) for k, v in flat.items()
    }
    out["jet_pt"] = rng.uniform(300, 600, len(counts)).astype(np.float32)
    out["jet_mass"] = rng.uniform(10, 200, len(counts)).astype(np.float32)
    out["label_QCD"] = np.ones(len(counts), dtype=bool)
    return out


def parquet(path: Path, columns: dict[str, np.ndarray | ak.Array]) -> Path:
    ak.to_parquet(ak.zip(columns, depth_limit=1), path)
    return path


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "data.yaml"
    path.write_text(CONFIG)
    return path


def test_missing_input(tmp_path: Path, config: Path) -> None:
    missing = tmp_path / "nothing.parquet"
    assert_user_error(heptagon("data", "inspect", str(missing), "--config", str(config)), "nothing")


@pytest.mark.parametrize("suffix", [".parquet", ".root", ".h5"])
def test_a_text_file_with_a_data_suffix(tmp_path: Path, config: Path, suffix: str) -> None:
    fake = tmp_path / f"notes{suffix}"
    fake.write_text("this is not a data file\n" * 20)
    res = heptagon("data", "inspect", str(fake), "--config", str(config))
    assert_user_error(res, str(fake))


@pytest.mark.parametrize("suffix", [".parquet", ".root"])
def test_a_truncated_file(tmp_path: Path, config: Path, suffix: str) -> None:
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".parquet":
        parquet(whole, jets(200))
    else:
        with uproot.recreate(whole) as f:
            f["tree"] = {k: v for k, v in jets(200).items() if k.startswith("jet_")}
    cut = tmp_path / f"cut{suffix}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert_user_error(heptagon("data", "inspect", str(cut), "--config", str(config)), str(cut))


def test_a_corrupt_yaml_config(tmp_path: Path) -> None:
    data = parquet(tmp_path / "ok.parquet", jets())
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs:\n  jet: [unclosed\n    vars: {\n")
    assert_user_error(heptagon("data", "inspect", str(data), "--config", str(bad)), str(bad))


def test_an_all_nan_branch_is_named(tmp_path: Path, config: Path) -> None:
    columns = jets()
    columns["jet_mass"] = np.full(6, np.nan, dtype=np.float32)
    data = parquet(tmp_path / "nan.parquet", columns)
    res = heptagon("data", "inspect", str(data), "--config", str(config))
    assert_user_error(res, data.name, "jet_mass", "NaN")  # check_selected names file names


class _Touch:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_a_crafted_hdf5_runs_no_code(tmp_path: Path, config: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    h5py = pytest.importorskip("h5py")
    keys = ["E", "PX", "PY", "PZ"]
    cols = {f"{k}_{i}": np.full(4, 1.0 + i, np.float32) for i in range(3) for k in keys}
    cols["is_signal_new"] = np.array([0, 1, 0, 1], dtype=np.int64)
    path = tmp_path / "evil.h5"
    pd.DataFrame(cols).to_hdf(path, key="table", format="table")
    marker = tmp_path / "MARKER"
    payload = np.bytes_(pickle.dumps([_Touch(marker)], protocol=0))
    with h5py.File(path, "r+") as f:
        f["table"].attrs["non_index_axes"] = payload
        f["table/table"].attrs["values_block_0_kind"] = payload
    res = heptagon("data", "inspect", str(path), "--config", str(config))
    assert_user_error(res, str(path), "values_block_0_kind")
    assert not marker.exists()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_trigger_features_refuse_nan_and_inf(tmp_path: Path, bad: float) -> None:
    columns = jets()
    flat = ak.to_numpy(ak.flatten(columns["part_pz"])).copy()
    flat[4] = bad
    columns["part_pz"] = ak.unflatten(flat, ak.num(columns["part_pz"]))
    data = parquet(tmp_path / "nan.parquet", columns)
    out = tmp_path / "out" / "hlf.parquet"
    res = heptagon("trigger", "features", str(data), "--out", str(out))
    assert_user_error(res, str(data), "part_pz", "NaN/inf")
    assert not out.exists()
    no_temp_files(tmp_path)


def test_trigger_features_refuse_empty_jets(tmp_path: Path) -> None:
    data = parquet(tmp_path / "empty.parquet", jets(counts=[3, 0, 4]))
    res = heptagon("trigger", "features", str(data), "--out", str(tmp_path / "hlf.parquet"))
    assert_user_error(res, str(data), "part_px", "no constituents")


def test_trigger_features_into_an_unwritable_dir(tmp_path: Path, unwritable_dir: Path) -> None:
    data = parquet(tmp_path / "ok.parquet", jets())
    before = tree(tmp_path)
    out = unwritable_dir / "hlf.parquet"
    res = heptagon("trigger", "features", str(data), "--out", str(out))
    assert_user_error(res, str(unwritable_dir))
    assert tree(tmp_path) == before


def test_trigger_features_create_a_missing_dir(tmp_path: Path) -> None:
    data = parquet(tmp_path / "ok.parquet", jets())
    out = tmp_path / "new" / "dir" / "hlf.parquet"
    res = heptagon("trigger", "features", str(data), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert len(ak.from_parquet(out)) == 6
    no_temp_files(tmp_path)
