"""benchmarks/train_memory.py runs end to end on the shared tiny top-vs-QCD sample: two
trainings in their own processes, with and without oneDNN's kernel cache, the same losses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import _common  # the benchmarks' helper (benchmarks/ is on pytest's pythonpath)
    import train_memory

    monkeypatch.setattr(_common, "RESULTS", tmp_path)  # not the committed results
    config = ROOT / "src" / "heptagon" / "configs" / "top_part_lite_aug.yaml"
    argv = ["train_memory.py", "--data", str(top_qcd_sample), "--config", str(config)]
    monkeypatch.setattr(sys, "argv", [*argv, "--epochs", "1", "--out", str(tmp_path / "runs")])
    train_memory.main()

    figures = json.loads((tmp_path / "train_memory.json").read_text())["figures"]
    assert figures["config"] == "src/heptagon/configs/top_part_lite_aug.yaml"
    on, off = figures["runs"]["cache_on"], figures["runs"]["cache_off"]
    assert on["oneDNN_cache_capacity"] == "1024"
    for run in (on, off):
        assert len(run["epoch_s"]) == len(run["train_loss"]) == 1
        assert 0.05 < run["peak_rss_gb"] < 20
    assert figures["same_training_loss"]
    assert on["train_loss"] == off["train_loss"]
    assert figures["peak_rss_off_over_on"] == off["peak_rss_gb"] / on["peak_rss_gb"]
