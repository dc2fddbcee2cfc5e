"""``heptagon trigger features`` and ``heptagon trigger speed`` through the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import onnx
import pytest
import torch

from heptagon.apps.trigger.latency import measure_speed, onnx_bytes, speed_file
from heptagon.errors import ConfigError, DataError
from heptagon.models import build_model
from heptagon.publish.bundle import export_run
from heptagon.train.run import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def heptagon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heptagon", *args], capture_output=True, text=True, check=False
    )


def test_features_of_a_generated_sample(top_qcd_sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "hlf.parquet"
    res = heptagon("trigger", "features", str(top_qcd_sample), "--out", str(out))
    assert res.returncode == 0, res.stderr
    table = ak.from_parquet(out)
    assert len(table) == 600
    assert {"hlf_mass_mmdt", "hlf_multiplicity", "label_Tbqq", "label_QCD"} <= set(table.fields)
    top = np.asarray(table.label_Tbqq)
    mass = np.asarray(table.hlf_mass_mmdt)
    # the groomed mass finds the top (~173 GeV); QCD jets are mostly light
    assert 120 < np.median(mass[top]) < 200
    assert np.median(mass[~top]) < 100
    n = np.asarray(table.hlf_multiplicity)
    assert np.mean(n[top]) > np.mean(n[~top])  # three prongs radiate more than one
    res = heptagon("trigger", "features", str(tmp_path / "nothing"), "--out", str(out))
    assert res.returncode == 2
    assert "nothing" in res.stderr


def test_speed_of_an_onnx_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("mlp", {"jet_features": 16}, 5)
    path = tmp_path / "mlp.onnx"
    path.write_bytes(onnx_bytes(model, {"jet_features": np.zeros((1, 16), np.float32)}))
    res = heptagon("trigger", "speed", str(path), "--batch", "256", "--repeats", "100")
    assert res.returncode == 0, res.stderr
    assert "fp32" in res.stdout
    assert "int8" in res.stdout
    assert "measured" in res.stdout


def test_speed_of_particlenet_lite_and_bdt_exports(top_qcd_sample: Path, tmp_path: Path) -> None:
    """Every model ``export`` writes is timed in fp32 and int8: ParticleNet's kNN and the
    BDT's tree ensemble defeat ONNX Runtime's symbolic shape inference."""
    torch.manual_seed(0)
    pn = build_model(
        "particlenet-lite",
        {"pf_points": 2, "pf_features": 5, "pf_mask": 1},
        2,
        conv_params=[[4, [16, 16]]],
        fc_params=[[32, 0.1]],
    )
    sample = {
        "pf_points": np.random.default_rng(0).normal(size=(1, 2, 16)).astype(np.float32),
        "pf_features": np.random.default_rng(1).normal(size=(1, 5, 16)).astype(np.float32),
        "pf_mask": np.ones((1, 1, 16), np.float32),
    }
    (tmp_path / "pn.onnx").write_bytes(onnx_bytes(pn.eval(), sample))
    train(
        CONFIGS / "top_bdt.yaml",
        top_qcd_sample,
        tmp_path / "bdt",
        overrides=["train.progress=false", "model.options.n_estimators=20"],
    )
    export_run(tmp_path / "bdt")
    for model in (tmp_path / "pn.onnx", tmp_path / "bdt" / "model.onnx"):
        res = heptagon("trigger", "speed", str(model), "--batch", "32", "--repeats", "20")
        assert res.returncode == 0, res.stderr
        assert "int8" in res.stdout
        assert res.stderr == ""  # nor the quantiser's warnings


def test_speed_rejects_what_it_cannot_time(tmp_path: Path) -> None:
    model = build_model("mlp", {"jet_features": 16}, 5)
    fixed = onnx.load_from_string(
        onnx_bytes(model, {"jet_features": np.zeros((1, 16), np.float32)})
    )
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "fixed.onnx"
    path.write_bytes(fixed.SerializeToString())
    with pytest.raises(DataError, match="fixed batch axis"):
        speed_file(path, batch=8, particles=4)
    with pytest.raises(ConfigError, match="batch: must be at least 1"):
        speed_file(path, batch=0, particles=4)
    with pytest.raises(ConfigError, match="batch: must be at least 1"):
        measure_speed(b"", {"jet_features": np.zeros((0, 16), np.float32)})
