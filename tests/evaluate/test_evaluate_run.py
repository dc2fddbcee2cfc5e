"""``evaluate`` and ``compare`` on real (tiny) trained runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heptagon.artifacts.metrics import BinaryMetrics, read_evaluation
from heptagon.errors import DataError
from heptagon.evaluate.inference import Predictions
from heptagon.evaluate.run import compare, evaluate
from heptagon.train.run import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def runs(top_qcd_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, overrides in (
        ("mlp", ["train.epochs=4", "train.progress=false"]),
        ("bdt", []),
    ):
        out[name] = root / name
        train(CONFIGS / f"top_{name}.yaml", top_qcd_sample, out[name], overrides=overrides)
    return out


def test_evaluate_writes_every_artifact(runs: dict[str, Path]) -> None:
    result = evaluate(runs["mlp"], n_boot=20)
    eval_dir = runs["mlp"] / "eval"
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert metrics == result.metrics.to_json()
    assert read_evaluation(eval_dir / "metrics.json") == result.metrics
    assert metrics["kind"] == "binary"
    assert metrics["samples"]["test"] == {
        k: v
        for k, v in metrics.items()
        if k not in ("schema_version", "sample", "samples", "checkpoint_sha256")
    }
    assert metrics["sample"] == "test"
    assert metrics["signal"] == "Tbqq"
    # the held-out test split: ~15% of the 600 jets
    n = metrics["n_signal"]["raw"] + metrics["n_background"]["raw"]
    assert 50 < n < 150
    assert metrics["auc"]["value"] > 0.85
    assert {"0.3", "0.5"} == set(metrics["rejection_at_eff"])
    assert "0.5" in metrics["jsd_inverse_at_eff"]
    for name in (
        "report.md",
        "roc_test.csv",
        "predictions_test.parquet",
        "plots/test_roc.png",
        "plots/test_sculpting.pdf",
        "plots/test_mistag_map.png",
    ):
        assert (eval_dir / name).stat().st_size > 0, name
    pred = Predictions.load(eval_dir / "predictions_test.parquet", ["QCD", "Tbqq"])
    assert len(pred) == n
    assert set(pred.observers) >= {"jet_pt", "jet_eta", "jet_sdmass"}
    assert "| test |" in (eval_dir / "report.md").read_text()


def test_evaluate_several_samples(
    runs: dict[str, Path], top_qcd_sample: Path, tmp_path: Path
) -> None:
    samples = []
    for index in ("0000", "0001"):  # two samples, each with both classes
        shards = tmp_path / f"shards{index}" / "shards"
        shards.mkdir(parents=True)
        for f in (top_qcd_sample / "shards").glob(f"*_{index}.parquet"):
            (shards / f.name).symlink_to(f)
        samples.append(shards.parent)
    result = evaluate(runs["bdt"], data=samples, n_boot=10)
    samples = result.metrics.samples
    assert set(samples) == {"shards0000", "shards0001"}
    assert result.metrics.sample == "shards0000"
    for m in samples.values():
        assert isinstance(m, BinaryMetrics)
        assert m.n_signal.raw == m.n_background.raw == 150
        assert m.auc.value is not None
        assert m.auc.value > 0.85
    report = (runs["bdt"] / "eval" / "report.md").read_text()
    assert "| shards0000 |" in report
    assert "| shards0001 |" in report


def test_a_sample_without_background_is_refused(
    runs: dict[str, Path], top_qcd_sample: Path
) -> None:
    with pytest.raises(DataError, match="signal and background"):
        evaluate(runs["bdt"], data=[top_qcd_sample / "shards" / "Tbqq_0000.parquet"], n_boot=5)


def test_compare_overlays_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    evaluate(runs["bdt"], n_boot=10)  # back to the test split
    result = compare([runs["mlp"], runs["bdt"]], tmp_path / "cmp")
    assert len(result.metrics) == 2
    assert (tmp_path / "cmp" / "roc.png").stat().st_size > 0
    text = (tmp_path / "cmp" / "compare.md").read_text()
    assert "mlp (mlp)" in text
    assert "bdt (bdt)" in text
