"""docs/inputs.md: every command of its bash blocks runs, in order, through the CLI app on
tiny files in the public layouts; its URL is served by a local HTTP server."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from doc_pages import bash_lines, fenced_blocks, run_command

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from layoutfiles import quark_gluon, top_landscape
from rangeserver import serve

from heptagon.data.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "inputs.md"


def test_the_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # the evaluation's plots are tested elsewhere; here they would take most of the time
    monkeypatch.setattr("heptagon.evaluate.run.draw", lambda *args, **kwargs: [])
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    (tmp_path / "data" / "qg").mkdir(parents=True)
    (tmp_path / "data" / "toplandscape").mkdir()
    for i, n in enumerate((120, 40, 30, 20, 20)):
        quark_gluon(tmp_path / "data" / "qg" / f"QG_jets_{i}.npz", n=n)
    top_landscape(tmp_path / "data" / "toplandscape" / "train.h5", n=160)
    lines = bash_lines(DOC.read_text())
    assert len(lines) == 8
    with serve(tmp_path / "data") as server:
        for line in lines:
            run_command(line.replace("https://example.org", server.url))
    runs = tmp_path / "runs"
    # explicit sets, read whole: the test files (50 jets) as 'test' and each group; then
    # the other file given to evaluate
    rows = {
        name: pq.read_metadata(runs / "qg_explicit" / "eval" / f"predictions_{name}.parquet")
        for name in ("test", "quarks", "gluons", "other")
    }
    assert {k: v.num_rows for k, v in rows.items()} == {
        "test": 50,
        "quarks": 30,
        "gluons": 20,
        "other": 20,
    }
    config = yaml.safe_load((runs / "qg_explicit" / "config.yaml").read_text())
    assert config["files_val"] == ["data/qg/QG_jets_1.npz"]
    assert config["split_rule"].startswith("explicit files")
    # the public layout: the roles evaluation uses are there, and the bundle is built
    columns = pq.read_schema(runs / "top_pfn" / "eval" / "predictions_test.parquet").names
    assert {"jet_pt", "jet_eta", "jet_sdmass"} <= set(columns)
    assert (runs / "top_pfn" / "bundle" / "SHA256SUMS").is_file()
    # the remote file was read from the server
    assert f"{server.url}/qg/QG_jets_0.npz" in (runs / "qg_remote" / "config.yaml").read_text()
    assert pq.read_metadata(tmp_path / "scores" / "train.parquet").num_rows == 160
    assert server.requests > 0


def test_the_observer_roles_snippet_is_a_valid_data_config_key() -> None:
    (snippet,) = fenced_blocks(DOC.read_text(), "yaml")
    config = load_config({"inputs": {"jet": {"vars": ["fj_pt"]}}, **yaml.safe_load(snippet)})
    assert config.observer_roles == {
        "jet_pt": "fj_pt",
        "jet_eta": "fj_eta",
        "jet_sdmass": "fj_sdmass",
    }
