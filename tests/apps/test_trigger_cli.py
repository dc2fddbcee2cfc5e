"""``heptagon trigger features`` and ``heptagon trigger speed`` through the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import torch

from heptagon.apps.trigger.latency import onnx_bytes
from heptagon.models import build_model


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
