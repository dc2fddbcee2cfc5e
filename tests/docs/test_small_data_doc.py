"""docs/small-data.md, section "Training recipes": its commands run (through the CLI app, in
this process) on the shared cached top-vs-QCD sample (tests/conftest.py) as ``top-sample``,
with the shipped configs cut to 1 epoch; the runs hold what the page says (the averaged
weights are best.pt, the keys are in the resolved config); and a bad key of this section
or of "Augmentation" is refused with its name, as the page shows."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
import yaml
from doc_pages import one_epoch_configs, run_section, section

from heptagon.cli import main
from heptagon.train.experiment import RunConfig
from heptagon.train.rundir import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "small-data.md"


def test_the_recipe_commands_run(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_epoch_configs(tmp_path / "configs", "top_*.yaml")
    (tmp_path / "top-sample").symlink_to(top_qcd_sample)
    monkeypatch.chdir(tmp_path)
    run_section(PAGE, "Training recipes", "train", "train", "evaluate")

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


@pytest.mark.parametrize(
    ("heading", "key", "experiment", "setting"),
    [
        (
            "Training recipes",
            "train.ema.decay",
            "top_particlenet_lite_small",
            "train.ema={decay: 1.5}",
        ),
        ("Augmentation", "train.augment.boost", "top_pfn_aug", "train.augment.boost=2"),
    ],
)
def test_a_bad_key_is_named_as_the_page_shows(
    heading: str,
    key: str,
    experiment: str,
    setting: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = re.search(rf"\(`({re.escape(key)}: [^`]+)`\)", section(PAGE, heading))
    assert shown is not None
    config = str(ROOT / "configs" / f"{experiment}.yaml")
    argv = ["train", config, "--data", "x", "--out", "x", "--set", setting]
    monkeypatch.setattr(sys, "argv", ["heptagon", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()  # the console script's path: one line, exit status 2
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert shown.group(1) in err
    assert len(err.strip().splitlines()) == 1
