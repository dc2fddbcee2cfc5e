"""The model card renders every section from the run's artifacts."""

from __future__ import annotations

from pathlib import Path

from heptagon.artifacts.manifest import JetManifest, load_manifest
from heptagon.artifacts.metrics import BinaryMetrics
from heptagon.artifacts.run import ModelInfo
from heptagon.data.preprocess import GroupParams, Preprocess, VarParams
from heptagon.publish.card import render_model_card

PREPROCESS = Preprocess(
    {
        "pf_points": GroupParams(
            128,
            "constant",
            True,
            (
                VarParams("part_deta", 0.0, 1.0, None, 0.0),
                VarParams("part_dphi", 0.0, 1.0, None, 0.0),
            ),
        ),
        "pf_features": GroupParams(
            128,
            "constant",
            True,
            (
                VarParams("part_deta", 0.0, 10.0, (-5, 5), 0.0),
                VarParams("part_pt_log", 1.7, 0.7, None, 0.0),
            ),
        ),
        "jet_features": GroupParams(
            None, "constant", False, (VarParams("jet_sdmass", 80.0, 0.02, None, 0.0),)
        ),
    }
).to_dict(["pf_points", "pf_features", "pf_mask", "jet_features"])
METRICS = BinaryMetrics.model_validate(
    {
        "signal": "Tbqq",
        "n_signal": {"raw": 40, "weighted": 40.0},
        "n_background": {"raw": 50, "weighted": 50.0},
        "auc": {"value": 0.9812, "err": 0.0011},
        "accuracy": {"value": 0.93, "err": 0.004},
        "rejection_at_eff": {
            "0.3": {"value": None, "err": None, "lower_limit": 912.0},
            "0.5": {"value": 250.0, "err": 12.0, "lower_limit": 220.0},
        },
        "eff_at_mistag": {"0.01": {"value": 0.61, "err": 0.01}},
        "jsd_inverse_at_eff": {"0.5": {"value": 8.1, "err": 0.5}},
    }
)
MODEL = ModelInfo(
    name="particlenet-lite",
    options={"k": 7},
    input_dims={"pf_points": 2, "pf_features": 2, "pf_mask": 1},
    num_classes=2,
    class_names=["Tbqq", "QCD"],
    input_names=["pf_points", "pf_features", "pf_mask"],
    task="classification",
    weights="checkpoints/best.pt",
)


def test_model_card(top_qcd_sample: Path) -> None:
    manifest = load_manifest(top_qcd_sample)
    assert isinstance(manifest, JetManifest)
    text = render_model_card(
        model_info=MODEL,
        preprocess=PREPROCESS,
        metrics=METRICS,
        manifest=manifest,
        onnx_name="model.onnx",
        n_train="420 training jets",
        versions={"heptagon": "0.1.0", "torch": "2.13.0"},
    )
    for section in (
        "Model details",
        "Inputs and pre-processing",
        "Training data",
        "Performance",
        "Working points",
        "Intended use",
        "Out of scope",
        "Limitations",
        "How to run it",
    ):
        assert f"## {section}" in text
    assert "| `pf_features` | `part_deta` | 0 | 10 | [-5, 5] | 128 |" in text
    assert "| `jet_features` | `jet_sdmass` | 80 | 0.02 | - | (per jet) |" in text
    assert "0.9812 +- 0.0011" in text
    assert "> 912" in text  # no background passed: the lower limit is quoted
    assert "MPI off" in text
    assert "R = 0.8" in text
    assert f"{manifest.classes['Tbqq'].sigma_gen_pb:.4g}" in text
    assert '"pf_mask": x["pf_mask"]' in text
    assert "`pf_features` (batch, 2, n_particles)" in text
    assert "`pf_mask` (batch, 1, n_particles)" in text
