"""docs/small-data.md, section "Training recipes": its commands run (through the CLI app, in
this process) on the shared cached top-vs-QCD sample (tests/conftest.py) as ``top-sample``,
with the shipped configs cut to 1 epoch; the runs hold what the page says (the averaged
weights are best.pt, the keys are in the resolved config), and a bad key is refused with
its name, as the page shows."""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from doc_pages import bash_lines, section
from typer.testing import CliRunner

from heptagon.cli import app, main
from heptagon.train.experiment import RunConfig
from heptagon.train.rundir import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "small-data.md"


def _run(line: str) -> str:
    result = CliRunner().invoke(app, shlex.split(line)[1:])
    assert result.exit_code == 0, f"{line}\n{result.output}\n{result.exception!r}"
    return result.output


def test_the_recipe_commands_run(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    for path in (tmp_path / "configs").glob("top_*.yaml"):
        path.write_text(re.sub(r"epochs: \d+", "epochs: 1", path.read_text()))
    (tmp_path / "top-sample").symlink_to(top_qcd_sample)
    monkeypatch.chdir(tmp_path)
    lines = bash_lines(section(PAGE, "Training recipes"))
    assert [shlex.split(line)[1] for line in lines] == ["train", "train", "evaluate"]
    for line in lines:
        _run(line)

    # one validation (1 epoch): best.pt is the average at the end, not the trained weights
    last = load_checkpoint(Path("runs/pn-small/checkpoints/last.pt"))
    best = load_checkpoint(Path("runs/pn-small/checkpoints/best.pt"))
    assert last["ema"] is not None
    for name, value in last["ema"].items():
        torch.testing.assert_close(best["model"][name], value, msg=name)
    assert Path("runs/pn-small/eval/metrics.json").exists()
    config = RunConfig.model_validate(yaml.safe_load(Path("runs/part-ema/config.yaml").read_text()))
    assert config.train.ema is not None
    assert (config.train.ema.decay, config.train.ema.start_step) == (0.99, 200)
    assert config.train.loss.name == "ce"
    assert config.train.loss.label_smoothing == 0.05


def test_a_bad_key_is_named_as_the_page_shows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = re.search(r"\(`(train\.ema\.decay: [^`]+)`\)", section(PAGE, "Training recipes"))
    assert shown is not None
    experiment = str(ROOT / "configs" / "top_particlenet_lite_small.yaml")
    argv = ["train", experiment, "--data", "x", "--out", "x", "--set", "train.ema={decay: 1.5}"]
    monkeypatch.setattr(sys, "argv", ["heptagon", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()  # the console script's path: one line, exit status 2
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert shown.group(1) in err
    assert len(err.strip().splitlines()) == 1
