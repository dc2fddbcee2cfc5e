"""Experiment metadata: the sample's energy from its manifest, none claimed when unknown,
and the figure label built from it."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib as mpl
import pytest
from matplotlib.figure import Figure

from heptagon.evaluate import plots
from heptagon.physics.experiment import Experiment, dataset_experiment


def test_energy_from_the_dataset_manifest(top_qcd_sample: Path, tmp_path: Path) -> None:
    shards = sorted((top_qcd_sample / "shards").glob("*.parquet"))
    ecm = json.loads((top_qcd_sample / "manifest.json").read_text())["generator"]["beams_ecm_gev"]
    got = dataset_experiment(shards, lumi_fb=300)
    assert got.sqrt_s_tev == pytest.approx(ecm / 1000)
    assert got.sqrt_s_gev == pytest.approx(ecm)
    assert got.energy_text == f"300 fb$^{{-1}}$ ({ecm / 1000:g} TeV)"
    alone = tmp_path / "user.parquet"  # a file of no heptagon dataset: no energy claimed
    alone.write_bytes(b"")
    assert dataset_experiment([alone]) == Experiment()
    assert Experiment().energy_text == ""
    assert Experiment(sqrt_s_tev=13.6).energy_text == "13.6 TeV"
    with pytest.raises(ValueError, match="sqrt_s_tev must be positive"):
        Experiment(sqrt_s_tev=0)


def test_the_figure_label() -> None:
    mpl.use("Agg")
    texts = []
    for experiment in (Experiment(sqrt_s_tev=13.6, lumi_fb=138), Experiment()):
        ax = Figure().subplots()
        plots._label(ax, experiment)
        texts.append(sorted(t.get_text() for t in ax.texts))
    assert texts[0] == ["138 fb$^{-1}$ (13.6 TeV)", "Simulation", "heptagon"]
    assert texts[1] == ["", "Simulation", "heptagon"]  # no energy where none is known
