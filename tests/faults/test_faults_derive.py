"""Fault injection: ``heptagon data pnn | domains | mix`` on bad inputs and outputs. Each
case: exit 2, one line naming the culprit, no traceback, nothing half-written, the inputs
untouched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from faults_helpers import assert_user_error, no_temp_files, run_main, tree


def test_unwritable_out(
    top_qcd_sample: Path,
    unwritable_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["data", "domains", str(top_qcd_sample), str(top_qcd_sample)]
    res = run_main(monkeypatch, capsys, *args, "--out", str(unwritable_dir))
    assert_user_error(res, str(unwritable_dir.parent))
    no_temp_files(unwritable_dir.parent.parent)
    res = run_main(monkeypatch, capsys, *args, "--out", str(unwritable_dir.parent))
    assert_user_error(res, str(unwritable_dir.parent), "is a file")


def test_not_a_dataset_and_corrupt_shard(
    top_qcd_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loose = tmp_path / "loose"
    shutil.copytree(top_qcd_sample / "shards", loose / "shards")
    out = str(tmp_path / "out")
    res = run_main(monkeypatch, capsys, "data", "domains", str(loose), str(top_qcd_sample),
                   "--out", out)  # fmt: skip
    assert_user_error(res, str(loose), "not a dataset dir")
    copy = tmp_path / "copy"
    shutil.copytree(top_qcd_sample, copy)
    bad = copy / "shards" / "QCD_0000.parquet"
    bad.write_bytes(b"not parquet")
    before = tree(copy)
    res = run_main(monkeypatch, capsys, "data", "mix", str(copy), "--signal", "label_Tbqq",
                   "--fractions", "0.8", "0.2", "--out", out)  # fmt: skip
    assert_user_error(res, str(bad), "unreadable Parquet shard")
    assert tree(copy) == before
    assert not (tmp_path / "out").exists()
    no_temp_files(tmp_path)


def test_pnn_needs_a_mass_scan(
    top_qcd_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    res = run_main(monkeypatch, capsys, "data", "pnn", str(top_qcd_sample), str(top_qcd_sample),
                   "--out", str(tmp_path / "pnn"))  # fmt: skip
    assert_user_error(res, str(top_qcd_sample / "manifest.json"), "no class with a resonance mass")
    assert not (tmp_path / "pnn").exists()
