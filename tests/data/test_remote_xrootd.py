"""``root://`` inputs from a local XRootD server, where one is installed (the ``xrootd``
binary, e.g. Debian's ``xrootd-server``, and ``fsspec-xrootd``); skipped otherwise, as in
CI: PyPI's ``xrootd`` wheel is the client only."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import pytest
from layoutfiles import quark_gluon, top_landscape

from heptagon.data.io import open_reader
from heptagon.data.sources import RemoteFile

pytestmark = pytest.mark.skipif(
    shutil.which("xrootd") is None or importlib.util.find_spec("fsspec_xrootd") is None,
    reason="needs an xrootd server binary and fsspec-xrootd",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def xrootd_dir(jet_dataset: Path, jet_root_files: Path) -> Iterator[tuple[str, Path]]:
    """A dir with a Parquet and a ROOT shard and both public layouts, served by xrootd
    (as ``nobody`` when the tests run as root: xrootd refuses to run as the superuser)."""
    root = Path(tempfile.mkdtemp(prefix="heptagon-xrootd-"))
    try:
        data, run = root / "data", root / "run"
        data.mkdir()
        run.mkdir()
        shutil.copy(jet_dataset / "shards" / "qcd_000.parquet", data)
        shutil.copy(jet_root_files / "tbqq_000.root", data)
        top_landscape(data / "top.h5", n=40)
        quark_gluon(data / "QG_jets.npz", n=40)
        for path in (root, data, *data.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        port = _free_port()
        command = ["xrootd", "-p", str(port), "-l", str(run / "log"), "-a", str(run / "adm")]
        if os.geteuid() == 0:
            shutil.chown(run, "nobody")
            command += ["-R", "nobody"]
        server = subprocess.Popen([*command, str(data)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            for _ in range(100):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            else:
                pytest.skip("the xrootd server did not start")
            yield f"root://127.0.0.1:{port}/{data}", data
        finally:
            server.terminate()
            server.wait(timeout=10)
    finally:
        shutil.rmtree(root)


@pytest.mark.parametrize("name", ["qcd_000.parquet", "tbqq_000.root", "top.h5", "QG_jets.npz"])
def test_an_xrootd_file_reads_as_its_local_copy(xrootd_dir: tuple[str, Path], name: str) -> None:
    base, data = xrootd_dir
    with open_reader(f"{base}/{name}") as remote, open_reader(data / name) as local:
        assert isinstance(remote.path, RemoteFile)
        assert remote.path.stem == Path(name).stem  # the split hashes the same stem
        assert remote.num_entries == local.num_entries
        branches = [b for b in local.branches if b != "jet_sdmass"][:5]
        (r_unit, *_), (l_unit, *_) = remote.units(20), local.units(20)
        r = [c.arrays for c in remote.read(r_unit, branches, 10)]
        c = [c.arrays for c in local.read(l_unit, branches, 10)]
        assert [ak.to_list(a) for a in r] == [ak.to_list(a) for a in c]
