"""A run's DDT map end to end: built from the run, applied by evaluate, carried by the ONNX
export, applied by predict as ``ddt_score``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from heptagon.errors import ConfigError
from heptagon.evaluate.ddt import make_ddt
from heptagon.evaluate.run import evaluate
from heptagon.infer.predict import predict
from heptagon.physics.ddt import DDT_FILE, DDTMap
from heptagon.publish.bundle import export_run
from heptagon.publish.onnx import load_onnx
from heptagon.train import train

CONFIGS = Path(__file__).parents[2] / "configs"


@pytest.fixture(scope="module")
def mlp_run(top_qcd_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddt")
    experiment = root / "mlp.yaml"
    experiment.write_text(
        yaml.safe_dump(
            {
                "data": str(CONFIGS / "data" / "top_jet.yaml"),
                "model": {"name": "mlp", "options": {"hidden": [16]}},
                "train": {"epochs": 2, "batch_size": 64, "progress": False},
            }
        )
    )
    train(experiment, top_qcd_sample, root / "run")
    return root / "run"


def test_ddt_through_evaluate_export_and_predict(
    mlp_run: Path, top_qcd_sample: Path, tmp_path: Path
) -> None:
    ddt = make_ddt(mlp_run, 0.2)
    assert (mlp_run / DDT_FILE).is_file()
    assert ddt.score == "Tbqq"
    assert DDTMap.load(mlp_run / DDT_FILE).thresholds.shape == ddt.thresholds.shape

    metrics = evaluate(mlp_run, n_boot=2).metrics.to_json()
    assert metrics["ddt"]["efficiency"] == 0.2
    assert 0.0 < metrics["ddt"]["background_eff"] < 0.5  # about x on the test split
    assert json.loads((mlp_run / "eval" / "metrics.json").read_text())["ddt"] == metrics["ddt"]

    export_run(mlp_run)
    model = load_onnx(mlp_run / "model.onnx")
    assert model.ddt is not None
    np.testing.assert_array_equal(model.ddt.thresholds, ddt.thresholds)

    (out,) = predict(
        mlp_run / "model.onnx", sorted(top_qcd_sample.glob("shards/*.parquet"))[:1],
        tmp_path / "pred", observers=["jet_pt"], progress=False,
    )  # fmt: skip
    table = pq.read_table(out)
    # predict carries the truth labels of the input beside the scores and the DDT score
    assert set(table.column_names) == {
        "score_QCD", "score_Tbqq", "ddt_score", "jet_pt", "label_QCD", "label_Tbqq"
    }  # fmt: skip
    source = pq.read_table(sorted(top_qcd_sample.glob("shards/*.parquet"))[0])
    for label in ("label_QCD", "label_Tbqq"):
        np.testing.assert_array_equal(table[label].to_numpy(), source[label].to_numpy())
    expected = ddt(
        table["score_Tbqq"].to_numpy(), source["jet_sdmass"].to_numpy(), source["jet_pt"].to_numpy()
    )
    np.testing.assert_allclose(table["ddt_score"].to_numpy(), expected, atol=1e-6)


def test_ddt_needs_a_sensible_efficiency(mlp_run: Path) -> None:
    with pytest.raises(ConfigError) as err:
        make_ddt(mlp_run, 1.5)
    assert err.value.key == "--efficiency"
    cli = [sys.executable, "-m", "heptagon", "ddt", str(mlp_run), "--efficiency", "0"]
    res = subprocess.run(cli, capture_output=True, text=True, check=False)
    assert res.returncode == 2
    assert "--efficiency" in res.stderr
