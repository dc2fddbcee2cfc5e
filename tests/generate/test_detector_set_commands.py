"""``--detector-set FIELD=VALUE`` on every command that runs the parametric detector
besides ``heptagon generate`` (tests/generate/test_detector_options.py): a bad item is one
line naming ``detector_set``, exit status 2, nothing written; the options models share one
reading of the items. Their tiny runs: tests/docs/test_detector_settings_doc.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults.faults_helpers import assert_user_error, run_main

from heptagon.apps.dqm.simulate import SourceOptions
from heptagon.errors import ConfigError
from heptagon.generate.elements import ElementOptions
from heptagon.generate.options import DetectorSetOptions, EventOptions
from heptagon.generate.tagprobe import TagProbeOptions

#: each command's smallest valid argv (OUT: its output dir)
COMMANDS = {
    "generate-events": ["generate-events", "dy", "--events", "5", "--seed", "1", "--out", "OUT"],
    "sf generate": ["sf", "generate", "--probes", "5", "--seed", "1", "--out", "OUT"],
    "mlpf generate": ["mlpf", "generate", "gun", "--events", "5", "--out", "OUT"],
    "dqm simulate": ["dqm", "simulate", "--out", "OUT", "--runs", "1", "--source-jets", "5"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["hcal_cel=0.2"], "detector_set: no DetectorConfig field 'hcal_cel'"),
        (["track_eff_scale=-1"], "detector_set: track_eff_scale=-1: Input should be greater"),
        (["hcal_cell=0.1", "hcal_cell=0.2"], "detector_set: 'hcal_cell' is set twice"),
        (["hcal_cell"], "detector_set: needs FIELD=VALUE, got 'hcal_cell'"),
    ],
)
def test_a_bad_item_is_one_line_exit_2(
    command: str,
    items: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    argv = [str(out) if a == "OUT" else a for a in COMMANDS[command]]
    argv += [w for item in items for w in ("--detector-set", item)]
    res = run_main(monkeypatch, capsys, *argv)
    assert_user_error(res, message)
    assert res.stderr.startswith("heptagon: error: detector_set: "), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()


def test_a_variations_field_is_refused_on_event_samples(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'jes_hcal' is set twice"):
        EventOptions(
            sample="dy", events=1, seed=1, out=tmp_path, variation="jes_hcal_up",
            detector_set=["jes_hcal=1.1"],
        )  # fmt: skip
    with pytest.raises(ConfigError, match="needs the detector"):
        EventOptions(
            sample="dy", events=1, seed=1, out=tmp_path, detector="none",
            detector_set=["jes_hcal=1.1"],
        )  # fmt: skip


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (EventOptions, {"sample": "dy", "events": 1, "seed": 1}),
        (TagProbeOptions, {"probes": 1, "seed": 1}),
        (ElementOptions, {"sample": "gun", "events": 1, "seed": 1}),
        (SourceOptions, {}),
    ],
)
def test_every_model_reads_the_items_as_generate_does(
    model: type[DetectorSetOptions], values: dict, tmp_path: Path
) -> None:
    out = {} if model is SourceOptions else {"out": tmp_path}
    items = ["hadron_eff_barrel=[0.5, 0.75]", "jes_ecal=1.02", "ip_res_scale=2"]
    opts = model.model_validate(values | out | {"detector_set": items})
    assert isinstance(opts, DetectorSetOptions)
    assert opts.detector_knobs == {
        "hadron_eff_barrel": [0.5, 0.75], "jes_ecal": 1.02, "ip_res_scale": 2,
    }  # fmt: skip
    assert model.model_validate(values | out).detector_knobs == {}


def test_pseudo_data_take_no_detector_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*COMMANDS["sf generate"], "--pseudo-data", "3", "--detector-set", "jes_hcal=1.1"]
    res = run_main(monkeypatch, capsys, *[str(tmp_path / "o") if a == "OUT" else a for a in argv])
    assert_user_error(res, "--detector-set")
    assert res.stderr.startswith("heptagon: error: pseudo_data: "), res.stderr
    assert not (tmp_path / "o").exists()


def test_dqm_refuses_detector_set_with_a_given_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["dqm", "simulate", "--out", str(tmp_path / "o"), "--source", str(tmp_path)]
    res = run_main(monkeypatch, capsys, *argv, "--detector-set", "hcal_cell=0.2")
    assert_user_error(res, "detector_set: --detector-set makes the source: not with --source")
    assert not (tmp_path / "o").exists()
