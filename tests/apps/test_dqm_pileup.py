"""`heptagon dqm simulate --pileup MU`: the source is generated with generate's overlay and
the DQM observables respond to pile-up; bad pile-up options are one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from heptagon.apps.dqm.simulate import SourceOptions, load_data
from heptagon.cli import app, main
from heptagon.config import validate
from heptagon.errors import ConfigError


def _simulate(out: Path, *extra: str) -> dict[str, np.ndarray]:
    res = CliRunner().invoke(
        app,
        [
            "dqm", "simulate", "--out", str(out), "--runs", "1", "--ls", "2",
            "--events-per-ls", "20", "--bad-fraction", "0", "--source-jets", "30",
            "--pileup-library", "60", *extra,
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = load_data(out)
    return {k: v[0] for k, v in data.run_counts().items()} | {"events": data.ls["n_events"]}


def test_dqm_observables_grow_with_pileup(tmp_path: Path) -> None:
    zero = _simulate(tmp_path / "mu0")
    pu = _simulate(tmp_path / "mu30", "--pileup", "30")
    config = json.loads((tmp_path / "mu30" / "config.json").read_text())
    assert config["pileup"]["mu"] == 30
    assert config["pileup"]["library"]["events"] == 60
    assert json.loads((tmp_path / "mu0" / "config.json").read_text())["pileup"] is None

    def per_event(counts: dict[str, np.ndarray], name: str) -> float:
        return float(counts[name].sum() / counts["events"].sum())

    # more calorimeter deposits above threshold per event
    for occupancy in ("occ_neutral", "occ_charged"):
        assert per_event(pu, occupancy) > 1.5 * per_event(zero, occupancy), occupancy
    # pile-up jets pass the jet pT threshold
    assert per_event(pu, "jet_pt") > per_event(zero, "jet_pt")

    def mean_bin(h: np.ndarray) -> float:
        return float((np.arange(h.size) * h).sum() / h.sum())

    # more constituents per jet (bins of 2)
    assert mean_bin(pu["jet_nconst"]) > mean_bin(zero["jet_nconst"]) + 3


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["--pileup", "-1"], "--pileup"),
        (["--mitigation", "puppi"], "mitigation"),
        (["--pileup", "20", "--mitigation", "softkiller"], "mitigation"),
    ],
)
def test_bad_dqm_pileup_options(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    key: str,
) -> None:
    monkeypatch.setattr(
        sys, "argv", ["heptagon", "dqm", "simulate", "--out", str(tmp_path / "o"), *argv]
    )
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert key in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_pileup_with_a_given_source_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        validate(SourceOptions, {"mitigation": "chs"})
    assert err.value.key == "mitigation"
    argv = ["dqm", "simulate", "--out", str(tmp_path), "--source", str(tmp_path), "--pileup", "5"]
    monkeypatch.setattr(sys, "argv", ["heptagon", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert "not with --source" in capsys.readouterr().err
