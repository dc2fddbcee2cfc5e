"""docs/flavour.md runs: its ``heptagon`` lines, in order, through the CLI app on a tiny
``ak4-flavour`` sample (generated once for this module, 40 jets per class), trainings
with 1 epoch; then the flavour numbers are in metrics.json and the report."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from doc_pages import bash_lines, run_command

from heptagon.generate.run import GenerateOptions, generate

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "flavour.md"


@pytest.fixture(scope="module")
def ak4_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ak4") / "sample"
    generate(GenerateOptions(sample="ak4-flavour", jets=40, seed=3, out=out), show_progress=False)
    return out


def lines() -> list[list[str]]:
    return [
        shlex.split(line) for line in bash_lines(DOC.read_text()) if line.startswith("heptagon ")
    ]


def test_the_page_runs(ak4_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    ran = []
    for argv in lines():
        args = argv[1:]
        if args[0] == "generate":  # as written, but 2 jets per class into a side directory
            args[args.index("--jets") + 1] = "2"
            args[args.index("--out") + 1] = "generated"
        else:
            args = [str(ak4_sample) if a == "data/ak4" else a for a in args]
        if args[0] == "train":
            args += ["--set", "train.epochs=1"]
        run_command(shlex.join(argv), args)
        ran.append(args[0])
    assert ran.count("train") == 4
    assert ran.count("export") == 3
    for run in ("ak4_deepjet", "ak4_bdt", "ak4_particlenet", "ak4_part"):
        metrics = json.loads((tmp_path / "runs" / run / "eval" / "metrics.json").read_text())
        flavour = metrics["flavour"]
        assert set(flavour["working_points"]) == {"loose", "medium", "tight"}
        assert "0.7" in flavour["b_vs_light"]["rejection_at_eff"]
        assert set(flavour["c_vs_light"]["eff_at_mistag"]) == {"0.1", "0.01"}
        report = (tmp_path / "runs" / run / "eval" / "report.md").read_text()
        assert "heavy-flavour tagging" in report
    assert list((tmp_path / "generated").glob("shards/*.parquet"))
