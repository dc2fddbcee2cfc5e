"""A hand-declared mask group that does not fit the groups it masks (issue 21): the
jagged model stops with one line naming the group, exit 2, instead of an indexing error
inside the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from faults_helpers import assert_user_error, run_main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("model", ["deepjet", "particlenet-lite"])
def test_a_pf_mask_shorter_than_pf_features_is_one_line(
    model: str,
    top_qcd_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = yaml.safe_load((ROOT / "configs" / "data" / "top_kinematic.yaml").read_text())
    for group in data["inputs"].values():
        group["mask"] = False  # the loader makes no mask: the config declares its own
    data["inputs"]["pf_mask"] = {"length": 30, "mask": False, "vars": ["part_mask"]}  # pf_*: 100
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml.safe_dump({"data": data, "model": {"name": model}}))
    res = run_main(
        monkeypatch, capsys,
        "train", str(config), "--data", str(top_qcd_sample), "--out", str(tmp_path / "run"),
        "--set", "train.epochs=1",
    )  # fmt: skip
    message = assert_user_error(res, "inputs.pf_mask", "'pf_mask' has 30 slots")
    assert "pf_" in message
