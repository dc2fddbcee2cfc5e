"""Training turns oneDNN's kernel cache off only where its batches change shape (jagged
inputs padded per batch): there no shape repeats and the cache's churn grows a retained
heap; on fixed shapes the cache pays (heptagon.cpu.uncache_kernels)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from train_helpers import write_experiment

from heptagon.train import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"


@pytest.mark.parametrize(
    ("data", "bucketing", "uncached"),
    [
        ("top_kinematic.yaml", True, True),  # particles, each batch to its longest jet
        ("top_kinematic.yaml", False, False),  # particles, every batch to 100 slots
        ("top_jet.yaml", True, False),  # one row per jet: nothing to pad
    ],
)
def test_the_cache_is_off_only_for_changing_shapes(
    data: str,
    bucketing: bool,
    uncached: bool,
    top_qcd_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)  # restored after the test
    model = "pfn" if data == "top_kinematic.yaml" else "mlp"
    experiment = write_experiment(
        tmp_path / "experiment.yaml",
        {
            "data": str(CONFIGS / "data" / data),
            "model": {"name": model},
            "train": {
                "epochs": 1,
                "max_steps": 2,
                "batch_size": 32,
                "bucketing": bucketing,
                "device": "cpu",
                "progress": False,
            },
        },
    )
    train(experiment, top_qcd_sample, tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    assert os.environ.get(VARIABLE) == ("0" if uncached else None)
