"""The public benchmark layouts (top-tagging landscape ``.h5``, quark/gluon ``.npz``) train,
evaluate and publish with the shipped configs, unchanged; the branches they do not store
(``event``, soft-drop mass, N-subjettiness) are derived from the constituents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from heptagon.cli import app
from heptagon.data.io import open_reader

ROOT = Path(__file__).resolve().parents[2]
N_JETS = 240


def _top_landscape(path: Path, n: int = N_JETS, m: int = 40) -> Path:
    """A top-landscape store (pandas ``table``): signal jets are harder than QCD ones."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    rng = np.random.default_rng(5)
    signal = (np.arange(n) % 2).astype(np.int8)
    counts = rng.integers(5, m, n)
    real = np.arange(m)[None, :] < counts[:, None]
    pt = rng.exponential(30, (n, m)) * (1 + signal[:, None])
    eta, phi = rng.normal(0, 0.3, (n, m)), rng.normal(0, 0.3, (n, m))
    values = {
        "E": pt * np.cosh(eta),
        "PX": pt * np.cos(phi),
        "PY": pt * np.sin(phi),
        "PZ": pt * np.sinh(eta),
    }
    cols = {
        f"{key}_{i}": np.where(real[:, i], v[:, i], 0.0).astype(np.float32)
        for i in range(m)
        for key, v in values.items()
    }
    cols |= {"truthE": np.zeros(n, np.float32), "ttv": np.zeros(n, np.int8)}
    cols["is_signal_new"] = signal
    pd.DataFrame(cols).to_hdf(path, key="table", format="table")
    return path


def _quark_gluon(path: Path, jets: np.ndarray | None = None, n: int = N_JETS) -> Path:
    """A quark/gluon ``.npz``: ``X`` (jets, particles, (pT, y, phi, pid)), ``y``; gluon
    jets (y = 0) have more particles."""
    if jets is None:
        rng = np.random.default_rng(6)
        m = 30
        quark = np.arange(n) % 2
        jets = np.zeros((n, m, 4))
        pids = np.array([22, 211, -211, 130, 2112, 321, -321, 11, 13])
        for i in range(n):
            c = int(rng.integers(2, 12 if quark[i] else m))
            jets[i, :c, 0] = np.sort(rng.exponential(20, c))[::-1] + 1
            jets[i, :c, 1] = rng.normal(0, 0.2, c)
            jets[i, :c, 2] = rng.normal(3.0, 0.2, c)
            jets[i, :c, 3] = rng.choice(pids, c)
    np.savez_compressed(path, X=jets, y=(np.arange(len(jets)) % 2).astype(np.float64))
    return path


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}\n{result.output}\n{result.exception!r}"
    return result.output


@pytest.mark.parametrize(
    ("layout", "config", "signal"),
    [
        ("top.h5", "top_bdt", "Tbqq"),
        ("top.h5", "top_pfn", "Tbqq"),
        ("QG_jets.npz", "qg_bdt", "q"),
        ("QG_jets.npz", "qg_pfn", "q"),
    ],
)
def test_a_public_layout_trains_evaluates_and_publishes_with_a_shipped_config(
    tmp_path: Path, layout: str, config: str, signal: str
) -> None:
    make = _top_landscape if layout.endswith(".h5") else _quark_gluon
    data = make(tmp_path / layout)
    run = tmp_path / "run"
    experiment = ROOT / "configs" / f"{config}.yaml"
    _run("train", str(experiment), "--data", str(data), "--out", str(run), "--set",
         "train.epochs=1")  # fmt: skip
    _run("evaluate", str(run))
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["signal"] == signal
    columns = pq.read_schema(run / "eval" / "predictions_test.parquet").names
    for name in ("jet_sdmass", "jet_pt", "jet_eta"):  # for the efficiency maps and sculpting
        assert name in columns
    _run("publish", str(run))
    assert (run / "bundle" / "SHA256SUMS").is_file()


def test_soft_drop_mass_of_a_layout_jet_drops_the_soft_wide_angle_particle(
    tmp_path: Path,
) -> None:
    """Two hard photons 0.1 apart in rapidity and a soft one 0.3 further: C/A declusters the
    soft one last with z = 2 / 182 < z_cut = 0.1, so the soft-drop mass is the pair's,
    sqrt(2 pT1 pT2 (cosh dy - cos dphi)) = 8.948 GeV, while the jet mass includes it."""
    jets = np.zeros((2, 3, 4))
    jets[:, :, 0] = [100.0, 80.0, 2.0]  # pT [GeV]
    jets[:, :, 1] = [0.0, 0.1, 0.4]  # rapidity
    jets[:, :, 2] = 1.0  # phi
    jets[:, :, 3] = 22
    path = _quark_gluon(tmp_path / "soft.npz", jets)
    with open_reader(path) as reader:
        unit = reader.units(10)[0]
        wanted = ["jet_sdmass", "jet_mass", "jet_tau1", "jet_tau2", "event"]
        (chunk,) = reader.read(unit, wanted, 10)
    pair = np.sqrt(2 * 100.0 * 80.0 * (np.cosh(0.1) - 1.0))
    arrays = {name: np.asarray(chunk.arrays[name]) for name in wanted}
    np.testing.assert_allclose(arrays["jet_sdmass"], pair, rtol=1e-4)
    assert (arrays["jet_mass"] > pair + 1.0).all()
    assert ((arrays["jet_tau2"] >= 0) & (arrays["jet_tau2"] < arrays["jet_tau1"])).all()
    assert chunk.arrays["event"].tolist() == [0, 1]


def test_substructure_is_computed_only_when_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import heptagon.generate.jets as jets

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("substructure computed though not asked for")

    path = _quark_gluon(tmp_path / "QG_jets.npz", n=20)
    monkeypatch.setattr(jets, "substructure", refuse)
    with open_reader(path) as reader:
        (chunk,) = reader.read(reader.units(100)[0], ["jet_pt", "event"], 100)
    assert chunk.arrays["event"].tolist() == list(range(20))
