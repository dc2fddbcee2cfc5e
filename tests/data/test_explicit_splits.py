"""Explicit ``--data-train`` / ``--data-val`` / ``--data-test`` (weaver's ``name:glob``
groups included) instead of the hash split, and evaluation on the ``--data-test`` files
(the commands end to end: tests/docs/test_inputs_doc.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
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
    [
        (["a.npz"], ["b.npz"], [], "--data"),
        (None, ["b.npz"], [], "--data-val"),
        (None, [], ["b.npz"], "--data-train"),
        (None, [], [], "--data"),
    ],
)
def test_a_mix_or_a_missing_set_names_the_option(
    data: list[str] | None, train: list[str], val: list[str], key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_splits(data, train=train, val=val)
    assert err.value.key == key


def test_a_run_on_explicit_files_without_test_files_says_how_to_evaluate(tmp_path: Path) -> None:
    train, val = quark_gluon(tmp_path / "t.npz", n=60), quark_gluon(tmp_path / "v.npz", n=30)
    run = tmp_path / "run"
    args = ["train", str(ROOT / "configs" / "qg_bdt.yaml"), "--out", str(run),
            "--data-train", str(train), "--data-val", str(val)]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    result = CliRunner().invoke(app, ["evaluate", str(run)])
    assert isinstance(result.exception, ConfigError)
    assert result.exception.key == "--data-test"
