"""docs/detector-settings.md: each ``--detector-set`` command line runs (through the CLI app,
in this process) on a tiny sample, beside the same line without ``--detector-set``; the
setting is recorded and reaches the detector the way the page says."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from doc_pages import bash_lines, run_command

from heptagon.apps.dqm.simulate import load_data
from heptagon.generate.detector import DetectorConfig
from heptagon.physics.systematics import get_variation

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "detector-settings.md"

#: the page's sizes -> the tests'
TINY = {
    "--events 2000": "--events 20",
    "--probes 3000": "--probes 20",
    "--runs 20": "--runs 1 --ls 2 --events-per-ls 20 --bad-fraction 0 --source-jets 30",
}


def lines() -> dict[str, tuple[str, list[str]]]:
    """The page's command lines and their argv after ``heptagon`` (tiny sizes), by
    command."""
    out = {}
    for line in bash_lines(PAGE.read_text()):
        tiny_line = line
        for page_size, tiny in TINY.items():
            tiny_line = tiny_line.replace(page_size, tiny)
        argv = shlex.split(tiny_line)[1:]
        out[" ".join(argv[:2]) if argv[0] in ("sf", "mlpf", "dqm") else argv[0]] = (line, argv)
    return out


def test_the_page_shows_every_command_but_generate() -> None:
    # heptagon generate --detector-set: docs/trigger.md and its test
    assert sorted(lines()) == ["dqm simulate", "generate-events", "mlpf generate", "sf generate"]


def run(line: str, argv: list[str], where: Path) -> None:
    """The page's ``line`` as ``argv`` (exit 0), which made ``where``."""
    run_command(line, argv)
    assert (where / "manifest.json").exists() or (where / "config.json").exists()


def nominal(argv: list[str], out: str) -> list[str]:
    """``argv`` without its ``--detector-set`` items, into ``out``."""
    kept = [a for i, a in enumerate(argv) if "--detector-set" not in (a, argv[i - 1])]
    kept[kept.index("--out") + 1] = out
    return kept


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def recorded(config: DetectorConfig) -> dict:
    """``config``'s settings as a manifest holds them (JSON: tuples are lists)."""
    return json.loads(json.dumps(config.settings()))


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def shard(path: Path) -> ak.Array:
    return ak.from_parquet(path / manifest(path)["files"][0]["file"])


def test_event_samples_without_muon_tracks(work: Path) -> None:
    line, argv = lines()["generate-events"]
    run(line, argv, work / "dy-no-muon-tracks")
    run(line, nominal(argv, "dy"), work / "dy")
    changed, nom = work / "dy-no-muon-tracks", work / "dy"
    assert manifest(changed)["detector"]["muon_eff"] == 0
    assert manifest(nom)["detector"]["muon_eff"] == DetectorConfig().muon_eff
    assert ak.sum(ak.num(shard(nom)["Muon_pt"])) > 0
    assert ak.sum(ak.num(shard(changed)["Muon_pt"])) == 0
    # the same generator events
    assert np.array_equal(shard(nom)["GenMET_pt"], shard(changed)["GenMET_pt"])


def test_tag_and_probe_knob_is_the_variations(work: Path) -> None:
    """The same files as ``--variation jes_hcal_up`` (whose harder probe jets
    tests/generate/test_tagprobe.py checks against the nominal sample)."""
    line, argv = lines()["sf generate"]
    out = work / "tnp" / "jes_hcal_1.03"
    run(line, argv, out)
    variation = [*nominal(argv, "tnp/jes_hcal_up"), "--variation", "jes_hcal_up"]
    run(line, variation, work / "tnp" / "jes_hcal_up")
    made, varied = manifest(out), manifest(work / "tnp" / "jes_hcal_up")
    assert get_variation("jes_hcal_up").detector == {"jes_hcal": 1.03}
    assert made["detector"]["jes_hcal"] == 1.03
    assert made["detector"] == varied["detector"] != recorded(DetectorConfig())
    assert made["variation"] is None
    assert varied["variation"]["name"] == "jes_hcal_up"
    assert made["files"] == varied["files"]  # names, entries and sha256


def test_element_samples_with_half_the_tracking(work: Path) -> None:
    line, argv = lines()["mlpf generate"]
    run(line, argv, work / "mlpf" / "half-tracking")
    run(line, nominal(argv, "mlpf/nominal"), work / "mlpf" / "nominal")
    changed, nom = shard(work / "mlpf" / "half-tracking"), shard(work / "mlpf" / "nominal")
    assert manifest(work / "mlpf" / "half-tracking")["detector"]["track_eff_scale"] == 0.5
    # the same gun particles, fewer of them tracked
    assert np.array_equal(changed["GenMET_pt"], nom["GenMET_pt"])
    assert ak.sum(ak.num(changed["Track_pt"])) < 0.7 * ak.sum(ak.num(nom["Track_pt"]))


def test_dqm_runs_with_half_the_tracking(work: Path) -> None:
    line, argv = lines()["dqm simulate"]
    run(line, argv, work / "dqm" / "half-tracking")
    run(line, nominal(argv, "dqm/nominal"), work / "dqm" / "nominal")
    config = json.loads((work / "dqm" / "half-tracking" / "config.json").read_text())
    assert config["detector"]["track_eff_scale"] == 0.5
    assert manifest(work / "dqm" / "half-tracking" / "source")["detector"] == config["detector"]

    def per_event(name: str) -> dict[str, float]:
        data = load_data(work / "dqm" / name)
        return {k: float(v.sum() / data.ls["n_events"].sum()) for k, v in data.counts.items()}

    changed, nom = per_event("half-tracking"), per_event("nominal")
    assert changed["occ_charged"] < 0.8 * nom["occ_charged"]
    assert changed["occ_neutral"] > nom["occ_neutral"]
