"""A PFN trained on nothing (its scores only need to be reproducible), exported to ONNX
with a data config that has a selection, and the torch model to compare with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from heptagon.data import DataConfig, JetDataset, Preprocess, compute_preprocess, load_config
from heptagon.models import build_model
from heptagon.publish.onnx import export_onnx

LENGTH = 32
CONFIG: dict[str, Any] = {
    "selection": "jet_pt > 600",  # training cut: predict still scores every entry
    "inputs": {
        "pf_features": {
            "length": LENGTH,
            "vars": [
                {"name": "part_pt_log", "center": "auto", "scale": "auto"},
                {"name": "part_logerel", "center": "auto", "scale": "auto"},
                "part_deta",
                "part_dphi",
                "part_charge",
            ],
        },
    },
    "labels": ["label_QCD", "label_Tbqq"],
    "observers": ["jet_sdmass"],
}


@pytest.fixture(scope="session")
def infer_config() -> DataConfig:
    return load_config(CONFIG)


@pytest.fixture(scope="session")
def infer_preprocess(top_qcd_sample: Path, infer_config: DataConfig) -> Preprocess:
    return compute_preprocess(top_qcd_sample, infer_config)


@pytest.fixture(scope="session")
def torch_model(infer_preprocess: Preprocess) -> nn.Module:
    torch.manual_seed(3)
    return build_model("pfn", {"pf_features": 5, "pf_mask": 1}, 2).eval()


@pytest.fixture(scope="session")
def onnx_model(
    tmp_path_factory: pytest.TempPathFactory,
    top_qcd_sample: Path,
    infer_config: DataConfig,
    infer_preprocess: Preprocess,
    torch_model: nn.Module,
) -> Path:
    batches = JetDataset(top_qcd_sample, infer_config, infer_preprocess, split="test")
    path = tmp_path_factory.mktemp("bundle") / "model.onnx"
    export_onnx(
        torch_model,
        torch_model.input_names,
        {"pf_features": 5, "pf_mask": 1},
        infer_preprocess,
        ["QCD", "Tbqq"],
        path,
        data_config=infer_config,
        model_name="pfn",
        check_inputs=[batch.tensors() for batch in batches],
    )
    return path
