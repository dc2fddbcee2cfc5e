"""``heptagon generate --detector-set FIELD=VALUE``: detector parameters from the command
line, validated against ``DetectorConfig``, applied to the jets and recorded; and
docs/trigger.md's sample commands of the continual top-up, run on tiny samples."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from doc_pages import bash_lines, run_command
from typer.testing import CliRunner

from heptagon.cli import app, main
from heptagon.errors import ConfigError
from heptagon.generate.detector import DetectorConfig
from heptagon.generate.options import GenerateOptions

ROOT = Path(__file__).resolve().parents[2]
DEGRADED = ["--detector-set", "hadron_eff_barrel=[0.5, 0.75]", "--detector-set", "hcal_cell=0.174"]


def generate(out: Path, *extra: str) -> str:
    argv = ["generate", "Wqq", "--jets", "6", "--seed", "5", "--no-mpi", "--out", str(out), *extra]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def detector(sample: Path) -> dict:
    return json.loads((sample / "manifest.json").read_text())["detector"]


def recorded(config: DetectorConfig) -> dict:
    """``config``'s settings as a manifest holds them (JSON: tuples are lists)."""
    return json.loads(json.dumps(config.settings()))


def column(sample: Path, name: str) -> np.ndarray:
    return pq.read_table(next((sample / "shards").glob("*.parquet")), columns=[name])[
        name
    ].to_numpy()


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same command nominal, with the degraded tracker and coarse HCAL, and with
    ``--detector-set`` of two fields at their default values."""
    root = tmp_path_factory.mktemp("detector-set")
    made = {"nominal": root / "nominal", "degraded": root / "degraded", "same": root / "same"}
    generate(made["nominal"])
    generate(made["degraded"], *DEGRADED)
    generate(made["same"], "--detector-set", "hcal_cell=0.087", "--detector-set", "jes_ecal=1")
    return made


def test_the_settings_are_recorded(samples: dict[str, Path]) -> None:
    nominal, degraded = detector(samples["nominal"]), detector(samples["degraded"])
    assert nominal == recorded(DetectorConfig())
    assert degraded == recorded(DetectorConfig(hadron_eff_barrel=(0.5, 0.75), hcal_cell=0.174))
    assert {k for k in nominal if nominal[k] != degraded[k]} == {"hadron_eff_barrel", "hcal_cell"}
    generate_json = json.loads((samples["degraded"] / ".generate.json").read_text())
    assert generate_json["settings"]["detector"] == degraded


def test_the_settings_change_the_reconstructed_jets(samples: dict[str, Path]) -> None:
    # the same generator events (jets selected at reco level may differ: compare events)
    nominal, degraded = samples["nominal"], samples["degraded"]
    assert not np.array_equal(column(nominal, "jet_nparticles"), column(degraded, "jet_nparticles"))
    # fewer charged-hadron tracks: fewer charged candidates per jet on average
    charged = {
        name: np.mean([np.count_nonzero(c) for c in column(samples[name], "part_charge")])
        for name in ("nominal", "degraded")
    }
    assert charged["degraded"] < charged["nominal"]


def test_defaults_set_explicitly_give_the_nominal_files(samples: dict[str, Path]) -> None:
    assert detector(samples["same"]) == detector(samples["nominal"])
    for name in ("jet_pt", "jet_nparticles"):
        assert np.array_equal(column(samples["same"], name), column(samples["nominal"], name))


def test_a_rerun_with_other_settings_is_refused(samples: dict[str, Path]) -> None:
    argv = [
        "generate",
        "Wqq",
        "--jets",
        "6",
        "--seed",
        "5",
        "--no-mpi",
        "--out",
        str(samples["degraded"]),
    ]
    result = CliRunner().invoke(app, [*argv, "--detector-set", "hcal_cell=0.2"])
    assert isinstance(result.exception, ConfigError)
    assert "other settings (detector)" in str(result.exception)
    # the same settings resume (nothing to make)
    assert "already there" in generate(samples["degraded"], *DEGRADED)


@pytest.mark.parametrize(
    ("items", "extra", "message"),
    [
        (["hcal_cel=0.2"], [], "no DetectorConfig field 'hcal_cel'"),
        (["hcal_cell=abc"], [], "hcal_cell='abc': Input should be a valid number"),
        (["hadron_eff_barrel=[0.5, x]"], [], "hadron_eff_barrel.1="),
        (["jes_ecal=-1"], [], "jes_ecal=-1: Input should be greater than 0"),
        (["hcal_cell"], [], "needs FIELD=VALUE, got 'hcal_cell'"),
        (["hcal_cell=0.2"], ["--detector", "none"], "needs the detector"),
        (["jes_hcal=1.1"], ["--variation", "jes_hcal_up"], "'jes_hcal' is set twice"),
        (["hcal_cell=0.1", "hcal_cell=0.2"], [], "'hcal_cell' is set twice"),
        (["hcal_cell=0.2"], ["--detector", "fast"], "no FastDetectorConfig field 'hcal_cell'"),
        (["hcal_cell=-0.1"], [], "hcal_cell=-0.1: Input should be greater than 0"),
        (["muon_eff=1.2"], [], "muon_eff=1.2: Input should be less than or equal to 1"),
        (["ecal_s=-0.1"], [], "ecal_s=-0.1: Input should be greater than or equal to 0"),
        (["hadron_eff_endcap=[0.6, 1.5]"], [], "hadron_eff_endcap.1="),
        (["track_res_a=[0.01, 0.02]"], [], "one per region"),
        (["track_res_eta_edges=[1.5, 0.5, 2.5]"], [], "track_res_eta_edges must increase"),
        (["track_eff=1.5"], ["--detector", "fast"], "track_eff=1.5: Input should be less"),
    ],
)
def test_bad_settings_are_one_line_exit_2(
    items: list[str],
    extra: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["generate", "Wqq", "--jets", "8", "--seed", "5", "--out", str(tmp_path / "s")]
    argv += [*extra, *(w for item in items for w in ("--detector-set", item))]
    monkeypatch.setattr(sys, "argv", ["heptagon", *argv])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("heptagon: error: detector_set: "), err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["hcal_cel=0.2"], "detector_set: no DetectorConfig field 'hcal_cel'"),
        (["jes_ecal=-1"], "detector_set: jes_ecal=-1: Input should be greater than 0"),
    ],
)
def test_the_error_names_the_field(items: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        GenerateOptions(sample="Wqq", jets=1, seed=1, out=tmp_path / "s", detector_set=items)


def test_the_fast_chain_takes_its_own_fields(tmp_path: Path) -> None:
    opts = GenerateOptions(
        sample="Wqq", jets=1, seed=1, out=tmp_path, detector="fast",
        detector_set=["track_eff=0.8"],
    )  # fmt: skip
    assert opts.detector_knobs == {"track_eff": 0.8}


def test_the_trigger_docs_sample_commands_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/trigger.md's ``heptagon generate`` lines (the continual top-up's nominal and
    degraded samples), ``--jets`` scaled down to 6."""
    lines = [
        ln
        for ln in bash_lines((ROOT / "docs" / "trigger.md").read_text())
        if ln.startswith("heptagon generate")
    ]
    assert len(lines) == 2
    monkeypatch.chdir(tmp_path)
    for line in lines:
        argv = shlex.split(line)[1:]
        argv[argv.index("--jets") + 1] = "6"
        run_command(line, argv)
    later = detector(tmp_path / "data" / "top-later")
    assert later["hadron_eff_barrel"] == [0.5, 0.75]
    assert later["hadron_eff_endcap"] == [0.4, 0.65]
    assert detector(tmp_path / "data" / "top") == recorded(DetectorConfig())
