"""A multi-class run evaluated on a sample that lacks some classes (a JetClass subset):
the missing classes are reported and the others evaluated."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from jetfiles import make_jets, write_parquet

from heptagon.cli import app
from heptagon.physics.summaries import multiclass_metrics

# three classes from the two of the tiny JetClass files: top jets split at 750 GeV
EXPERIMENT = {
    "data": {
        "inputs": {"jet_features": {"vars": ["jet_pt", "jet_sdmass", "jet_nparticles"]}},
        "labels": {
            "QCD": "label_QCD == 1",
            "top_low": "(label_Tbqq == 1) & (jet_pt < 750)",
            "top_high": "(label_Tbqq == 1) & (jet_pt >= 750)",
        },
        "observers": ["jet_pt", "jet_eta", "jet_sdmass"],
    },
    "model": {"name": "bdt"},
}


def _jets(n: int, label: str, seed: int, pt_max: float = 1000.0) -> dict[str, object]:
    jets = make_jets(n, label, seed)
    keep = np.asarray(jets["jet_pt"]) < pt_max
    return {k: v[keep] for k, v in jets.items()}


def test_classes_without_entries_are_reported_and_the_rest_evaluated(tmp_path: Path) -> None:
    experiment = tmp_path / "three.yaml"
    experiment.write_text(yaml.safe_dump(EXPERIMENT))
    files = {}
    for name, seed in (("train", 1), ("val", 2)):
        for label in ("QCD", "Tbqq"):
            files[f"{name}_{label}"] = write_parquet(
                tmp_path / f"{name}_{label}.parquet", _jets(150, label, seed)
            )
    # the test sample: no top jet above 750 GeV
    test_qcd = write_parquet(tmp_path / "test_qcd.parquet", _jets(100, "QCD", 3))
    test_top = write_parquet(tmp_path / "test_top.parquet", _jets(200, "Tbqq", 4, 750.0))
    run = tmp_path / "run"
    args = ["train", str(experiment), "--out", str(run),
            "--data-train", str(files["train_QCD"]), "--data-train", str(files["train_Tbqq"]),
            "--data-val", str(files["val_QCD"]), "--data-val", str(files["val_Tbqq"]),
            "--data-test", str(test_qcd), "--data-test", str(test_top)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["missing_classes"] == ["top_high"]
    assert sorted(metrics["per_class"]) == ["QCD", "top_low"]
    assert metrics["n_events"]["top_high"]["raw"] == 0


def test_the_macro_auc_is_over_the_classes_present() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    probs = np.full((400, 3), 0.1)
    probs[np.arange(400), labels] = 0.8  # perfect separation of the two classes present
    metrics = multiclass_metrics(probs, labels, ["a", "b", "c"], n_boot=2)
    assert metrics.missing_classes == ["c"]
    assert metrics.auc.value == 1.0
