"""The HEPData submission validates, holds the numbers of metrics.json and is reproducible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hist
import numpy as np
import pytest
import yaml

from heptagon.errors import ExportError
from heptagon.physics import metrics as M
from heptagon.physics.experiment import Experiment
from heptagon.publish import hepdata


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    n = 400
    labels = np.r_[np.ones(n), np.zeros(n)]
    scores = np.clip(rng.normal(0.3 + 0.3 * labels, 0.15), 0, 1)
    weights = rng.uniform(0.5, 1.5, 2 * n)
    mass = rng.uniform(0, 300, 2 * n)
    pt, eta = rng.uniform(200, 1000, 2 * n), rng.uniform(-2.5, 2.5, 2 * n)
    roc = M.roc_curve(scores, labels, weights)
    wp = roc.at_signal_eff(0.5)
    axes = {
        "x_axis": hist.axis.Variable([200, 500, 1000], label="Jet pT [GeV]"),
        "y_axis": hist.axis.Regular(2, -2.5, 2.5, label="Jet eta"),
    }
    sig = labels == 1
    maps = {
        name: M.efficiency_map(scores[sel] >= wp.threshold, pt[sel], eta[sel], weights[sel], **axes)
        for name, sel in (("Top efficiency at 50% WP", sig), ("QCD mistag rate at 50% WP", ~sig))
    }
    model = tmp_path_factory.mktemp("run") / "model.onnx"
    model.write_bytes(b"not really onnx, only attached")
    metrics = M.binary_metrics(
        scores, labels, weights, mass=mass, efficiencies=(0.05, 0.3, 0.5), n_boot=20
    )
    return {"metrics": metrics, "roc": roc, "maps": maps, "model": model}


def _write(inputs: dict[str, Any], outdir: Path) -> Path:
    sub = hepdata.build_submission(
        inputs["metrics"],
        inputs["roc"],
        inputs["maps"],
        sample="top-vs-qcd test",
        model_path=inputs["model"],
        experiment=Experiment(sqrt_s_tev=13.6),
    )
    return hepdata.write_submission(sub, outdir)


def _table(outdir: Path, name: str) -> dict[str, Any]:
    docs = list(yaml.safe_load_all((outdir / "submission.yaml").read_text()))
    (doc,) = [d for d in docs if d.get("name") == name]
    return yaml.safe_load((outdir / doc["data_file"]).read_text())


# the validator, called directly here, leaves the data files it reads to the garbage collector
@pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning")
def test_submission_is_valid_and_holds_metrics_json(inputs: dict[str, Any], tmp_path: Path) -> None:
    from hepdata_validator.full_submission_validator import FullSubmissionValidator

    outdir = _write(inputs, tmp_path / "bundle" / "hepdata")
    assert FullSubmissionValidator().validate(directory=str(outdir))
    assert (tmp_path / "bundle" / "hepdata.tar.gz").stat().st_size > 0
    assert (outdir / "model.onnx").read_bytes() == inputs["model"].read_bytes()
    metrics = inputs["metrics"].to_json()

    rej = _table(outdir, "Background rejection at fixed signal efficiency")
    assert [v["value"] for v in rej["independent_variables"][0]["values"]] == [0.05, 0.3, 0.5]
    value, limit = rej["dependent_variables"]
    assert value["qualifiers"] == [  # the energy is the experiment's
        {"name": "Sample", "value": "top-vs-qcd test"},
        {"name": "SQRT(S)", "units": "GeV", "value": 13600},
    ]
    for key, row, lim in zip(("0.05", "0.3", "0.5"), value["values"], limit["values"], strict=True):
        expected = metrics["rejection_at_eff"][key]
        assert lim["value"] == pytest.approx(expected["lower_limit"], rel=1e-4)
        if expected["value"] is None:  # no background passes: HEPData's "-"
            assert row["value"] == "-"
            assert "errors" not in row
        else:
            assert row["value"] == pytest.approx(expected["value"], rel=1e-4)
            assert row["errors"][0]["symerror"] == pytest.approx(expected["err"], rel=1e-4)
    # the tightest working point is chosen so that no background passes
    assert metrics["rejection_at_eff"]["0.05"]["value"] is None

    eff = _table(outdir, "Signal efficiency at fixed mistag rate")
    for key, row in zip(("0.01", "0.001"), eff["dependent_variables"][0]["values"], strict=True):
        assert row["value"] == pytest.approx(metrics["eff_at_mistag"][key]["value"], rel=1e-4)
        assert row["errors"][0]["symerror"] == pytest.approx(
            metrics["eff_at_mistag"][key]["err"], rel=1e-4
        )

    jsd = _table(outdir, "Mass sculpting")["dependent_variables"][0]["values"][0]
    assert jsd["value"] == pytest.approx(metrics["jsd_inverse_at_eff"]["0.5"]["value"], rel=1e-4)

    roc = _table(outdir, "ROC curve")
    x = [v["value"] for v in roc["independent_variables"][0]["values"]]
    assert len(x) == len(hepdata.ROC_EFFICIENCIES)
    wp = inputs["roc"].at_signal_eff(0.5)
    i = hepdata.ROC_EFFICIENCIES.index(0.5)
    assert x[i] == pytest.approx(wp.signal_eff, rel=1e-4)
    assert roc["dependent_variables"][0]["values"][i]["value"] == pytest.approx(
        wp.background_eff, rel=1e-4
    )

    emap = inputs["maps"]["Top efficiency at 50% WP"]
    table = _table(outdir, "Top efficiency at 50% WP")
    assert table["independent_variables"][0]["values"][0] == {"low": 200, "high": 500}
    assert table["dependent_variables"][0]["values"][0]["value"] == pytest.approx(
        emap.efficiency[0, 0], rel=1e-4
    )


def test_rerun_gives_the_same_content(inputs: dict[str, Any], tmp_path: Path) -> None:
    first, second = _write(inputs, tmp_path / "a"), _write(inputs, tmp_path / "b")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert (
        sum(name.endswith(".yaml") for name in names) == 7
    )  # submission, ROC, 2 maps, 3 working-point tables
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # writing again over an existing submission replaces it
    again = _write(inputs, first)
    assert sorted(p.name for p in again.iterdir()) == names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "a.tar.gz", "b", "b.tar.gz"]


def test_invalid_submission_raises_and_keeps_the_old_one(
    inputs: dict[str, Any], tmp_path: Path
) -> None:
    outdir = _write(inputs, tmp_path / "hepdata")
    before = {p.name: p.read_bytes() for p in outdir.iterdir()}
    sub = hepdata.build_submission(
        inputs["metrics"], inputs["roc"], {}, sample="test", model_path=None
    )
    sub.add_additional_resource("a file in a folder", "folder/file.txt")  # '/' is not allowed
    with pytest.raises(ExportError, match="should not contain '/'"):
        hepdata.write_submission(sub, outdir)
    assert {p.name: p.read_bytes() for p in outdir.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hepdata", "hepdata.tar.gz"]


def test_no_energy_claimed_when_the_sample_is_unknown(
    inputs: dict[str, Any], tmp_path: Path
) -> None:
    sub = hepdata.build_submission(
        inputs["metrics"], inputs["roc"], {}, sample="user files", experiment=None
    )
    outdir = hepdata.write_submission(sub, tmp_path / "hepdata")
    rej = _table(outdir, "Background rejection at fixed signal efficiency")
    assert rej["dependent_variables"][0]["qualifiers"] == [
        {"name": "Sample", "value": "user files"}
    ]
    docs = list(yaml.safe_load_all((outdir / "submission.yaml").read_text()))
    keywords = [k["name"] for d in docs for k in d.get("keywords", [])]
    assert "cmenergies" not in keywords
    lumi = Experiment(sqrt_s_tev=14, lumi_fb=300)
    sub = hepdata.build_submission(
        inputs["metrics"], inputs["roc"], {}, sample="s", experiment=lumi
    )
    outdir = hepdata.write_submission(sub, tmp_path / "lumi")
    (value, _) = _table(outdir, "Background rejection at fixed signal efficiency")[
        "dependent_variables"
    ]
    assert {"name": "LUMINOSITY", "units": "fb$^{-1}$", "value": 300} in value["qualifiers"]
