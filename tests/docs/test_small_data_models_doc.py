"""docs/small-data.md, sections "A Lorentz-equivariant tagger" and "Augmentation": their
commands run (through the CLI app, in this process) on the shared cached top-vs-QCD sample
(tests/conftest.py) as ``top-sample``, with the shipped configs cut to 1 epoch and
LorentzNet's inputs to the 16 hardest particles (its cost grows with their square); the
runs hold what the page says, and a bad key is refused with its name, as the page shows."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from doc_pages import bash_lines, section
from typer.testing import CliRunner

from heptagon.cli import app, main
from heptagon.train.experiment import RunConfig

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "small-data.md"


def _run(line: str) -> None:
    result = CliRunner().invoke(app, [*shlex.split(line)[1:]])
    assert result.exit_code == 0, f"{line}\n{result.output}\n{result.exception!r}"


def _config(run: str) -> RunConfig:
    return RunConfig.model_validate(yaml.safe_load(Path(run, "config.yaml").read_text()))


@pytest.fixture
def workdir(top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    for path in (tmp_path / "configs").glob("top_*.yaml"):
        path.write_text(re.sub(r"epochs: \d+", "epochs: 1", path.read_text()))
    vectors = tmp_path / "configs" / "data" / "top_lorentz.yaml"
    vectors.write_text(vectors.read_text().replace("length: 100", "length: 16"))
    (tmp_path / "top-sample").symlink_to(top_qcd_sample)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_lorentznet_commands_run(workdir: Path) -> None:
    lines = bash_lines(section(PAGE, "A Lorentz-equivariant tagger"))
    assert [shlex.split(line)[1] for line in lines] == ["train", "evaluate", "export"]
    for line in lines:
        _run(line)
    info = json.loads(Path("runs/lorentznet/model.json").read_text())
    assert info["name"] == "lorentznet-lite"
    assert info["input_names"] == ["pf_vectors", "pf_mask"]  # four-momenta only
    assert Path("runs/lorentznet/eval/metrics.json").exists()
    assert Path("runs/lorentznet/model.onnx").exists()  # checked against PyTorch


def test_the_augmentation_commands_run(workdir: Path) -> None:
    lines = bash_lines(section(PAGE, "Augmentation"))
    assert [shlex.split(line)[1] for line in lines] == ["train", "train"]
    for line in lines:
        _run(line)
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


def test_a_bad_augment_key_is_named_as_the_page_shows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = re.search(r"\(`(train\.augment\.boost: [^`]+)`\)", section(PAGE, "Augmentation"))
    assert shown is not None
    experiment = str(ROOT / "configs" / "top_pfn_aug.yaml")
    argv = ["train", experiment, "--data", "x", "--out", "x", "--set", "train.augment.boost=2"]
    monkeypatch.setattr(sys, "argv", ["heptagon", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()  # the console script's path: one line, exit status 2
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert shown.group(1) in err
    assert len(err.strip().splitlines()) == 1
