"""The command line: stages listed, versions, data inspect, one-line errors with exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def heptagon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heptagon", *args], capture_output=True, text=True, check=False
    )


def test_help_lists_the_stages() -> None:
    res = heptagon("--help")
    assert res.returncode == 0
    for stage in ("generate", "data", "info"):
        assert stage in res.stdout


def test_info_prints_versions() -> None:
    import pythia8mc  # noqa: F401  (installed: its version must be shown)

    res = heptagon("info")
    assert res.returncode == 0
    assert "8.317.2" in res.stdout
    for pkg in ("fastjet", "torch", "onnxruntime", "uproot", "awkward"):
        assert pkg in res.stdout


def test_data_inspect_on_a_generated_sample(top_qcd_sample: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "data.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "inputs": {
                    "pf_features": {"length": 64, "vars": ["part_deta", "part_pt_log"]},
                    "jet_features": {"vars": ["jet_sdmass"]},
                },
                "labels": ["label_Tbqq", "label_QCD"],
            }
        )
    )
    res = heptagon(
        "data",
        "inspect",
        str(top_qcd_sample),
        "--config",
        str(cfg),
        "--plots",
        str(tmp_path / "plots"),
    )
    assert res.returncode == 0, res.stderr
    assert "jet_sdmass" in res.stdout
    assert "Tbqq" in res.stdout
    assert (tmp_path / "plots" / "jet_features.jet_sdmass.png").stat().st_size > 1000


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    res = heptagon("data", "inspect", str(tmp_path), "--config", str(tmp_path / "missing.yaml"))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "missing.yaml" in res.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    res = heptagon(
        "--debug", "data", "inspect", str(tmp_path), "--config", str(tmp_path / "missing.yaml")
    )
    assert res.returncode == 1
    assert "Traceback" in res.stderr
