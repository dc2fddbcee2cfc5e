"""Remote inputs by URL: ROOT, Parquet and the two public layouts served by a local HTTP
server (tests/data/rangeserver.py) read as their local copies are, streamed in the same
units (training on a URL: tests/docs/test_inputs_doc.py); what is missing (a file, a
package) is one DataError."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from layoutfiles import quark_gluon, top_landscape
from rangeserver import Served, serve

from heptagon.data.config import load_config
from heptagon.data.io import expand_files, open_reader
from heptagon.data.loader import JetDataset
from heptagon.data.preprocess import Preprocess
from heptagon.data.sources import RemoteFile
from heptagon.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, jet_dataset: Path, jet_root_files: Path
) -> Iterator[tuple[Served, Path]]:
    """A dir with Parquet and ROOT shards and both public layouts, served over HTTP."""
    root = tmp_path_factory.mktemp("served")
    for path in [*(jet_dataset / "shards").iterdir(), *jet_root_files.iterdir()]:
        shutil.copy(path, root / path.name)
    top_landscape(root / "top.h5", n=60)
    quark_gluon(root / "QG_jets.npz", n=60)
    with serve(root) as server:
        yield server, root


@pytest.mark.parametrize("name", ["qcd_000.parquet", "tbqq_000.root", "top.h5", "QG_jets.npz"])
def test_a_remote_file_reads_as_its_local_copy(served: tuple[Served, Path], name: str) -> None:
    server, root = served
    url = f"{server.url}/{name}"
    with open_reader(url) as remote, open_reader(root / name) as local:
        assert isinstance(remote.path, RemoteFile)
        assert str(remote.path) == url
        assert remote.branches == local.branches
        assert remote.num_entries == local.num_entries
        units = remote.units(25)
        assert [(u.start, u.stop) for u in units] == [(u.start, u.stop) for u in local.units(25)]
        branches = [b for b in local.branches if b != "jet_sdmass"][:6]
        for r_unit, l_unit in zip(units, local.units(25), strict=True):
            for r, c in zip(
                remote.read(r_unit, branches, 10), local.read(l_unit, branches, 10), strict=True
            ):
                assert r.start == c.start
                assert len(r.arrays) <= 10
                assert ak.to_list(r.arrays) == ak.to_list(c.arrays)


def test_a_remote_root_file_is_streamed_not_downloaded(served: tuple[Served, Path]) -> None:
    """Reading one branch of a ROOT file fetches its baskets, not the whole file."""
    server, root = served
    size = (root / "qcd_000.root").stat().st_size
    before = server.bytes_sent
    with open_reader(f"{server.url}/qcd_000.root") as reader:
        (chunk,) = reader.read(reader.units(10_000)[0], ["jet_pt"], 10_000)
    assert len(chunk.arrays) == reader.num_entries
    assert 0 < server.bytes_sent - before < size / 2


def test_the_loader_gives_the_same_batches_from_urls(
    served: tuple[Served, Path], jet_dataset: Path
) -> None:
    """Same units, same split (the hash of the URL's file stem), same batches."""
    server, root = served
    config = load_config(ROOT / "configs" / "data" / "top_kinematic.yaml")
    preprocess = Preprocess.from_config(config.model_copy(update={"observers": []}))
    names = ["qcd_000.parquet", "tbqq_000.parquet"]
    kwargs = {"split": "val", "shuffle": False, "batch_size": 64, "buffer_size": 64}
    config = config.model_copy(update={"observers": ["jet_pt"]})
    remote = JetDataset([f"{server.url}/{n}" for n in names], config, preprocess, **kwargs)
    local = JetDataset([root / n for n in names], config, preprocess, **kwargs)
    pairs = list(zip(remote, local, strict=True))
    assert pairs
    for r, c in pairs:
        for group in c.inputs:
            assert torch.equal(r.inputs[group], c.inputs[group])
        assert np.array_equal(r.observers["jet_pt"], c.observers["jet_pt"])


def test_a_missing_remote_file_names_the_url(served: tuple[Served, Path]) -> None:
    server, _ = served
    url = f"{server.url}/nothing.parquet"
    with pytest.raises(DataError) as err:
        open_reader(url)
    assert url in str(err.value)


def test_urls_are_not_globbed() -> None:
    assert expand_files(["https://host/a/*.root"]) == [RemoteFile("https://host/a/*.root")]


def test_a_scheme_without_its_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "fsspec_xrootd" else real(name, *args),
    )
    with pytest.raises(DataError, match="fsspec-xrootd"):
        open_reader("root://eos.example.org//store/x.parquet")
