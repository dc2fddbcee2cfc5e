"""docs/workflows.md runs: each section's bash blocks (PNN, domain adaptation, weak
supervision), in order, from a clean directory on tiny samples.

Every line is a ``heptagon`` command, run in this process through the CLI app (globs are
left to the command, as a shell would pass a quoted ``name:glob``). The commands run as
written but with tiny generated samples (``--jets`` scaled down, see :data:`TINY`) and a
copy of ``configs/`` trained for 1 epoch. Then the derived columns the section promises are
checked on the files it made."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from doc_pages import bash_lines, one_epoch_configs, run_command, sections
from typer.testing import CliRunner

from heptagon.cli import app
from heptagon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "workflows.md"
#: the documented --jets -> the tiny ones the test generates
TINY = {"1500": "12", "30000": "40", "10000": "20", "4000": "20", "1000": "15", "3000": "15",
        "3500": "15", "1050": "12"}  # fmt: skip


def _tiny(line: str) -> list[str]:
    """The arguments of ``line`` with its ``--jets`` scaled down (:data:`TINY`)."""
    argv = shlex.split(line)
    return [TINY.get(a, a) if argv[i] == "--jets" else a for i, a in enumerate(argv[1:])]


def _table(directory: Path, pattern: str = "*.parquet") -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted(directory.glob(pattern))])


def _workflow(title: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one_epoch_configs(tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    lines = bash_lines(sections(DOC)[title])
    assert lines, f"no commands in the section {title!r}"
    for line in lines:
        run_command(line, _tiny(line))


def test_the_sections_are_there() -> None:
    found = {title: bash_lines(body) for title, body in sections(DOC).items()}
    assert len(found) == 3
    text = " ".join(" ".join(lines) for lines in found.values())
    for command in ("data pnn", "data domains", "data mix", "--pnn-mass 100", "--labelled-target"):
        assert command in text
    for config in ("pnn_xbb", "pnn_xbb_plain", "da_w_jet", "ws_cwola", "ws_llp", "ws_qg"):
        assert f"configs/{config}.yaml" in text


def test_pnn_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _workflow("Parameterised network (PNN): interpolating to a mass not trained on",
              tmp_path, monkeypatch)  # fmt: skip
    train = _table(tmp_path / "pnn-train" / "shards")
    signal = train["label_Xbb"].to_numpy(zero_copy_only=False)
    mass = train["pnn_mass"].to_numpy()
    assert set(mass[signal]) == {60.0, 80.0, 120.0, 140.0}
    assert set(mass[~signal]) <= {60.0, 80.0, 120.0, 140.0}
    derived = tmp_path / "runs" / "pnn" / "eval" / "pnn-m100"
    test = _table(derived / "shards")  # evaluate --pnn-mass derived it
    assert np.all(test["pnn_mass"].to_numpy() == 100.0)
    signal = test["label_Xbb"].to_numpy(zero_copy_only=False)
    assert signal.any()
    assert (~signal).any()
    assert '"at": 100' in (derived / "derived.json").read_text()
    for run in ("pnn", "plain", "dedicated"):
        metrics = (tmp_path / "runs" / run / "eval" / "metrics.json").read_text()
        assert '"pnn-m100"' in metrics
    # the dedicated network trains at the held-out mass alone
    dedicated = _table(tmp_path / "dedicated-train" / "shards")
    signal = dedicated["label_Xbb"].to_numpy(zero_copy_only=False)
    assert signal.any()
    assert np.all(dedicated["pnn_mass"].to_numpy() == 100.0)
    # --pnn-mass refuses a network without the parameter and a missing background sample
    for argv, message in (
        (["runs/plain", "--pnn-mass", "100", "--data", "xbb", "--data", "qcd-test"], "pnn_mass"),
        (["runs/pnn", "--pnn-mass", "100", "--data", "xbb"], "BACKGROUND"),
        (["runs/pnn", "--pnn-mass", "90", "--data", "xbb", "--data", "qcd-test"], "m = 90"),
    ):
        result = CliRunner().invoke(app, ["evaluate", *argv])
        assert isinstance(result.exception, ConfigError), result.output
        assert message in str(result.exception)


def test_domain_adaptation_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _workflow("Domain adaptation: hadron level to detector level", tmp_path, monkeypatch)
    shards = tmp_path / "da-train" / "shards"
    assert np.all(_table(shards, "source_*")["domain"].to_numpy() == 0)
    assert np.all(_table(shards, "target_*")["train_weight"].to_numpy() == 0)
    for run in ("da", "source-only"):
        metrics = (tmp_path / "runs" / run / "eval" / "metrics.json").read_text()
        assert '"target"' in metrics
        assert '"source"' in metrics


def test_weak_supervision_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _workflow("Weak supervision: CWoLa and learning from label proportions", tmp_path,
              monkeypatch)  # fmt: skip
    mixed = _table(tmp_path / "ws-mixed" / "shards")
    m1 = mixed["label_M1"].to_numpy(zero_copy_only=False)
    w = mixed["label_Wqq"].to_numpy(zero_copy_only=False)
    n = int(m1.sum())
    assert w[m1].sum() == round(0.7 * n)
    assert w[~m1].sum() == round(0.3 * n)
    for run in ("cwola", "llp", "qg-cwola"):
        assert (tmp_path / "runs" / run / "eval" / "metrics.json").exists()
    truth = _table(tmp_path / "qg-truth" / "shards")
    quark = np.abs(truth["jet_parton_id"].to_numpy()) != 21
    assert np.array_equal(truth["label_M1"].to_numpy(zero_copy_only=False), quark)
    assert quark.sum() == (~quark).sum()
