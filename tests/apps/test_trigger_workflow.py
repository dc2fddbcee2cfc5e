"""``heptagon trigger train | hls | topup`` through the CLI on the tiny top-vs-QCD sample,
and the commands of docs/trigger.md and README.md from a clean directory."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from doc_pages import bash_lines, run_command
from typer.testing import CliRunner

from heptagon.apps.trigger.compression import FixedPoint
from heptagon.apps.trigger.hls import compiler_available
from heptagon.apps.trigger.workflow import load_trigger_run, parse_fixed
from heptagon.artifacts.trigger import TriggerHlsFile, TriggerRunFile
from heptagon.cli import app
from heptagon.errors import ConfigError, HeptagonError, first_line

ROOT = Path(__file__).resolve().parents[2]
needs_gpp = pytest.mark.skipif(not compiler_available(), reason="no g++: hls4ml cannot compile")
QAT = [
    "--precision", "ap_fixed<8,2>", "--result-precision", "ap_fixed<8,3>",
    "--input-precision", "ap_fixed<16,6>", "--layer-precision", "net.6:result=ap_fixed<16,6>",
    "--layer-precision", "net.0:weight=ap_fixed<6,1>",
]  # fmt: skip


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}\n{result.output}\n{result.exception!r}"
    return result.output


def fails(*args: str) -> str:
    """The user error the command raises (heptagon.cli.main prints it on one line, exit 2)."""
    result = CliRunner().invoke(app, list(args))
    assert isinstance(result.exception, HeptagonError), result.output
    return first_line(result.exception)


@pytest.fixture(scope="module")
def features(top_qcd_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hlf") / "hlf.parquet"
    cli("trigger", "features", str(top_qcd_sample), "--out", str(out))
    return out


@pytest.fixture(scope="module")
def later(features: Path) -> Path:
    """The same jets seen by a 'changed detector': every feature scaled by 1.2."""
    table = ak.from_parquet(features)
    cols = {f: np.asarray(table[f]) for f in table.fields}
    cols = {f: (v * np.float32(1.2) if f.startswith("hlf_") else v) for f, v in cols.items()}
    out = features.with_name("hlf-later.parquet")
    ak.to_parquet(ak.zip(cols), out)
    return out


@pytest.fixture(scope="module")
def qat_run(features: Path) -> Path:
    out = features.parent / "qat"
    text = cli("trigger", "train", str(features), "--out", str(out), *QAT, "--prune-to", "0.5",
               "--epochs", "4")  # fmt: skip
    assert re.search(r"float: +test accuracy 0\.\d+", text)
    assert re.search(r"quantised: test accuracy 0\.\d+, AUC 0\.\d+, 50\.\d% of the weights", text)
    return out


def test_parse_fixed() -> None:
    assert parse_fixed("ap_fixed<8, 3>") == FixedPoint(8, 3)
    with pytest.raises(ConfigError, match="ap_fixed"):
        parse_fixed("ap_ufixed<8,3>")
    with pytest.raises(ConfigError, match="W <= 32"):
        parse_fixed("ap_fixed<40,3>")


def test_qat_run_weights_are_in_their_declared_types(qat_run: Path) -> None:
    run = TriggerRunFile.read(qat_run / "trigger.json")
    assert sorted(run.classes) == ["label_QCD", "label_Tbqq"]
    assert len(run.features) == 16
    assert run.layers["net.0"].weight == "ap_fixed<6,1>"
    assert run.layers["net.0"].input == "ap_fixed<16,6>"
    assert run.layers["net.2"].result == "ap_fixed<8,3>"
    assert run.layers["net.6"].result == "ap_fixed<16,6>"
    assert run.layers["net.6"].weight == "ap_fixed<8,2>"
    stages = [h["stage"] for h in run.history]
    assert stages.count("float") == 4
    assert stages.count("prune") == 3
    assert "qat" in stages
    state = torch.load(qat_run / "weights.pt", weights_only=True)
    for name, types in run.layers.items():
        for part in ("weight", "bias"):
            t = parse_fixed(getattr(types, part))
            v = state[f"{name}.{part}"].double()
            steps = v / t.step
            assert torch.equal(steps, steps.round()), f"{name}.{part} off the ap_fixed grid"
            assert t.low <= float(v.min())
            assert float(v.max()) <= t.high
    # the run reloads as a fixed-point network
    _, model, _ = load_trigger_run(qat_run)
    assert isinstance(model.get_submodule("net.0").precision.weight, FixedPoint)


def test_pruned_fraction_is_the_target(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned"
    cli("trigger", "train", str(features), "--out", str(out), "--prune-to", "0.7",
        "--prune-steps", "2", "--epochs", "2", "--hidden", "16,8")  # fmt: skip
    state = torch.load(out / "weights.pt", weights_only=True)
    for name in ("net.0", "net.2", "net.4"):
        w = state[f"{name}.weight"]
        assert int((w == 0).sum()) == round(0.7 * w.numel()), name
    run = TriggerRunFile.read(out / "trigger.json")
    assert run.layers == {}  # a float run
    assert run.float_scores is not None


def test_train_errors_are_one_line(features: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "r")
    assert "ap_fixed<W,I>" in fails("trigger", "train", str(features), "--out", out,
                                    "--precision", "int8")  # fmt: skip
    text = fails("trigger", "train", str(features), "--out", out, "--precision",
                 "ap_fixed<8,2>", "--layer-precision", "fc1=ap_fixed<8,3>")  # fmt: skip
    assert "net.0" in text
    assert "no such" in fails("trigger", "train", str(tmp_path / "none.parquet"), "--out", out)
    labels_only = tmp_path / "labels.parquet"
    ak.to_parquet(ak.zip({"label_a": np.ones(3, bool), "label_b": np.zeros(3, bool)}), labels_only)
    assert "hlf_*" in fails("trigger", "train", str(labels_only), "--out", out)
    assert not (tmp_path / "r").exists()
    res = subprocess.run(
        [sys.executable, "-m", "heptagon", "trigger", "train", str(features), "--out", out,
         "--precision", "ap_fixed<8,9>"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1
    assert "I <= W" in res.stderr


@needs_gpp
def test_hls_emulation_is_bit_exact(qat_run: Path, tmp_path: Path) -> None:
    text = cli("trigger", "hls", str(qat_run), "--out", str(tmp_path / "hls"))
    assert "bit-exact: yes" in text
    report = TriggerHlsFile.read(tmp_path / "hls" / "hls.json")
    c = report.comparison
    assert c.bit_exact
    assert c.max_abs_logit_diff == 0.0
    assert c.argmax_agreement == 1.0
    assert c.accuracy_emulated == c.accuracy_torch
    assert c.lsb == 2.0**-10  # the last layer's result: ap_fixed<16,6>
    assert report.hls4ml_resources is None
    assert "Vitis HLS" in report.hls4ml_resources_note
    zeros = [r.multiplications for r in report.resources]
    assert zeros[1] == 32 * 64 // 2  # half the weights pruned: half the multiplications


def test_topup_with_ewc_and_replay(qat_run: Path, later: Path, tmp_path: Path) -> None:
    out = tmp_path / "later"
    text = cli("trigger", "topup", str(qat_run), str(later), "--out", str(out), "--ewc", "100",
               "--replay", "120", "--epochs", "3")  # fmt: skip
    assert "hlf: test accuracy" in text
    assert "hlf-later: test accuracy" in text
    run = TriggerRunFile.read(out / "trigger.json")
    assert [c.strategy for c in run.conditions] == ["train", "ewc+replay"]
    assert set(run.scores) == {"hlf", "hlf-later"}
    assert run.scores["hlf-later"].jets == 300
    assert run.sparsity >= 0.5  # pruned weights stay pruned
    before = TriggerRunFile.read(qat_run / "trigger.json")
    assert run.layers == before.layers
    state = torch.load(out / "continual.pt", weights_only=True)
    # the memory: an equal share of the 120 per condition (train split of 360, top-up 300)
    assert [len(state["replay"][f"y{i}"]) for i in range(2)] == [60, 60]
    assert "fisher.net.0.weight" in state["ewc"]
    assert "anchor.net.6.bias" in state["ewc"]
    # a second top-up chains: three conditions scored
    cli("trigger", "topup", str(out), str(later), "--out", str(tmp_path / "again"),
        "--epochs", "1")  # fmt: skip
    again = TriggerRunFile.read(tmp_path / "again" / "trigger.json")
    assert len(again.conditions) == 3
    assert again.conditions[-1].strategy == "finetune"
    assert "already holds" in fails("trigger", "topup", str(qat_run), str(later), "--out",
                                    str(out))  # fmt: skip


def _doc_lines(text: str, prefix: str) -> list[str]:
    lines = [line.split("   #")[0].strip() for line in bash_lines(text)]
    return [line for line in lines if line.startswith(prefix)]


@needs_gpp
def test_docs_and_readme_commands_run(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/trigger.md's block (``--epochs 30`` as written), then README's trigger train /
    topup lines (its hls line is the docs' own), in a clean directory; ``data/top-later`` is
    a copy of the sample (the command runs; its forgetting is not what is tested here)."""
    (tmp_path / "data").mkdir()
    shutil.copytree(top_qcd_sample, tmp_path / "data" / "top")
    shutil.copytree(top_qcd_sample, tmp_path / "data" / "top-later")
    monkeypatch.chdir(tmp_path)
    doc = _doc_lines((ROOT / "docs" / "trigger.md").read_text(), "heptagon trigger")
    assert len(doc) == 6
    for line in doc:
        run_command(line)
    hls = json.loads((tmp_path / "hls" / "l1" / "hls.json").read_text())
    assert hls["comparison"]["bit_exact"]
    readme = _doc_lines((ROOT / "README.md").read_text(), "heptagon trigger ")
    readme = [line for line in readme if line.split()[2] in ("train", "hls", "topup")]
    assert len(readme) == 3
    shutil.rmtree(tmp_path / "runs")
    for line in readme:
        if " hls " in line and line in doc:  # the same conversion, run above (slow)
            continue
        run_command(line)
    assert (tmp_path / "runs" / "l1-later" / "trigger.json").exists()
