"""docs/analysis-tutorial.md runs top to bottom: its bash and Python blocks, in order, on a
tiny sample.

The blocks run in a scratch directory holding a copy of ``configs/`` with two changes for
the tiny size: 1 epoch, and the loose region relaxed to >= 1 jet (a few hundred events have
almost no Drell-Yan event with 4 jets, and the multi-class evaluation needs every class in
the test split). The generation command runs as written but with 10 events per process
(no MPI) into a side directory; the training steps read the shared cached event sample
(tests/conftest.py ``event_sample``, 300 events per process) as ``analysis-sample``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "analysis-tutorial.md"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(TUTORIAL.read_text())]


def test_the_tutorial_has_cli_and_python_blocks() -> None:
    kinds = [k for k, _ in blocks()]
    assert kinds.count("bash") >= 5
    assert "python" in kinds
    text = " ".join(code for _, code in blocks())
    for config in ("analysis_bdt", "analysis_dnn", "analysis_dnn_multiclass"):
        assert f"configs/{config}.yaml" in text
    for config in ("analysis_higgs_pt_mlp", "analysis_higgs_pt_cnn"):
        assert f"configs/{config}.yaml" in text


def _tiny_configs(dest: Path) -> None:
    shutil.copytree(ROOT / "configs", dest)
    for path in (dest / "data").glob("analysis_*.yaml"):
        text = path.read_text().replace("region_loose", "(n_jets >= 1)")
        path.write_text(text)
    for path in dest.glob("analysis_*.yaml"):
        text = re.sub(r"epochs: \d+", "epochs: 1", path.read_text())
        path.write_text(text)


@pytest.mark.slow  # ~130 s on 2 loaded cores (training dominates), over the default budget
def test_the_tutorial_runs(event_sample: Path, tmp_path: Path) -> None:
    _tiny_configs(tmp_path / "configs")
    shutil.copytree(event_sample, tmp_path / "analysis-sample")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for kind, code in blocks():
        if kind == "bash":
            code = code.replace("--events 5000", "--events 10 --no-mpi").replace(
                "--out analysis-sample ", "--out generated "
            )
            res = subprocess.run(
                ["bash", "-e", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
            )
            assert res.returncode == 0, f"{code}\n{res.stdout}\n{res.stderr}"
        else:
            res = subprocess.run(
                [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
            )
            assert res.returncode == 0, f"{code}\n{res.stdout}\n{res.stderr}"
            assert "S/sqrt(B)" in res.stdout
    assert list((tmp_path / "generated").glob("**/*.parquet"))
    for run in ("bdt", "dnn", "multiclass", "higgs_pt_mlp", "higgs_pt_cnn"):
        assert (tmp_path / "runs" / run / "eval" / "metrics.json").exists()
    assert (tmp_path / "runs" / "compare" / "compare.md").exists()
