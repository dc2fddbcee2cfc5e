"""The public benchmark layouts (top-tagging landscape ``.h5``, quark/gluon ``.npz``) train,
evaluate and publish with the shipped configs, unchanged; the branches they do not store
(``event``, soft-drop mass, N-subjettiness) are derived from the constituents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from layoutfiles import quark_gluon, top_landscape
from typer.testing import CliRunner

from heptagon.cli import app
from heptagon.data.io import open_reader
from heptagon.data.loader import JetDataset
from heptagon.data.preprocess import Preprocess
from heptagon.data.readers.layouts import soft_drop_mass
from heptagon.generate.jets import n_subjettiness, substructure
from heptagon.train.experiment import load_experiment

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}\n{result.output}\n{result.exception!r}"
    return result.output


@pytest.mark.parametrize(
    ("layout", "config", "signal"),
    [
        # top.h5 with top_pfn (particles; event and jet_sdmass observers):
        # tests/docs/test_inputs_doc.py
        ("QG_jets.npz", "qg_bdt", "q"),  # jet_sdmass and jet_tau1..2 as inputs
    ],
)
def test_a_public_layout_trains_evaluates_and_publishes_with_a_shipped_config(
    tmp_path: Path, layout: str, config: str, signal: str
) -> None:
    make = top_landscape if layout.endswith(".h5") else quark_gluon
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
    path = quark_gluon(tmp_path / "soft.npz", jets)
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
    import heptagon.data.readers.layouts as layouts

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("substructure computed though not asked for")

    path = quark_gluon(tmp_path / "QG_jets.npz", n=20)
    monkeypatch.setattr(layouts, "soft_drop_mass", refuse)
    monkeypatch.setattr("heptagon.generate.jets.n_subjettiness", refuse)
    with open_reader(path) as reader:
        (chunk,) = reader.read(reader.units(100)[0], ["jet_pt", "event"], 100)
    assert chunk.arrays["event"].tolist() == list(range(20))


@pytest.mark.parametrize(
    "config",
    sorted(p.stem for p in (ROOT / "configs").glob("*.yaml") if p.stem.startswith(("qg_", "top_"))),
)
def test_every_shipped_public_layout_experiment_reads_its_layout(
    tmp_path: Path, config: str
) -> None:
    """Every branch the experiment's data config reads (inputs, labels, observers,
    ``event`` for the split) is one the layout gives: the first batch of each split."""
    experiment = load_experiment(ROOT / "configs" / f"{config}.yaml")
    data = (top_landscape if config.startswith("top_") else quark_gluon)(
        tmp_path / ("top.h5" if config.startswith("top_") else "QG_jets.npz"), n=60
    )
    preprocess = Preprocess.from_config(experiment.data)
    for split in ("train", "test"):
        batch = next(iter(JetDataset(data, experiment.data, preprocess, split=split)))
        assert set(batch.observers) == set(experiment.data.observers)
        assert np.isfinite(batch.observers["jet_sdmass"]).all()


def test_layout_substructure_is_what_generate_writes() -> None:
    """The readers' soft-drop walk and N-subjettiness give generate's numbers exactly."""
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 60, 40)
    total = int(counts.sum())
    pt, eta, phi = rng.exponential(30, total), rng.normal(0, 0.3, total), rng.normal(0, 0.3, total)
    momenta = (pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta))
    for radius in (0.4, 0.8):
        expected = substructure(counts, *momenta, radius)
        np.testing.assert_array_equal(
            soft_drop_mass(counts, *momenta, radius), expected["jet_sdmass"]
        )
        for name, tau in n_subjettiness(counts, *momenta, radius).items():
            np.testing.assert_array_equal(tau, expected[name])
