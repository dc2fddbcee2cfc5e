"""docs/anomaly.md runs: the workflow's bash block, in order, in a clean directory.

Every line is a ``heptagon`` command run in this process through the CLI app, as written,
except: the ``generate-events`` line is replaced by the cached tiny ``tth-analysis`` sample
(the ``event_sample`` fixture, linked as the documented ``--out``), training runs 1 epoch,
and ``trigger ad`` skips the hls4ml emulation (tests/apps/test_trigger_ad.py runs it).
The YAML block is checked to be the shipped experiment's training section."""

from __future__ import annotations

import shlex
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from doc_pages import fenced_blocks, run_command

from heptagon.artifacts.anomaly import TriggerAdFile
from heptagon.artifacts.metrics import AnomalyEvaluation, read_evaluation

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "anomaly.md"
CONFIGS = ROOT / "src" / "heptagon" / "configs"


def test_the_yaml_block_is_the_shipped_vae_experiment() -> None:
    (block,) = fenced_blocks(DOC.read_text(), "yaml")
    doc = yaml.safe_load(block)
    shipped = yaml.safe_load((CONFIGS / "ad_l1_vae.yaml").read_text())
    assert doc["model"] == shipped["model"]
    assert {k: shipped["train"][k] for k in doc["train"]} == doc["train"]


def test_the_workflow_runs(
    event_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(CONFIGS)
    (block,) = fenced_blocks(DOC.read_text(), "bash")
    lines = [line for line in block.splitlines() if line.strip()]
    for line in lines:
        args = shlex.split(line)[1:]
        if args[0] == "generate-events":
            (tmp_path / args[args.index("--out") + 1]).symlink_to(event_sample)
            continue
        if args[0] == "train":
            args += ["--set", "train.epochs=1", "--set", "train.progress=false"]
        if args[:2] == ["trigger", "ad"]:
            args += ["--qat-epochs", "1", "--no-emulation"]
        run_command(line, args)

    metrics = read_evaluation(tmp_path / "runs/ad-vae/eval/metrics.json")
    assert isinstance(metrics, AnomalyEvaluation)
    assert metrics.scores["kl"]["tth"].eff_at_rate.requested_rate_hz == 1e3
    report = TriggerAdFile.read(tmp_path / "runs/ad-vae/l1/ad.json")
    assert set(report.metrics.scores) == {"float", "fixed_point"}
    scored = pq.read_table(tmp_path / "scored" / "tth_0000.parquet")
    assert "score_anomaly_kl" in scored.column_names
    assert scored.num_rows > 0
