"""docs/small-data.md, section "A hybrid": its commands run (through the CLI app, in this
process) on the shared cached top-vs-QCD sample (tests/conftest.py) as ``top-sample``, with
the shipped config cut to 1 epoch; the run reads the BDT's jet features beside the
constituents, and the exported ONNX model takes them as an input of its own."""

from __future__ import annotations

import shlex
from pathlib import Path

import onnx
import pytest
from doc_pages import bash_lines, one_epoch_configs, run_command, section

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "small-data.md"

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
]


def test_the_hybrid_commands_run(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_epoch_configs(tmp_path / "configs", "top_particlenet_lite_hl.yaml")
    (tmp_path / "top-sample").symlink_to(top_qcd_sample)
    monkeypatch.chdir(tmp_path)
    lines = bash_lines(section(PAGE, "A hybrid"))
    assert [shlex.split(line)[1] for line in lines] == ["train", "evaluate", "export"]
    for line in lines:
        run_command(line)
    assert Path("runs/pn-hl/eval/metrics.json").exists()
    model = onnx.load(str(Path("runs/pn-hl/model.onnx")))
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs) == ["pf_points", "pf_features", "pf_mask", "jet_features"]
    jet_dims = inputs["jet_features"].type.tensor_type.shape.dim
    assert jet_dims[1].dim_value == 6  # m_SD, tau21, tau32, tau43, multiplicity, pT


def test_the_part_hybrid_commands_run(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_epoch_configs(tmp_path / "configs", "top_part_lite_hl.yaml")
    (tmp_path / "top-sample").symlink_to(top_qcd_sample)
    monkeypatch.chdir(tmp_path)
    lines = bash_lines(section(PAGE, "A ParT-lite hybrid"))
    assert [shlex.split(line)[1] for line in lines] == ["train", "evaluate", "export"]
    for line in lines:
        run_command(line)
    assert Path("runs/part-hl/eval/metrics.json").exists()
    model = onnx.load(str(Path("runs/part-hl/model.onnx")))
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs) == ["pf_features", "pf_vectors", "pf_mask", "jet_features"]
    assert inputs["jet_features"].type.tensor_type.shape.dim[1].dim_value == 6
