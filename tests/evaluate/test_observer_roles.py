"""Observer roles: a user's own branch names (``fj_pt``, ``fj_sdmass``, ...) mapped to the
roles evaluation uses, so that efficiency maps and mass sculpting are computed; a role
without a source is logged, not silently dropped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from jetfiles import make_jets, write_parquet

from heptagon.cli import app

RENAMED = {"jet_pt": "fj_pt", "jet_eta": "fj_eta", "jet_sdmass": "fj_sdmass"}


def _experiment(path: Path, roles: dict[str, str] | None) -> Path:
    data: dict[str, object] = {
        "inputs": {"jet_features": {"vars": ["fj_pt", "fj_sdmass", "jet_nparticles"]}},
        "labels": ["label_QCD", "label_Tbqq"],
    }
    if roles is not None:
        data["observer_roles"] = roles
    path.write_text(yaml.safe_dump({"data": data, "model": {"name": "bdt"}}))
    return path


@pytest.fixture(scope="module")
def renamed_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("renamed")
    files = []
    for seed, label in enumerate(("QCD", "Tbqq")):
        jets = make_jets(200, label, seed)
        jets = {RENAMED.get(k, k): v for k, v in jets.items()}
        files.append(write_parquet(root / f"{label}.parquet", jets))
    return files


def _train_and_evaluate(experiment: Path, files: list[Path], run: Path) -> tuple[dict, str]:
    """The metrics, and what evaluate printed and logged."""
    args = ["train", str(experiment), "--out", str(run)]
    for f in files:
        args += ["--data", str(f)]
    assert CliRunner().invoke(app, args).exit_code == 0
    result = CliRunner().invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return json.loads((run / "eval" / "metrics.json").read_text()), result.output


def test_mapped_roles_give_maps_and_sculpting(tmp_path: Path, renamed_files: list[Path]) -> None:
    experiment = _experiment(tmp_path / "exp.yaml", RENAMED)
    metrics, said = _train_and_evaluate(experiment, renamed_files, tmp_path / "run")
    assert "observer_roles" not in said
    table = pq.read_table(tmp_path / "run" / "eval" / "predictions_test.parquet")
    for column in RENAMED:
        assert column in table.column_names
    masses = np.concatenate([pq.read_table(f, columns=["fj_sdmass"])[0] for f in renamed_files])
    assert np.isin(table["jet_sdmass"].to_numpy(), masses.astype(np.float32)).all()
    assert metrics["jsd_inverse_at_eff"]  # mass sculpting computed
    assert list((tmp_path / "run" / "eval" / "plots").glob("*efficiency*"))


def test_a_role_without_a_source_is_logged(tmp_path: Path, renamed_files: list[Path]) -> None:
    experiment = _experiment(tmp_path / "exp.yaml", None)
    metrics, said = _train_and_evaluate(experiment, renamed_files, tmp_path / "run")
    assert metrics["jsd_inverse_at_eff"] == {}  # no mass: no sculpting
    assert "observer_roles.jet_sdmass" in said
    assert "mass sculpting not computed" in said
    assert "observer_roles.jet_pt" in said


def test_weaver_monitor_variables_are_evaluation_observers(
    tmp_path: Path, renamed_files: list[Path]
) -> None:
    """weaver's ``monitor_variables`` (instead of ``observers``) reach the predictions."""
    experiment = _experiment(tmp_path / "exp.yaml", RENAMED)
    config = yaml.safe_load(experiment.read_text())
    config["data"]["monitor_variables"] = ["jet_nparticles"]
    experiment.write_text(yaml.safe_dump(config))
    _train_and_evaluate(experiment, renamed_files, tmp_path / "run")
    table = pq.read_table(tmp_path / "run" / "eval" / "predictions_test.parquet")
    assert "jet_nparticles" in table.column_names
    n = np.concatenate([pq.read_table(f, columns=["jet_nparticles"])[0] for f in renamed_files])
    assert np.isin(table["jet_nparticles"].to_numpy(), n).all()
