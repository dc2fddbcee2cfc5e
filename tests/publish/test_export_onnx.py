"""ONNX export: metadata round trip, parity with PyTorch (padding, single-particle jets,
batch 1 and 256) for every registered model, the BDT, and loud failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import Tensor, nn

from heptagon import __version__
from heptagon.data import DataConfig, JetDataset, Preprocess, compute_preprocess, load_config
from heptagon.errors import DataError, ExportError
from heptagon.models import available_models, build_model
from heptagon.publish.onnx import ExportReport, export_onnx, load_onnx

LENGTH = 32
CLASSES = ["QCD", "Tbqq"]
CONFIG: dict[str, Any] = {
    "inputs": {
        "pf_points": {"length": LENGTH, "vars": ["part_deta", "part_dphi"]},
        "pf_features": {
            "length": LENGTH,
            "vars": [
                {"name": "part_pt_log", "center": "auto", "scale": "auto"},
                {"name": "part_e_log", "center": "auto", "scale": "auto"},
                {"name": "part_logptrel", "center": "auto", "scale": "auto"},
                ["part_deltaR", 0.2, 4.0],
                "part_charge",
                "part_deta",
                "part_dphi",
            ],
        },
        "pf_vectors": {"length": LENGTH, "vars": ["part_px", "part_py", "part_pz", "part_energy"]},
        "jet_features": {
            "vars": [
                {"name": "jet_pt", "center": "auto", "scale": "auto"},
                {"name": "jet_sdmass", "center": "auto", "scale": "auto"},
                "jet_tau2",
                "jet_tau3",
            ]
        },
    },
    "labels": ["label_QCD", "label_Tbqq"],
}


@pytest.fixture(scope="module")
def config() -> DataConfig:
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def preprocess(top_qcd_sample: Path, config: DataConfig) -> Preprocess:
    return compute_preprocess(top_qcd_sample, config)


@pytest.fixture(scope="module")
def dims(preprocess: Preprocess) -> dict[str, int]:
    return {g: len(p.vars) for g, p in preprocess.inputs.items()} | {"pf_mask": 1}


@pytest.fixture(scope="module")
def batches(top_qcd_sample: Path, config: DataConfig, preprocess: Preprocess) -> list[Any]:
    dataset = JetDataset(top_qcd_sample, config, preprocess, split="test", shuffle=False)
    return [batch.tensors() for batch in dataset]


def export(model: Any, name: str, path: Path, **fixtures: Any) -> ExportReport:
    dims, preprocess = fixtures["dims"], fixtures["preprocess"]
    return export_onnx(
        model,
        model.input_names,
        {g: dims[g] for g in model.input_names},
        preprocess,
        fixtures.get("class_names", CLASSES),
        path,
        data_config=fixtures["config"],
        model_name=name,
        check_inputs=fixtures["batches"],
    )


def test_metadata_round_trip_and_parity_cases(
    tmp_path: Path, config: DataConfig, preprocess: Preprocess, dims: dict, batches: list
) -> None:
    torch.manual_seed(0)
    model = build_model("pfn", dims, 2).train()
    path = tmp_path / "model.onnx"
    report = export(
        model, "pfn", path, dims=dims, preprocess=preprocess, config=config,
        batches=batches,
    )  # fmt: skip
    assert model.training  # left as it was
    assert report.path == path
    assert report.opset == 17
    longest = max(b["pf_mask"].shape[2] for b in batches)
    assert set(report.max_abs_diff) == {
        f"batch256_len{longest}",
        f"batch256_len{longest + 16}",
        f"batch1_len{longest}",
        f"batch1_len{longest + 16}",
        "batch256_single_particle",
        "batch1_single_particle",
    }
    assert max(report.max_abs_diff.values()) <= 1e-5

    loaded = load_onnx(path)
    assert loaded.input_names == ("pf_features", "pf_mask")
    assert loaded.class_names == tuple(CLASSES)
    assert loaded.model_name == "pfn"
    assert loaded.heptagon_version == __version__
    assert loaded.input_dims == {"pf_features": 7, "pf_mask": 1}
    assert loaded.output_activation == "softmax"
    assert loaded.preprocess.to_dict() == preprocess.to_dict()
    assert loaded.data_config.model_dump() == config.model_dump()
    beside = json.loads((tmp_path / "preprocess.json").read_text())
    assert beside == preprocess.to_dict(loaded.input_names)  # the model's inputs, for CMSSW
    assert beside["input_names"] == ["pf_features", "pf_mask"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "preprocess.json"]

    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    session = ort.InferenceSession(path)
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes["pf_features"] == ["batch", 7, "pf_particles"]
    assert shapes["pf_mask"] == ["batch", 1, "pf_particles"]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("probs", ["batch", 2])]
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["preprocess"]) == beside  # the same file inside

    # probabilities: rows sum to one
    feed = {k: v.numpy() for k, v in batches[0].items() if k in loaded.input_names}
    (probs,) = session.run(["probs"], feed)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


#: group widths of CONFIG, to size the models at collection
_DIMS = {"pf_points": 2, "pf_features": 7, "pf_vectors": 4, "jet_features": 4, "pf_mask": 1}


def _registered() -> list[Any]:
    """Every registered name; a larger variant of a class with a smaller registered one
    (``part`` beside ``part-lite``) runs the same code paths and is marked slow."""
    sizes: dict[str, tuple[type, int]] = {}
    for name in available_models():
        if name == "mlpf":  # per-element outputs, exported by heptagon.apps.mlpf.run
            continue
        model = build_model(name, _DIMS, 2)
        n = sum(p.numel() for p in model.parameters()) if isinstance(model, nn.Module) else 0
        sizes[name] = (type(model), n)
    params = []
    for name, (cls, n) in sizes.items():
        marks = []
        if any(c is cls and m < n for c, m in sizes.values()):
            marks.append(pytest.mark.slow)
        params.append(pytest.param(name, marks=marks))
    return params


@pytest.mark.parametrize("name", _registered())
def test_parity_every_registered_torch_model(
    name: str,
    tmp_path: Path,
    config: DataConfig,
    preprocess: Preprocess,
    dims: dict,
    batches: list,
) -> None:
    torch.manual_seed(1)
    model = build_model(name, dims, 2)
    if not isinstance(model, nn.Module):
        pytest.skip(f"'{name}' is not a torch model (the BDT has its own test)")
    classes = CLASSES if model.num_classes == 2 else [f"out{i}" for i in range(model.num_classes)]
    report = export(
        model, name, tmp_path / "m.onnx", dims=dims, preprocess=preprocess, config=config,
        batches=batches, class_names=classes,
    )  # fmt: skip
    assert len(report.max_abs_diff) in (2, 6)  # flat inputs: no particle lengths
    assert max(report.max_abs_diff.values()) <= 1e-5


def test_bdt_export(
    tmp_path: Path,
    top_qcd_sample: Path,
    config: DataConfig,
    preprocess: Preprocess,
    dims: dict,
    batches: list,
) -> None:
    train = list(JetDataset(top_qcd_sample, config, preprocess, split="train", shuffle=False))
    x = np.concatenate([b.inputs["jet_features"].numpy() for b in train])
    y = np.concatenate([b.label.numpy() for b in train])
    bdt = build_model("bdt", dims, 2, n_estimators=20, n_jobs=1)
    bdt.fit({"jet_features": x}, y)
    path = tmp_path / "bdt.onnx"
    report = export(
        bdt, "bdt", path, dims=dims, preprocess=preprocess, config=config, batches=batches
    )
    assert set(report.max_abs_diff) == {"batch256", "batch1"}
    assert max(report.max_abs_diff.values()) <= 1e-5
    assert report.exporter.startswith("onnxmltools")
    loaded = load_onnx(path)
    assert loaded.input_names == ("jet_features",)
    session = loaded.session(threads=1)
    assert [o.name for o in session.get_outputs()] == ["probs"]
    features = np.concatenate([b["jet_features"].numpy() for b in batches])
    (probs,) = session.run(["probs"], {"jet_features": features})
    want = torch.softmax(torch.from_numpy(bdt.predict({"jet_features": features})), 1).numpy()
    np.testing.assert_allclose(probs, want, atol=1e-5)


class _Nan(nn.Module):
    """Spread of the real particles' first feature: NaN for a single-particle jet."""

    input_names = ("pf_features", "pf_mask")

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(1, 2)

    def forward(self, pf_features: Tensor, pf_mask: Tensor) -> Tensor:
        n = pf_mask.sum(dim=(1, 2))
        x = pf_features[:, 0] * pf_mask[:, 0]
        mean = x.sum(1) / n
        var = ((x - mean[:, None]) ** 2 * pf_mask[:, 0]).sum(1) / (n - 1)
        return self.out(var.sqrt().unsqueeze(1))


class _TraceConstant(nn.Module):
    """Bakes a value of the tracing input into the graph: ONNX differs on other inputs."""

    input_names = ("pf_features", "pf_mask")

    def forward(self, pf_features: Tensor, pf_mask: Tensor) -> Tensor:
        scale = float(pf_features[:, 0].sum())
        pooled = (pf_features * pf_mask).sum(2)[:, :2]
        return pooled * scale


def test_nan_for_a_single_particle_fails(
    tmp_path: Path, config: DataConfig, preprocess: Preprocess, dims: dict, batches: list
) -> None:
    path = tmp_path / "nan.onnx"
    with pytest.raises(ExportError, match=r"single_particle.*non-finite"):
        export(
            _Nan(), "nan", path, dims=dims, preprocess=preprocess, config=config, batches=batches
        )
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_parity_failure_names_the_case(
    tmp_path: Path, config: DataConfig, preprocess: Preprocess, dims: dict, batches: list
) -> None:
    with pytest.raises(ExportError, match=r"case 'batch256_len\d+'.*differ by up to"):
        export(
            _TraceConstant(), "bad", tmp_path / "bad.onnx", dims=dims, preprocess=preprocess,
            config=config, batches=[{k: v[:40] for k, v in b.items()} for b in batches],
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_export_needs_check_inputs(
    tmp_path: Path, config: DataConfig, preprocess: Preprocess, dims: dict
) -> None:
    with pytest.raises(ExportError, match="no check_inputs"):
        export(_Nan(), "x", tmp_path / "m.onnx", dims=dims, preprocess=preprocess, config=config,
               batches=[])  # fmt: skip


def test_load_onnx_rejects_other_files(tmp_path: Path) -> None:
    text = tmp_path / "model.onnx"
    text.write_text("this is not a model\n" * 20)
    with pytest.raises(DataError, match=r"model\.onnx: not an ONNX model"):
        load_onnx(text)
    with pytest.raises(DataError, match="model file not found"):
        load_onnx(tmp_path / "missing.onnx")
    # whatever its name says: a JSON file (onnx would parse it as JSON by its extension)
    other = tmp_path / "preprocess.json"
    other.write_text('{"format": "heptagon-preprocess"}')
    with pytest.raises(DataError, match=r"preprocess\.json: not an ONNX model"):
        load_onnx(other)
    plain = tmp_path / "plain.onnx"
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), plain)
    with pytest.raises(DataError, match="not a heptagon ONNX export"):
        load_onnx(plain)
