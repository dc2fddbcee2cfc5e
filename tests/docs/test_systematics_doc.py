"""docs/systematics.md: its commands run (through the CLI app, in this process) on tiny
samples, and what ``evaluate --systematics`` writes is the table the page describes.

The train line reads the shared cached top-vs-QCD sample (tests/conftest.py) as
``top-sample``; the generate lines run as written with 40 jets per class instead of 5000.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from doc_pages import bash_lines, run_command

from heptagon.artifacts.manifest import JetManifest, load_manifest
from heptagon.artifacts.systematics import SystematicsTable
from heptagon.errors import ConfigError, DataError
from heptagon.evaluate.systematics import systematics_inputs
from heptagon.physics.systematics import VARIATIONS
from heptagon.train.rundir import load_run

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "systematics.md"


def test_the_page_lists_every_variation() -> None:
    text = PAGE.read_text()
    for name in VARIATIONS:
        group = name.rpartition("_")[0]
        assert f"`{name}`" in text or f"`{group}_*`" in text, name


@pytest.fixture(scope="module")
def made(
    top_qcd_sample: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, SystematicsTable]:
    root = tmp_path_factory.mktemp("systematics-doc")
    (root / "top-sample").symlink_to(top_qcd_sample)
    (root / "configs").symlink_to(ROOT / "configs")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    try:
        lines = bash_lines(PAGE.read_text())
        assert [shlex.split(line)[1] for line in lines] == [
            "train", "generate", "generate", "evaluate",
        ]  # fmt: skip
        for line in lines:
            run_command(line, shlex.split(line.replace("--jets 5000", "--jets 40"))[1:])
    finally:
        mp.undo()
    table = SystematicsTable.read(root / "runs/top-bdt/eval/systematics.json")
    return root, table


def test_the_varied_sample_records_its_variation(made: tuple[Path, SystematicsTable]) -> None:
    root, _ = made
    nominal, varied = load_manifest(root / "eval-nominal"), load_manifest(root / "eval-jes-hcal-up")
    assert isinstance(nominal, JetManifest)
    assert isinstance(varied, JetManifest)
    assert nominal.variation is None
    assert varied.variation is not None
    assert varied.variation["name"] == "jes_hcal_up"
    assert varied.detector is not None
    assert varied.detector["jes_hcal"] == pytest.approx(1.03)
    assert nominal.weight_variations == ["isr_up", "isr_down", "fsr_up", "fsr_down"]
    assert varied.weight_variations == nominal.weight_variations  # the same events
    assert [f.seed for f in varied.files] == [f.seed for f in nominal.files]


def test_jets_carry_their_events_shower_weights(made: tuple[Path, SystematicsTable]) -> None:
    root, _ = made
    for shard in (root / "eval-nominal" / "shards").glob("*.parquet"):
        jets = ak.from_parquet(shard)
        event = np.asarray(jets["event"])
        for column in ("weight_isr_up", "weight_fsr_down"):
            w = np.asarray(jets[column])
            assert np.all(np.isfinite(w))
            assert np.all(w > 0)
            # one value per event: every jet of an event has its event's weight
            first = {e: w[np.argmax(event == e)] for e in np.unique(event)}
            np.testing.assert_array_equal(w, [first[e] for e in event])


def test_the_table_has_every_working_point_bin_and_source(
    made: tuple[Path, SystematicsTable],
) -> None:
    root, table = made
    assert table.signal == "Tbqq"
    assert table.checkpoint_sha256 == load_run(root / "runs/top-bdt").checkpoint_sha256()
    assert table.background == "QCD"
    assert [v.name for v in table.variations] == [
        "jes_hcal_up", "isr_up", "isr_down", "fsr_up", "fsr_down",
    ]  # fmt: skip
    assert [wp.target_efficiency for wp in table.working_points] == [0.3, 0.5, 0.7]
    thresholds = [wp.threshold for wp in table.working_points]
    assert thresholds == sorted(thresholds, reverse=True)  # looser cuts, higher efficiency
    assert len(table.pt_edges) == 4
    for wp in table.working_points:
        for bins in (wp.efficiency, wp.mistag):
            assert len(bins) == 3
            for b in bins:
                assert b.value is not None
                assert b.stat is not None
                assert b.syst is not None
                assert b.total is not None
                assert set(b.systematics) == {"jes_hcal", "isr", "fsr"}
                assert b.systematics["isr"] == pytest.approx(
                    max(abs(b.shifts["isr_up"] or 0), abs(b.shifts["isr_down"] or 0))
                )
                quad = np.sqrt(sum(v**2 for v in b.systematics.values() if v is not None))
                assert b.syst == pytest.approx(quad)
                assert b.total == pytest.approx(np.hypot(b.stat, b.syst))
    # the nominal efficiency over all bins is the working point's (bins hold equal jets)
    for wp in table.working_points:
        n = np.array([b.n_jets for b in wp.efficiency])
        eff = np.array([b.value for b in wp.efficiency], dtype=float)
        assert (n * eff).sum() / n.sum() == pytest.approx(wp.target_efficiency, abs=0.05)
    eval_dir = root / "runs/top-bdt/eval"
    for name in ("systematics.md", "plots/systematics_wp0.5.png", "metrics.json"):
        assert (eval_dir / name).stat().st_size > 0, name
    assert "| jes_hcal | isr | fsr |" in (eval_dir / "systematics.md").read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weight_variations": []}, "its weight_variations is not the nominal's"),
        ({"seed": 102}, "its seed is not the nominal's"),
        ({"shard_size": 7}, "its shard_size is not the nominal's"),
        ({"variation": None}, "not a varied sample"),
    ],
)
def test_a_varied_sample_of_another_command_is_refused(
    made: tuple[Path, SystematicsTable], tmp_path: Path, change: dict[str, object], message: str
) -> None:
    root, _ = made
    varied = load_manifest(root / "eval-jes-hcal-up")
    varied.model_copy(update=change).write(tmp_path / "manifest.json")
    with pytest.raises(DataError, match=message):
        systematics_inputs([str(root / "eval-nominal")], [tmp_path])


def test_the_inputs_are_checked_before_anything_runs(made: tuple[Path, SystematicsTable]) -> None:
    root, _ = made
    nominal, varied = str(root / "eval-nominal"), root / "eval-jes-hcal-up"
    inputs = systematics_inputs([nominal], [varied])
    assert inputs.columns == ["weight_isr_up", "weight_isr_down", "weight_fsr_up",
                              "weight_fsr_down"]  # fmt: skip
    with pytest.raises(ConfigError, match="the one --data DIR"):
        systematics_inputs([nominal, nominal], [varied])
    with pytest.raises(ConfigError, match="given twice"):
        systematics_inputs([nominal], [varied, varied])
    with pytest.raises(DataError, match=r"no manifest\.json"):
        systematics_inputs([nominal], [root / "nowhere"])
