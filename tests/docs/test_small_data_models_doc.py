"""docs/small-data.md, sections "A Lorentz-equivariant tagger" and "Augmentation": their
commands run (through the CLI app, in this process) on the shared cached top-vs-QCD sample
(tests/conftest.py) as ``top-sample``, with the shipped configs cut to 1 epoch and
LorentzNet's inputs to the 16 hardest particles (its cost grows with their square); the
runs hold what the page says (a bad augmentation key: test_small_data_doc.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from doc_pages import one_epoch_configs, run_section

from heptagon.train.experiment import RunConfig

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "small-data.md"


def _config(run: str) -> RunConfig:
    return RunConfig.model_validate(yaml.safe_load(Path(run, "config.yaml").read_text()))


@pytest.fixture
def workdir(top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    one_epoch_configs(tmp_path / "configs", "top_*.yaml")
    vectors = tmp_path / "configs" / "data" / "top_lorentz.yaml"
    vectors.write_text(vectors.read_text().replace("length: 100", "length: 16"))
    (tmp_path / "top-sample").symlink_to(top_qcd_sample)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_lorentznet_commands_run(workdir: Path) -> None:
    run_section(PAGE, "A Lorentz-equivariant tagger", "train", "evaluate", "export")
    info = json.loads(Path("runs/lorentznet/model.json").read_text())
    assert info["name"] == "lorentznet-lite"
    assert info["input_names"] == ["pf_vectors", "pf_mask"]  # four-momenta only
    assert Path("runs/lorentznet/eval/metrics.json").exists()
    assert Path("runs/lorentznet/model.onnx").exists()  # checked against PyTorch


def test_the_augmentation_commands_run(workdir: Path) -> None:
    run_section(PAGE, "Augmentation", "train", "train")
    shipped = _config("runs/pn-aug").train.augment
    assert shipped is not None
    assert shipped.rotate
    assert shipped.reflect
    assert shipped.soft is not None
    assert (shipped.boost, shipped.collinear_split) == (0.1, 0.1)
    assert (shipped.soft.probability, shipped.soft.fraction, shipped.soft.radius) == (
        0.1,
        0.01,
        0.1,
    )
    chosen = _config("runs/pfn-rotate").train.augment
    assert chosen is not None
    assert chosen.rotate
    assert not chosen.reflect
    assert (chosen.boost, chosen.collinear_split, chosen.soft) == (0.0, 0.1, None)
