"""heptagon.artifacts: every JSON file heptagon writes and reads back goes through a
versioned pydantic model; unknown, newer or malformed files are one-line DataErrors."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar, get_args

import jsonschema
import numpy as np
import pytest

from heptagon.artifacts import Artifact, Record
from heptagon.artifacts.dqm import DqmMethod, DqmModelFile, DqmRuns, FeatureImportance
from heptagon.artifacts.manifest import (
    JetClass,
    JetManifest,
    SampleSettings,
    ShardFile,
    ShardRecord,
    load_manifest,
)
from heptagon.artifacts.metrics import (
    BinaryEvaluation,
    BinaryMetrics,
    Measured,
    RegressionMetrics,
    ResolutionBins,
    evaluation,
    read_evaluation,
)
from heptagon.artifacts.mlpf import MlpfOptionsFile
from heptagon.artifacts.run import ModelInfo
from heptagon.artifacts.schemas import ARTIFACTS, json_schema, write_schemas
from heptagon.errors import DataError
from heptagon.physics.metrics import binary_metrics


class _Part(Record):
    n: int


class _Toy(Artifact):
    SCHEMA_VERSION: ClassVar[int] = 3
    WHAT: ClassVar[str] = "toy file"
    name: str
    parts: tuple[_Part, ...] = ()


def test_base_round_trip_writes_current_version(tmp_path: Path) -> None:
    toy = _Toy(name="a", parts=[_Part(n=2)])
    toy.write(tmp_path / "toy.json")
    raw = json.loads((tmp_path / "toy.json").read_text())
    assert raw["schema_version"] == 3
    assert _Toy.read(tmp_path / "toy.json") == toy


@pytest.mark.parametrize(
    ("version", "words"),
    [(None, "no schema_version"), (4, "newer"), (2, "older"), ("3", "not an integer")],
)
def test_base_version_errors_name_file_and_key(tmp_path: Path, version: object, words: str) -> None:
    raw: dict[str, object] = {"name": "a"}
    if version is not None:
        raw["schema_version"] = version
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=words) as info:
        _Toy.read(path)
    assert info.value.file == str(path)
    assert info.value.key == "schema_version"
    assert "\n" not in str(info.value)


def test_base_malformed_field_names_dotted_key(tmp_path: Path) -> None:
    path = tmp_path / "toy.json"
    path.write_text(json.dumps({"schema_version": 3, "name": "a", "parts": [{"n": "x"}]}))
    with pytest.raises(DataError, match=r"parts\.0\.n") as info:
        _Toy.read(path)
    assert info.value.key == "parts.0.n"


def test_base_schema_pins_version() -> None:
    assert _Toy.model_json_schema()["properties"]["schema_version"]["const"] == 3


# ------------------------------------------------------------------ heptagon's artifacts

SHA = "ab" * 32


def _manifest() -> JetManifest:
    return JetManifest(
        kind="jets",
        sample="top-vs-qcd",
        description="top vs QCD",
        versions={"heptagon": "0.1.0"},
        generator={"beams_ecm_gev": 14000.0, "mpi": False},
        seed=1,
        jets_per_class=10,
        format="parquet",
        shard_size=10,
        selection={"radius": 0.8, "pt_min": 500.0},
        detector=None,
        classes={
            "QCD": JetClass(
                label="label_QCD",
                description="dijets",
                truth_rule={"kind": "none"},
                pythia_settings=["HardQCD:all = on"],
                jets=10,
                jets_selected=12,
                events_generated=300,
                n_tried=310,
                n_accepted=300,
                sigma_gen_pb=2.5e5,
                sigma_err_pb=1e3,
            )
        },
        files=[
            ShardFile(file="shards/QCD_0000.parquet", cls="QCD", entries=10, sha256=SHA, seed=7)
        ],
        branches=["jet_pt", "label_QCD"],
    )


def _binary() -> BinaryMetrics:
    return binary_metrics(
        np.r_[np.linspace(0.2, 1, 30), np.linspace(0, 0.8, 30)],
        np.r_[np.ones(30), np.zeros(30)],
        mass=np.linspace(10, 290, 60),
        n_boot=5,
    ).model_copy(update={"signal": "Tbqq"})


def _artifacts() -> list[Artifact]:
    regression = RegressionMetrics(
        response_median=Measured(value=1.0, err=0.01),
        response_iqr=Measured(value=0.2, err=0.01),
        resolution=Measured(value=0.1, err=None),
        resolution_vs={
            "true": ResolutionBins(
                edges=[0, 1, 2], median=[1, 1], iqr=[0.2, 0.2], resolution=[0.1, 0.1]
            )
        },
    )
    return [
        _manifest(),
        ShardRecord(
            file="shards/QCD_0000.parquet",
            cls="QCD",
            entries=10,
            sha256=SHA,
            seed=7,
            sigma_gen_pb=2.5e5,
            sigma_err_pb=1e3,
            n_tried=31,
            n_accepted=30,
        ),
        evaluation({"test": _binary(), "other": _binary()}, "test", SHA),
        evaluation({"test": regression}, "test", SHA),
        ModelInfo(
            name="mlp",
            options={"hidden": [8]},
            input_dims={"jet_features": 3},
            input_names=["jet_features"],
            num_classes=2,
            class_names=["QCD", "Tbqq"],
            task="classification",
            weights="checkpoints/best.pt",
        ),
        DqmModelFile(
            histograms=["occ"],
            config={"seed": 0},
            runs=DqmRuns(fit=3, calibration=1, bad=1),
            methods={"chi2": DqmMethod(ref_rate=1.5, top_bins=None)},
            thresholds={"chi2": {"ls": 2.0, "run": 3.0}},
            feature_ranking=[FeatureImportance(feature="mean_pt", importance=0.4)],
            classifier_features=["mean_pt"],
        ),
        MlpfOptionsFile(options={"epochs": 2, "lr": 1e-3}, model={"width": 64}),
        SampleSettings(settings={"sample": "top-vs-qcd", "seed": 5, "detector": None}),
    ]


@pytest.mark.parametrize("artifact", _artifacts(), ids=lambda a: type(a).__name__)
def test_round_trip(artifact: Artifact, tmp_path: Path) -> None:
    path = tmp_path / "artifact.json"
    artifact.write(path)
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == type(artifact).SCHEMA_VERSION
    back = type(artifact).read(path)
    assert back == artifact
    # the file is what its JSON Schema in docs/schemas describes
    name = next(n for n, (_, m) in ARTIFACTS.items() if type(artifact) in _members(m))
    jsonschema.validate(raw, json_schema(name))


def _members(model: object) -> tuple[object, ...]:
    """The classes of a model or of an ``Annotated`` tagged union of models."""
    args = get_args(model)
    return get_args(args[0]) if args else (model,)


def test_manifest_and_metrics_are_read_by_kind(tmp_path: Path) -> None:
    _manifest().write(tmp_path / "manifest.json")
    assert isinstance(load_manifest(tmp_path), JetManifest)
    metrics = evaluation({"test": _binary()}, "test", SHA)
    metrics.write(tmp_path / "metrics.json")
    back = read_evaluation(tmp_path / "metrics.json")
    assert isinstance(back, BinaryEvaluation)
    assert back.samples["test"] == _binary()  # the nominal sample, at the top level too
    assert back.auc == _binary().auc
    raw = json.loads((tmp_path / "metrics.json").read_text())
    raw["kind"] = "ranking"
    (tmp_path / "metrics.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match="unknown evaluation kind 'ranking'") as info:
        read_evaluation(tmp_path / "metrics.json")
    assert info.value.key == "kind"


@pytest.mark.parametrize("artifact", _artifacts()[:2], ids=["manifest", "shard-record"])
def test_a_newer_file_names_file_and_key(artifact: Artifact, tmp_path: Path) -> None:
    path = tmp_path / "artifact.json"
    raw = artifact.to_json() | {"schema_version": type(artifact).SCHEMA_VERSION + 1}
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match="newer than this heptagon reads") as info:
        type(artifact).read(path)
    assert (info.value.file, info.value.key) == (str(path), "schema_version")


def test_a_malformed_field_names_its_key(tmp_path: Path) -> None:
    raw = _manifest().to_json()
    raw["classes"]["QCD"]["sigma_gen_pb"] = "large"
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"classes\.QCD\.sigma_gen_pb") as info:
        load_manifest(tmp_path)
    assert info.value.key == "classes.QCD.sigma_gen_pb"


def test_a_newer_shard_record_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``heptagon generate`` resuming into a shard record of a newer heptagon: exit 2 and
    one line naming the record and ``schema_version``, nothing generated."""
    from heptagon.cli import main

    shards = tmp_path / "sample" / "shards"
    shards.mkdir(parents=True)
    (shards / "QCD_0000.parquet").write_bytes(b"PAR1")
    record = _artifacts()[1].to_json() | {"schema_version": ShardRecord.SCHEMA_VERSION + 1}
    (shards / ".QCD_0000.parquet.json").write_text(json.dumps(record))
    argv = [
        "heptagon",
        "generate",
        "top-vs-qcd",
        "--jets",
        "8",
        "--shard-size",
        "8",
        "--seed",
        "5",
        "--detector",
        "none",
        "--out",
        str(tmp_path / "sample"),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1
    assert str(shards / ".QCD_0000.parquet.json") in errors[0]
    assert "schema_version" in errors[0]
    assert "Traceback" not in errors[0]
    assert not (tmp_path / "sample" / "manifest.json").exists()


def test_docs_schemas_are_current() -> None:
    """docs/schemas/ is what ``python -m heptagon.artifacts docs/schemas`` writes from the
    models now: rerun it after changing an artifact."""
    docs = Path(__file__).resolve().parents[1] / "docs" / "schemas"
    on_disk = {p.name for p in docs.glob("*.schema.json")}
    assert on_disk == {f"{name}.schema.json" for name in ARTIFACTS}
    for name in ARTIFACTS:
        assert json.loads((docs / f"{name}.schema.json").read_text()) == json_schema(name), name


def test_schemas_are_written_by_the_module(tmp_path: Path) -> None:
    """The command docs/design.md shows, ``python -m heptagon.artifacts DIR``."""
    out = tmp_path / "schemas"
    res = subprocess.run(
        [sys.executable, "-m", "heptagon.artifacts", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert {Path(line).name for line in res.stdout.split()} == {
        f"{name}.schema.json" for name in ARTIFACTS
    }
    schema = json.loads((out / "shard-record.schema.json").read_text())
    assert schema["properties"]["schema_version"]["const"] == ShardRecord.SCHEMA_VERSION
    assert "schema_version" in schema["required"]
    assert write_schemas(tmp_path / "again") == sorted(
        (tmp_path / "again").glob("*.json"), key=lambda p: list(ARTIFACTS).index(p.name[:-12])
    )


def test_artifacts_import_no_stage() -> None:
    """Every stage reads and writes its files through heptagon.artifacts, so the package
    imports only heptagon's errors and file helpers, never a stage."""
    package = Path(__file__).resolve().parents[1] / "src" / "heptagon" / "artifacts"
    imported = set()
    for file in package.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    own = {m for m in imported if m.startswith("heptagon")}
    assert own  # the scan sees the package's imports
    assert all(
        m.startswith("heptagon.artifacts") or m in ("heptagon.errors", "heptagon.io") for m in own
    ), sorted(own)
