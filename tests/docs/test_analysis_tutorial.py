"""docs/analysis-tutorial.md runs top to bottom: its bash and Python blocks, in order, on a
tiny sample.

Every bash line is a ``heptagon`` command, run in this process through the CLI app (the
same argument parsing and code as the console script, without paying the ~6 s import per
command); the Python blocks run with ``exec``. All run in a scratch directory holding a
copy of ``configs/`` with two changes for the tiny size: 1 epoch, and the loose region
relaxed to >= 1 jet (a few hundred events have almost no Drell-Yan event with 4 jets, and
the multi-class evaluation needs every class in the test split). The generation command
runs as written but with 10 events per process (no MPI) into a side directory; the
training steps read the shared cached event sample (tests/conftest.py ``event_sample``,
300 events per process) as ``analysis-sample``.
"""

from __future__ import annotations

import glob
import shlex
import shutil
from pathlib import Path

import pytest
from doc_pages import code_blocks, one_epoch_configs, run_command

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "analysis-tutorial.md"


def test_the_tutorial_has_cli_and_python_blocks() -> None:
    blocks = code_blocks(TUTORIAL.read_text(), "bash", "python")
    kinds = [k for k, _ in blocks]
    assert kinds.count("bash") >= 5
    assert "python" in kinds
    text = " ".join(code for _, code in blocks)
    for config in ("analysis_bdt", "analysis_dnn", "analysis_dnn_multiclass"):
        assert f"configs/{config}.yaml" in text
    for config in ("analysis_higgs_pt_mlp", "analysis_higgs_pt_cnn"):
        assert f"configs/{config}.yaml" in text


def _tiny_configs(dest: Path) -> None:
    one_epoch_configs(dest, "analysis_*.yaml")
    for path in (dest / "data").glob("analysis_*.yaml"):
        text = path.read_text().replace("region_loose", "(n_jets >= 1)")
        path.write_text(text)


def _globbed(line: str) -> list[str]:
    """The arguments of ``line`` with its globs expanded, as a shell would."""
    return [m for a in shlex.split(line)[1:] for m in (sorted(glob.glob(a)) if "*" in a else [a])]


def test_the_tutorial_runs(
    event_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _tiny_configs(tmp_path / "configs")
    shutil.copytree(event_sample, tmp_path / "analysis-sample")
    monkeypatch.chdir(tmp_path)
    for kind, code in code_blocks(TUTORIAL.read_text(), "bash", "python"):
        if kind == "bash":
            code = code.replace("--events 5000", "--events 10 --no-mpi").replace(
                "--out analysis-sample ", "--out generated "
            )
            for line in filter(str.strip, code.splitlines()):
                run_command(line, _globbed(line))
        else:
            capsys.readouterr()
            exec(compile(code, str(TUTORIAL), "exec"), {"__name__": "__tutorial__"})
            assert "S/sqrt(B)" in capsys.readouterr().out
    assert list((tmp_path / "generated").glob("**/*.parquet"))
    for run in ("bdt", "dnn", "multiclass", "higgs_pt_mlp", "higgs_pt_cnn"):
        assert (tmp_path / "runs" / run / "eval" / "metrics.json").exists()
    assert (tmp_path / "runs" / "compare" / "compare.md").exists()
