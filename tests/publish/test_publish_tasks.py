"""``publish`` beyond binary taggers (issue 20): a multi-class tagger's bundle used by
``predict`` with a valid HEPData record, a regression's response tables, the FAIR metadata
validated against the formats' schemas, and ``heptagon bundle inspect`` on a good and a
tampered bundle; the commands of docs/publishing.md run."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from hashlib import sha256
from importlib.metadata import version
from pathlib import Path

import jsonschema
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from doc_pages import bash_lines
from fair_helpers import SCHEMAS, cff_schema, codemeta_problems, codemeta_terms

import heptagon
from heptagon.artifacts.metrics import MulticlassMetrics
from heptagon.artifacts.schemas import json_schema
from heptagon.errors import ConfigError
from heptagon.evaluate.analysis import analyse
from heptagon.evaluate.inference import Predictions
from heptagon.infer.predict import predict
from heptagon.publish.bundle import publish
from heptagon.publish.fair import FairOptions
from heptagon.publish.hepdata import (
    submission_of,
    task_tables,
    validate_submission,
    write_submission,
)
from heptagon.train.run import train

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
FAST = ["train.epochs=1", "train.progress=false"]
OPTIONS = FairOptions(
    license="mit", model_version="2.1.0", identifier="https://doi.org/10.5281/zenodo.1234567",
    authors=("Doe, Jane", "CMS-like analysis group"),
)  # fmt: skip


@pytest.fixture(scope="module")
def multiclass(event_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ttH / ttbar / DY tagger, published with the options above."""
    run = tmp_path_factory.mktemp("publish-multiclass") / "run"
    train(CONFIGS / "analysis_dnn_multiclass.yaml", event_sample, run, overrides=FAST)
    publish(run, options=OPTIONS, say=lambda _: None)
    return run


def _table(bundle: Path, name: str) -> dict:
    """A HEPData table of the bundle by its name (as submission.yaml lists it)."""
    docs = list(yaml.safe_load_all((bundle / "hepdata" / "submission.yaml").read_text()))
    (entry,) = [d for d in docs if d.get("name") == name]
    return yaml.safe_load((bundle / "hepdata" / entry["data_file"]).read_text())


def _values(table: dict, i: int = 0) -> list:
    return [v["value"] for v in table["dependent_variables"][i]["values"]]


def test_multiclass_bundle_predicts_and_its_hepdata_record_is_valid(
    multiclass: Path, event_sample: Path, tmp_path: Path
) -> None:
    bundle = multiclass / "bundle"
    metrics = json.loads((multiclass / "eval" / "metrics.json").read_text())
    classes = list(metrics["per_class"])  # the classes the tiny test split holds
    outputs = json.loads((bundle / "metadata.json").read_text())["outputs"]
    assert len(outputs) == 3
    assert sorted([*classes, *metrics["missing_classes"]]) == sorted(outputs)
    validate_submission(bundle / "hepdata")  # raises with the validator's messages
    # the AUC per class and each class's working points hold metrics.json's numbers
    aucs = _values(_table(bundle, "AUC per class"))
    expected = [metrics["per_class"][c]["auc"]["value"] for c in classes]
    np.testing.assert_allclose(np.asarray(aucs, dtype=float), expected, rtol=1e-4)
    for cls in classes:
        wp = _table(bundle, f"{cls} vs rest: Signal efficiency at fixed mistag rate")
        quoted = _values(wp)
        want = [v["value"] for v in metrics["per_class"][cls]["eff_at_mistag"].values()]
        assert [None if q == "-" else pytest.approx(float(q), rel=1e-4) for q in quoted] == want
        assert _table(bundle, f"{cls} vs rest: ROC curve")["independent_variables"]
    confusion = _values(_table(bundle, "Confusion matrix"))
    np.testing.assert_allclose(
        np.asarray(confusion, dtype=float), np.ravel(metrics["confusion"]["matrix"]), atol=1e-4
    )
    # the bundle alone scores files: one probability per class, summing to one
    shard = sorted(event_sample.glob("shards/*.parquet"))[0]
    (out,) = predict(bundle, [shard], tmp_path / "scores", progress=False)
    table = pq.read_table(out)
    scores = np.stack([table[f"score_{c}"].to_numpy() for c in outputs], axis=1)
    assert scores.shape == (pq.read_metadata(shard).num_rows, 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "## Working points, each class vs the rest" in card
    assert "- Licence: MIT (SPDX); model version 2.1.0." in card


def test_fair_files_match_their_schemas_and_the_run(multiclass: Path, event_sample: Path) -> None:
    bundle = multiclass / "bundle"
    files = {
        "CITATION.cff": yaml.safe_load((bundle / "CITATION.cff").read_text()),
        "codemeta.json": json.loads((bundle / "codemeta.json").read_text()),
        ".zenodo.json": json.loads((bundle / ".zenodo.json").read_text()),
        "metadata.json": json.loads((bundle / "metadata.json").read_text()),
    }
    # the real CFF 1.2.0 schema and CodeMeta 3.0 terms (tests/publish/test_fair_schemas.py)
    cff_check = jsonschema.Draft7Validator(cff_schema(), format_checker=jsonschema.FormatChecker())
    assert not list(cff_check.iter_errors(files["CITATION.cff"]))
    assert not codemeta_problems(files["codemeta.json"], *codemeta_terms())
    schemas = {
        ".zenodo.json": json.loads((SCHEMAS / "zenodo.schema.json").read_text()),
        "metadata.json": json_schema("bundle-metadata"),
    }
    for name, schema in schemas.items():
        jsonschema.validate(files[name], schema)
    cff, codemeta, zenodo, meta = files.values()
    # the user's licence (canonical SPDX), version, identifier and authors, in every file
    assert (cff["license"], codemeta["license"], zenodo["license"]) == (
        "MIT", "https://spdx.org/licenses/MIT", "mit",
    )  # fmt: skip
    assert cff["version"] == codemeta["version"] == zenodo["version"] == "2.1.0"
    assert cff["identifiers"] == [{"type": "doi", "value": "10.5281/zenodo.1234567"}]
    assert zenodo["doi"] == "10.5281/zenodo.1234567"
    assert cff["authors"] == [
        {"family-names": "Doe", "given-names": "Jane"}, {"name": "CMS-like analysis group"},
    ]  # fmt: skip
    assert [c["name"] for c in zenodo["creators"]] == ["Doe, Jane", "CMS-like analysis group"]
    # the training data is the dataset's manifest, by hash
    data = meta["training_data"]
    assert (
        data["manifest_sha256"] == sha256((event_sample / "manifest.json").read_bytes()).hexdigest()
    )
    manifest = json.loads((event_sample / "manifest.json").read_text())
    assert data["seed"] == manifest["seed"]
    assert data["entries"] == {c: v["events"] for c, v in manifest["classes"].items()}
    # the environment: this Python and these packages
    env = meta["environment"]
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["packages"]["torch"]["version"] == version("torch")
    assert env["heptagon"] == heptagon.__version__
    # every metadata file is covered by SHA256SUMS
    listed = {line.split("  ", 1)[1] for line in (bundle / "SHA256SUMS").read_text().splitlines()}
    assert set(files) | {"metrics.json"} <= listed


def test_default_licence_and_empty_identifier(multiclass: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(multiclass, run, ignore=shutil.ignore_patterns("bundle"))
    bundle = publish(run, say=lambda _: None)
    meta = json.loads((bundle / "metadata.json").read_text())
    assert (meta["license"], meta["model_version"], meta["identifier"]) == (
        "CC-BY-4.0", "1.0.0", None,
    )  # fmt: skip
    assert "identifiers" not in yaml.safe_load((bundle / "CITATION.cff").read_text())
    assert "doi" not in json.loads((bundle / ".zenodo.json").read_text())


@pytest.mark.parametrize(
    ("options", "key"),
    [
        (FairOptions(license="not a licence"), "--license"),
        (FairOptions(model_version=" "), "--model-version"),
        (FairOptions(authors=("",)), "--author"),
    ],
)
def test_bad_fair_options_are_config_errors(options: FairOptions, key: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        publish(tmp_path / "no-run", options=options)
    assert err.value.key == key
    assert not (tmp_path / "no-run").exists()


def _heptagon(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    """``heptagon ARGS`` in-process through :func:`heptagon.cli.main`: exit status, out, err."""
    from heptagon.cli import main

    monkeypatch.setattr(sys, "argv", ["heptagon", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    return int(exit_.value.code or 0), out.out, out.err


def test_bundle_inspect_reports_and_refuses_a_tampered_bundle(
    multiclass: Path,
    event_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = multiclass / "bundle"
    code, out, err = _heptagon(monkeypatch, capsys, "bundle", "inspect", str(bundle))
    assert code == 0, err
    meta = json.loads((bundle / "metadata.json").read_text())
    pre = json.loads((bundle / "preprocess.json").read_text())
    for name in pre["input_names"]:
        assert f"  {name} (batch, {len(pre[name]['var_names'])})" in out
    assert f"outputs: {', '.join(meta['outputs'])}" in out
    assert f"manifest sha256 {meta['training_data']['manifest_sha256']}" in out
    assert "licence MIT; identifier https://doi.org/10.5281/zenodo.1234567" in out
    assert re.search(r"intact \(\d+ files match SHA256SUMS\)", out)
    assert " vs rest: AUC " in out
    # one altered byte in any listed file: exit 2, one line naming the file
    for name in ("metadata.json", "hepdata/submission.yaml"):
        copy = tmp_path / name.replace("/", "_")
        shutil.copytree(bundle, copy)
        target = copy / name
        target.write_bytes(target.read_bytes() + b" ")
        code, out, err = _heptagon(monkeypatch, capsys, "bundle", "inspect", str(copy))
        assert code == 2
        assert str(target) in err
        assert len(err.strip().splitlines()) == 1
        assert "Traceback" not in err


def test_docs_publishing_commands_run(
    multiclass: Path,
    event_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = bash_lines((ROOT / "docs" / "publishing.md").read_text())
    run = tmp_path / "run"
    shutil.copytree(multiclass, run, ignore=shutil.ignore_patterns("bundle"))
    where = {"runs/multiclass": str(run), "data/tth-analysis": str(event_sample),
             "scores/": str(tmp_path / "scores")}  # fmt: skip
    assert [line.split()[1] for line in lines] == ["publish", "bundle", "predict"]
    for line in lines:
        args = [where.get(a, a.replace("runs/multiclass", str(run))) for a in shlex.split(line)]
        code, out, err = _heptagon(monkeypatch, capsys, *args[1:])
        assert code == 0, f"{line}\n{out}\n{err}"
    assert json.loads((run / "bundle" / "metadata.json").read_text())["authors"] == ["Doe, Jane"]
    assert len(list((tmp_path / "scores").glob("*.parquet"))) == len(
        list(event_sample.glob("shards/*.parquet"))
    )


def test_regression_bundle_quotes_response_and_resolution(
    event_sample: Path, tmp_path: Path
) -> None:
    run = tmp_path / "higgs_pt"
    train(CONFIGS / "analysis_higgs_pt_mlp.yaml", event_sample, run, overrides=FAST)
    bundle = publish(run, say=lambda _: None)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    table = _table(bundle, "Response and resolution")
    for i, key in enumerate(("response_median", "response_iqr", "resolution")):
        (quoted,) = _values(table, i)
        assert float(quoted) == pytest.approx(metrics[key]["value"], rel=1e-4)
    for key, bins in metrics["resolution_vs"].items():
        binned = _table(bundle, f"Response in bins of {key}")
        finite = [r for r in bins["resolution"] if np.isfinite(r)]
        np.testing.assert_allclose(np.asarray(_values(binned, 2), dtype=float), finite, rtol=1e-4)
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["task"] == "regression"
    assert "the regressed value" in (bundle / "MODEL_CARD.md").read_text()
    (out,) = predict(bundle, sorted(event_sample.glob("shards/*.parquet"))[:1], tmp_path / "s",
                     progress=False)  # fmt: skip
    assert [c for c in pq.read_table(out).column_names if c.startswith("score_")] == [
        f"score_{meta['outputs'][0]}"
    ]


def test_anomaly_bundle_quotes_each_held_out_class(event_sample: Path, tmp_path: Path) -> None:
    run = tmp_path / "ae"
    train(CONFIGS / "ad_l1_ae.yaml", event_sample, run, overrides=[*FAST, "train.batch_size=64"])
    bundle = publish(run, say=lambda _: None)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    score = metrics["score"]
    by_class = metrics["scores"][score]
    table = _table(bundle, f"Anomaly score {score}")
    assert [v["value"] for v in table["independent_variables"][0]["values"]] == list(by_class)
    quoted = [float(v) for v in _values(table, 2)]
    want = [c["eff_at_rate"]["signal_eff"]["value"] for c in by_class.values()]
    np.testing.assert_allclose(quoted, want, rtol=1e-4)
    meta = json.loads((bundle / "metadata.json").read_text())
    assert (meta["task"], meta["outputs"]) == ("anomaly", [f"anomaly_{score}"])


def test_multiclass_tables_with_a_qcd_class_quote_each_signal_vs_qcd(tmp_path: Path) -> None:
    """JetClass-like: each signal vs QCD gets its ROC and working points, the numbers of
    the evaluation's pairwise metrics, in a record hepdata-validator accepts."""
    rng = np.random.default_rng(3)
    classes = ["Hbb", "Hcc", "QCD"]
    labels = rng.integers(0, 3, 3000)
    probs = rng.dirichlet(np.ones(3), 3000)
    probs[np.arange(3000), labels] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    pred = Predictions("test", classes, probs, labels, rng.uniform(0.5, 1.5, 3000))
    result = analyse(pred, n_boot=5)
    assert isinstance(result.metrics, MulticlassMetrics)
    tables = task_tables(result.metrics, sample="jetclass-like", rocs=result.rocs)
    write_submission(submission_of(tables), tmp_path / "hepdata")  # validates
    names = {t.name for t in tables}
    for cls in ("Hbb", "Hcc"):
        assert f"{cls} vs QCD: ROC curve" in names
        table = _table(tmp_path, f"{cls} vs QCD: Background rejection at fixed signal efficiency")
        want = [v.value for v in result.metrics.pairwise_vs_QCD[cls].rejection_at_eff.values()]
        assert [
            None if q == "-" else pytest.approx(float(q), rel=1e-4) for q in _values(table)
        ] == want
    assert "QCD vs QCD: ROC curve" not in names
    aucs = _table(tmp_path, "AUC per class")
    assert _values(aucs, 1)[2] == "-"  # QCD has no AUC vs itself
