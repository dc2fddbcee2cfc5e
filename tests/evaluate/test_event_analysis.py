"""The ready event-level experiments (configs/analysis_*.yaml) through the ordinary train and
evaluate stages on the shared tiny event sample: no special paths."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq

from heptagon.evaluate.run import evaluate
from heptagon.train import train

CONFIGS = Path(__file__).parents[2] / "configs"


def test_binary_bdt_separates_tth_from_ttbar(event_sample: Path, tmp_path: Path) -> None:
    run = tmp_path / "bdt"
    train(CONFIGS / "analysis_bdt.yaml", event_sample, run)
    metrics = evaluate(run, n_boot=5).metrics.to_json()
    assert metrics["signal"] == "tth"
    assert metrics["auc"]["value"] > 0.6  # b-jet and jet multiplicity, H_T
    pred = pq.read_table(run / "eval" / "predictions_test.parquet")
    assert {"prob_tth", "label_ttbar", "label_dy", "xsec_weight_pb"} <= set(pred.column_names)


def test_higgs_pt_regression_is_evaluated(event_sample: Path, tmp_path: Path) -> None:
    run = tmp_path / "higgs_pt"
    train(
        CONFIGS / "analysis_higgs_pt_cnn.yaml",
        event_sample,
        run,
        overrides=["train.epochs=3", "train.lr=3e-3"],
    )
    metrics = evaluate(run, n_boot=5).metrics.to_json()
    median = metrics["response_median"]["value"]
    assert math.isfinite(median)
    assert median > 0
    assert math.isfinite(metrics["resolution"]["value"])
