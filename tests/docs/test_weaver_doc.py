"""docs/weaver.md: its Python block runs as written and its command runs on tiny files."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys
from pathlib import Path

import pytest
from doc_pages import fenced_blocks

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "weaver.md"


def test_the_python_block_prints_what_its_comment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    (code,) = fenced_blocks(DOC.read_text(), "python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {})
    expected = code.split("# ")[-1].strip()
    assert out.getvalue().strip() == expected


def test_the_table_lists_every_config() -> None:
    table = [line for line in DOC.read_text().splitlines() if line.startswith("| ")]
    for config in (ROOT / "tests" / "data" / "weaver").glob("*.yaml"):
        assert any(line.startswith(f"| {config.name}") for line in table), config.name


def test_the_benchmark_command_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("weaver")
    (bash,) = fenced_blocks(DOC.read_text(), "bash")
    argv = shlex.split(bash.strip())
    assert argv[:2] == ["python", "benchmarks/weaver_equivalence.py"]
    argv[argv.index("--jets") + 1] = "30"  # tiny files
    argv += ["--config", str(ROOT / "tests" / "data" / "weaver" / "qg_weights.yaml")]
    import _common  # the benchmarks' helper (benchmarks/ is on pytest's pythonpath)

    monkeypatch.setattr(_common, "RESULTS", tmp_path)  # not the committed results
    monkeypatch.setattr(sys, "argv", argv[1:])
    monkeypatch.delitem(sys.modules, "weaver_equivalence", raising=False)
    import weaver_equivalence

    weaver_equivalence.main()
    figures = json.loads((tmp_path / "weaver_equivalence.json").read_text())["figures"]
    results = figures["table"]["qg_weights.yaml"]
    assert set(results) == {"root", "parquet"}
    for result in results.values():
        assert result["max_abs_diff"]["weight"] == 0.0
        assert max(result["max_abs_diff"].values()) <= 1e-6
