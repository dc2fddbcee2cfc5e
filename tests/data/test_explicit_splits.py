"""Explicit ``--data-train`` / ``--data-val`` / ``--data-test`` (weaver's ``name:glob``
groups included) instead of the hash split, and evaluation on the ``--data-test`` files."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from layoutfiles import quark_gluon
from typer.testing import CliRunner

from heptagon.cli import app
from heptagon.data.sources import RemoteFile
from heptagon.data.split import parse_groups, resolve_splits
from heptagon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_weaver_name_glob_groups() -> None:
    groups = parse_groups(
        ["qcd:/d/qcd_*.root", "/d/top.root", "qcd:/e/qcd.root", "root://host//store/x.root"]
    )
    assert groups == {
        "qcd": ["/d/qcd_*.root", "/e/qcd.root"],
        "test": ["/d/top.root", "root://host//store/x.root"],  # a URL's scheme is no name
    }
    assert parse_groups(["a:https://host/f.parquet"]) == {"a": ["https://host/f.parquet"]}


def test_explicit_sets_are_read_whole_and_recorded(tmp_path: Path) -> None:
    a, b = quark_gluon(tmp_path / "a.npz", n=10), quark_gluon(tmp_path / "b.npz", n=10)
    splits = resolve_splits(
        None, train=[f"x:{tmp_path}/a.*"], val=[b], test=["q:https://host/q.npz", str(a)]
    )
    assert splits.explicit
    assert (splits.train, splits.val) == ([a], [b])
    assert splits.test == {"q": [RemoteFile("https://host/q.npz")], "test": [a]}
    assert splits.fractions("val", (0.7, 0.15, 0.15)) == (0.0, 1.0, 0.0)
    assert splits.recorded()["files_test"] == {"q": ["https://host/q.npz"], "test": [str(a)]}
    hashed = resolve_splits([a, b])
    assert not hashed.explicit
    assert hashed.files("val") == [a, b]
    assert hashed.fractions("val", (0.7, 0.15, 0.15)) == (0.7, 0.15, 0.15)
    assert "files_val" not in hashed.recorded()


@pytest.mark.parametrize(
    ("data", "train", "val", "key"),
    [(["a.npz"], ["b.npz"], [], "--data"), (None, ["b.npz"], [], "--data-val")],
)
def test_a_mix_or_a_missing_set_names_the_option(
    data: list[str] | None, train: list[str], val: list[str], key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_splits(data, train=train, val=val)
    assert err.value.key == key


def test_train_and_evaluate_on_explicit_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("heptagon.evaluate.run.draw", lambda *args, **kwargs: [])  # no plots
    files = {name: quark_gluon(tmp_path / f"{name}.npz", n=n) for name, n in
             (("train", 120), ("val", 40), ("quarks", 30), ("gluons", 20))}  # fmt: skip
    run = tmp_path / "run"
    args = ["train", str(ROOT / "configs" / "qg_bdt.yaml"), "--out", str(run),
            "--data-train", f"qg:{files['train']}", "--data-val", str(files["val"]),
            "--data-test", f"quarks:{files['quarks']}",
            "--data-test", f"gluons:{files['gluons']}"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["files"] == [str(files["train"])]
    assert config["files_val"] == [str(files["val"])]
    assert config["split_rule"].startswith("explicit files")
    result = CliRunner().invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    # every entry of the test files, whole (no hash split): the union, and each group
    rows = {
        name: pq.read_metadata(run / "eval" / f"predictions_{name}.parquet").num_rows
        for name in ("test", "quarks", "gluons")
    }
    assert rows == {"test": 50, "quarks": 30, "gluons": 20}
    result = CliRunner().invoke(app, ["evaluate", str(run), "--data-test", str(files["val"])])
    assert result.exit_code == 0, result.output
    assert pq.read_metadata(run / "eval" / "predictions_test.parquet").num_rows == 40


def test_a_run_on_explicit_files_without_test_files_says_how_to_evaluate(tmp_path: Path) -> None:
    train, val = quark_gluon(tmp_path / "t.npz", n=60), quark_gluon(tmp_path / "v.npz", n=30)
    run = tmp_path / "run"
    args = ["train", str(ROOT / "configs" / "qg_bdt.yaml"), "--out", str(run),
            "--data-train", str(train), "--data-val", str(val)]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    result = CliRunner().invoke(app, ["evaluate", str(run)])
    assert isinstance(result.exception, ConfigError)
    assert result.exception.key == "--data-test"
