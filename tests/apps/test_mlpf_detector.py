"""MLPF on an element sample made with another detector (``heptagon mlpf generate
--detector-set``): training and evaluation link the elements and run the rule-based PF with
the detector the sample's manifest records (:func:`heptagon.apps.mlpf.run.detector_of`),
not the nominal one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from faults.faults_helpers import assert_user_error, run_main

from heptagon.apps.mlpf.metrics import pf_metrics
from heptagon.apps.mlpf.pf import rule_based_pf
from heptagon.apps.mlpf.run import (
    FEATURES,
    decode,
    detector_of,
    element_features,
    evaluate_mlpf,
    load_decoding,
    load_elements,
    load_mlpf,
    predict,
)
from heptagon.apps.mlpf.training import MLPFTrainOptions, train_mlpf
from heptagon.generate.detector import DetectorConfig
from heptagon.generate.elements import ElementOptions, generate_elements

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: HCAL towers twice the nominal size (the setting docs/detector-settings.md shows)
WIDE_HCAL = DetectorConfig(hcal_cell=0.174)


@pytest.fixture(scope="module")
def wide_hcal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlpf-det") / "ttbar"
    generate_elements(
        ElementOptions(
            sample="ttbar", events=10, seed=3, out=out, shard_size=10,
            detector_set=["hcal_cell=0.174"],
        ),
        show_progress=False,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def trained(wide_hcal: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run on every event of ``wide_hcal`` (no validation split)."""
    run = tmp_path_factory.mktemp("mlpf-det-run") / "run"
    train_mlpf(
        MLPFTrainOptions(
            data=wide_hcal, out=run, epochs=1, width=8, n_layers=1, bin_size=32,
            val_fraction=0, threshold=0.5, device="cpu",
        )
    )  # fmt: skip
    return run


def _mean(features: torch.Tensor) -> torch.Tensor:
    """The input scaling's mean, computed as training computes it."""
    return features.double().mean(0).float()


def test_the_detector_is_the_recorded_one(wide_hcal: Path) -> None:
    manifest = json.loads((wide_hcal / "manifest.json").read_text())
    assert manifest["detector"]["hcal_cell"] == 0.174
    assert detector_of(wide_hcal) == WIDE_HCAL != DetectorConfig()
    # and it changes what the linking finds on this sample
    el = load_elements(wide_hcal)
    link_dr = FEATURES.index("link_dr")
    wide, nominal = element_features(el, WIDE_HCAL), element_features(el)
    assert (wide.features[:, link_dr] != nominal.features[:, link_dr]).any()


def test_training_links_with_the_samples_detector(wide_hcal: Path, trained: Path) -> None:
    """The input scaling saved with the model is that of the elements linked with the
    recorded detector (every event trains: no validation split)."""
    model = load_mlpf(trained)
    el = load_elements(wide_hcal)
    wide = torch.from_numpy(element_features(el, WIDE_HCAL).features)
    nominal = torch.from_numpy(element_features(el).features)
    assert torch.equal(model.feature_mean, _mean(wide))
    assert not torch.equal(model.feature_mean, _mean(nominal))


def test_evaluation_links_and_reconstructs_with_the_samples_detector(
    wide_hcal: Path, trained: Path
) -> None:
    metrics = evaluate_mlpf(trained, wide_hcal)
    el = load_elements(wide_hcal)

    def as_json(value: object) -> str:  # NaN compares equal to itself as text
        return json.dumps(value, sort_keys=True)

    pf_wide = as_json(pf_metrics(rule_based_pf(el, WIDE_HCAL), el))
    assert as_json(metrics["pf"]) == pf_wide
    assert pf_wide != as_json(pf_metrics(rule_based_pf(el), el))
    arr = element_features(el, WIDE_HCAL)
    mlpf = decode(predict(load_mlpf(trained), arr), arr, load_decoding(trained))
    assert as_json(metrics["mlpf"]) == as_json(pf_metrics(mlpf, el))


def test_a_malformed_recorded_detector_is_one_line(
    wide_hcal: Path,
    trained: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(wide_hcal, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["detector"]["hcal_cell"] = -0.1
    (bad / "manifest.json").write_text(json.dumps(manifest))
    names = (str(bad / "manifest.json"), "'detector.hcal_cell'")
    out = tmp_path / "run"
    train = run_main(monkeypatch, capsys, "mlpf", "train", "--data", str(bad), "--out", str(out))
    assert "greater than 0" in assert_user_error(train, *names)
    assert not out.exists()
    evaluate = run_main(monkeypatch, capsys, "mlpf", "evaluate", str(trained), "--data", str(bad))
    assert_user_error(evaluate, *names)
