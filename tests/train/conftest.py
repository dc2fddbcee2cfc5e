"""Fixtures of the train tests: experiment files for tiny, fast models."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import write_experiment

CONFIGS = Path(__file__).parents[2] / "configs"


@pytest.fixture
def mlp_experiment(tmp_path: Path) -> Path:
    """A dense network on the ready high-level top-tagging features."""
    return write_experiment(
        tmp_path / "mlp.yaml",
        {
            "data": str(CONFIGS / "data" / "top_jet.yaml"),
            "model": {"name": "mlp", "options": {"hidden": [32, 32]}},
            "train": {"epochs": 4, "batch_size": 32, "lr": 5e-3, "progress": False},
        },
    )
