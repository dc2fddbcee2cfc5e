"""The main job end to end, at a tiny size."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import yaml
from rich.console import Console

from heptagon.apps.demo import NETWORK_NOTE, run_demo, versus_bdt
from heptagon.artifacts.metrics import Evaluation, Measured


def test_demo_end_to_end_and_resume(tmp_path: Path) -> None:
    quiet = Console(quiet=True)
    result = run_demo(tmp_path, jets=120, show_progress=False, console=quiet)
    assert set(result.metrics) == {"bdt", "particlenet_lite"}
    for metrics in result.metrics.values():
        assert metrics.signal == "Tbqq"
        assert metrics.auc.value is not None
        assert 0.5 < metrics.auc.value <= 1.0
    # the summary says whether the network beats the BDT, from the two runs' numbers
    assert result.table().caption == f"{versus_bdt(result.metrics)}\n{NETWORK_NOTE}"
    assert "particlenet_lite" in versus_bdt(result.metrics)
    # the network is the hybrid: its run reads the BDT's jet features too
    config = yaml.safe_load((result.runs["particlenet_lite"] / "config.yaml").read_text())
    assert config["model"]["options"]["use_jet_features"] is True
    assert "jet_sdmass" in str(config["data"]["inputs"]["jet_features"])
    check_verdicts(result.metrics)
    assert (result.bundle / "MODEL_CARD.md").exists()
    assert (result.bundle / "hepdata" / "submission.yaml").exists()
    assert (tmp_path / "compare" / "compare.md").exists()
    # predict ran with the bundle on the fresh sample: one row per jet, both classes scored
    assert len(result.predictions) == 4
    rows = sum(pq.read_metadata(p).num_rows for p in result.predictions)
    assert rows == 2 * 50  # a tenth of the sample, at least 50 per class
    assert {"score_QCD", "score_Tbqq", "jet_pt"} <= set(pq.read_schema(result.predictions[0]).names)
    # re-running resumes: the trained runs are kept
    before = (result.runs["particlenet_lite"] / "checkpoints" / "best.pt").stat().st_mtime_ns
    again = run_demo(tmp_path, jets=120, show_progress=False, console=quiet)
    after = (again.runs["particlenet_lite"] / "checkpoints" / "best.pt").stat().st_mtime_ns
    assert before == after
    assert again.metrics["bdt"].auc == result.metrics["bdt"].auc


def check_verdicts(metrics: dict[str, Evaluation]) -> None:
    """The verdict follows the AUC difference and its error, not a fixed text."""

    def with_aucs(net: float, bdt: float) -> dict[str, Evaluation]:
        return {
            "particlenet_lite": metrics["particlenet_lite"].model_copy(
                update={"auc": Measured(value=net, err=0.003)}
            ),
            "bdt": metrics["bdt"].model_copy(update={"auc": Measured(value=bdt, err=0.004)}),
        }

    # error of the difference: 0.005
    assert versus_bdt(with_aucs(0.985, 0.970)).startswith(
        "particlenet_lite beats the BDT: AUC +0.0150 +- 0.0050"
    )
    assert "the BDT is better" in versus_bdt(with_aucs(0.955, 0.970))
    assert "within 2 errors" in versus_bdt(with_aucs(0.975, 0.970))
