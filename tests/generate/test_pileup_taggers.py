"""A tagger trained without pile-up, evaluated on a sample with pile-up: the commands of
docs/pileup.md's "Taggers under pile-up" (benchmarks/pileup.py --part taggers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from heptagon import configs
from heptagon.cli import app


def _heptagon(*argv: str) -> None:
    res = CliRunner().invoke(app, list(argv))
    assert res.exit_code == 0, res.output


def test_bdt_trained_at_mu0_evaluated_at_mu20(top_qcd_sample: Path, tmp_path: Path) -> None:
    pu, run = tmp_path / "top-mu20", tmp_path / "bdt"
    _heptagon(
        "generate", "top-vs-qcd", "--jets", "15", "--seed", "11", "--out", str(pu),
        "--pileup", "20", "--mitigation", "puppi", "--pileup-library", "60",
    )  # fmt: skip
    experiment = Path(configs.__file__).parent / "top_bdt.yaml"
    _heptagon("train", str(experiment), "--out", str(run), "--data", str(top_qcd_sample))
    _heptagon("evaluate", str(run), "--data", str(pu))
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert list(metrics["samples"]) == ["top-mu20"]
    sample = metrics["samples"]["top-mu20"]
    # the whole pile-up sample is scored, both classes
    assert sample["n_signal"]["raw"] == 15
    assert sample["n_background"]["raw"] == 15
    auc = sample["auc"]["value"]
    assert np.isfinite(auc)
    assert auc > 0.6  # PUPPI jets at mu = 20: the mu = 0 BDT still separates top from QCD
