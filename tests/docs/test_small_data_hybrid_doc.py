"""docs/small-data.md, sections "A hybrid" (ParticleNet-Lite) and "A ParT-lite hybrid": their
commands run (through the CLI app, in this process) on the shared cached top-vs-QCD sample
(tests/conftest.py) as ``top-sample``, with the shipped config cut to 1 epoch; the run
reads the BDT's jet features beside the constituents, and the exported ONNX model takes
them as an input of its own."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from doc_pages import one_epoch_configs, run_section

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "small-data.md"

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
]


@pytest.mark.parametrize(
    ("heading", "config", "run", "particle_inputs"),
    [
        ("A hybrid", "top_particlenet_lite_hl.yaml", "pn-hl", ["pf_points", "pf_features"]),
        ("A ParT-lite hybrid", "top_part_lite_hl.yaml", "part-hl", ["pf_features", "pf_vectors"]),
    ],
)
def test_the_hybrid_commands_run(
    top_qcd_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    heading: str,
    config: str,
    run: str,
    particle_inputs: list[str],
) -> None:
    one_epoch_configs(tmp_path / "configs", config)
    (tmp_path / "top-sample").symlink_to(top_qcd_sample)
    monkeypatch.chdir(tmp_path)
    run_section(PAGE, heading, "train", "evaluate", "export")
    assert Path(f"runs/{run}/eval/metrics.json").exists()
    model = onnx.load(str(Path(f"runs/{run}/model.onnx")))
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs) == [*particle_inputs, "pf_mask", "jet_features"]
    jet_dims = inputs["jet_features"].type.tensor_type.shape.dim
    assert jet_dims[1].dim_value == 6  # m_SD, tau21, tau32, tau43, multiplicity, pT
