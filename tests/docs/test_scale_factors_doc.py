"""docs/scale-factors.md runs top to bottom on tiny inputs, and what it promises is there.

Every bash line is a ``heptagon`` command, run in this process through the CLI app. The
``sf generate`` lines run as written but with 5 probe jets into a side directory; the
measurement reads the shared cached tag-and-probe samples (tests/conftest.py
``tag_probe_samples``) as ``tnp/...``. ``demo/runs/particlenet_lite`` is a tiny PFN trained
for one epoch on the shared top-vs-QCD sample and published (the demo's run would take
minutes); toys: 10; one probe-pT bin and four mass bins.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from doc_pages import bash_lines, run_command
from typer.testing import CliRunner

from heptagon.artifacts.scale_factors import ScaleFactorTable, TagProbeManifest
from heptagon.cli import app
from heptagon.errors import DataError
from heptagon.publish.bundle import publish
from heptagon.publish.hepdata import validate_submission
from heptagon.train.run import train

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "scale-factors.md"
RUN = Path("demo/runs/particlenet_lite")


def lines() -> list[str]:
    return [line.strip() for line in bash_lines(DOC.read_text())]


def _tiny(line: str) -> str:
    if line.startswith("heptagon sf generate"):
        line = re.sub(r"--probes \d+", "--probes 5", line).replace("--out tnp/", "--out side/")
    # one pT bin, four mass bins: 60 simulated probe jets cannot fill more in both categories
    coarse = "--pt-edges 300,3000 --mass-edges 40,100,140,200,250"
    line = line.replace("--working-point 0.5", f"--working-point 0.5 {coarse}")
    return line.replace("--toys 50", "--toys 10")


def test_the_doc_shows_every_sf_command() -> None:
    text = " ".join(lines())
    for command in ("sf generate", "sf measure", "sf closure", "sf toys", "sf reveal"):
        assert f"heptagon {command}" in text
    assert "--pseudo-data" in text
    assert "--scale-factors" in text


def test_the_doc_runs(
    top_qcd_sample: Path,
    tag_probe_samples: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    train(
        ROOT / "configs" / "top_pfn.yaml",
        top_qcd_sample,
        RUN,
        overrides=["train.epochs=1", "train.progress=false", "model.options.phi_sizes=[16,16]"],
    )
    publish(RUN, say=lambda _: None)
    for name, path in tag_probe_samples.items():
        shutil.copytree(path, Path("tnp") / name)
    outputs = {line: run_command(_tiny(line)) for line in lines()}

    # the side samples were made as written: pseudo-data sealed and without truth
    pseudo = TagProbeManifest.read(Path("side/pseudo/manifest.json"))
    assert pseudo.pseudo_data
    assert pseudo.detector is None
    assert pseudo.sealed is not None
    assert "probe_category" not in pseudo.branches
    revealed = next(out for line, out in outputs.items() if "sf reveal" in line)
    hidden = json.loads(revealed)
    assert set(hidden["detector"]) >= {"jes_hcal", "jer_track", "track_eff_scale"}

    table = ScaleFactorTable.read(Path("tnp/sf/scale_factors.json"))
    assert len(table.bins) == 1
    assert table.working_point == 0.5
    assert set(table.variations) == {"fsr", "isr", "jes_hcal"}
    assert table.closure is not None
    assert len(table.closure.pulls) == 1
    assert table.toys is not None
    assert table.toys.toys == 10
    for b in table.bins:
        assert b.sf == pytest.approx(b.eff_data / b.eff_sim)
        assert {"data_stat", "sim_stat", "jes_hcal"} <= set(b.breakdown)

    bundle = RUN / "bundle"
    assert ScaleFactorTable.read(bundle / "scale_factors.json") == table
    validate_submission(bundle / "hepdata")
    docs = list(yaml.safe_load_all((bundle / "hepdata" / "submission.yaml").read_text()))
    names = {d.get("name") for d in docs}
    assert {
        "Data-to-simulation scale factors",
        "Tagger efficiency in simulation (tag-and-probe)",
    } <= names
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "## Data/simulation scale factors" in card
    assert f"{table.bins[0].sf:.3f} +- {table.bins[0].sf_err:.3f}" in card

    weights = pq.read_table(next(Path("tnp/weights").glob("*.parquet"))).to_pydict()
    assert {"sf_weight", "sf_weight_up", "sf_weight_down", "jet_pt"} <= set(weights)
    passed = [s > table.threshold for s in weights[table.score]]
    for pt, ok, w, up in zip(
        weights["jet_pt"], passed, weights["sf_weight"], weights["sf_weight_up"], strict=True
    ):
        b = next((b for b in table.bins if b.pt_low <= pt < b.pt_high), None)
        if b is None:
            assert w == 1.0
        elif ok:
            assert w == pytest.approx(b.sf, rel=1e-5)
            assert up == pytest.approx(b.sf + b.sf_err, rel=1e-5)

    _refusals(table)


def _refusals(table: ScaleFactorTable) -> None:
    """A table of another model is refused by publish; one cutting on a score the model
    does not have by predict (nothing written)."""
    other = table.model_copy(update={"tagger_sha256": "0" * 64})
    other.write(Path("other.json"))
    result = CliRunner().invoke(app, ["publish", str(RUN), "--scale-factors", "other.json"])
    assert isinstance(result.exception, DataError)
    assert "another model" in str(result.exception)
    table.model_copy(update={"score": "score_Hbb"}).write(Path("hbb.json"))
    argv = ["predict", str(RUN / "bundle"), "tnp/sim", "--out", "w2", "--scale-factors", "hbb.json"]
    result = CliRunner().invoke(app, argv)
    assert isinstance(result.exception, DataError)
    assert "score_Hbb" in str(result.exception)
    assert not Path("w2").exists()
