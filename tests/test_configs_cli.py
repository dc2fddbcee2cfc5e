"""``heptagon configs list|show|copy``: the shipped configs handed to the user."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from heptagon import configs
from heptagon.apps.demo import DEMO_JETS
from heptagon.cli import app
from heptagon.train.experiment import load_experiment

SHIPPED = Path(configs.__file__).parent
EXPERIMENTS = sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def heptagon(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heptagon", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def user_error(res: subprocess.CompletedProcess[str]) -> str:
    """The one-line message of a user error (exit 2, no traceback)."""
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("heptagon: error: ")
    return lines[0]


def test_names_are_the_shipped_files() -> None:
    data = sorted(f"data/{p.stem}" for p in (SHIPPED / "data").glob("*.yaml"))
    assert configs.names() == EXPERIMENTS + data
    assert "top_particlenet_lite" in EXPERIMENTS
    assert "data/top_kinematic" in data


@pytest.mark.parametrize("name", configs.names())
def test_every_config_has_a_one_line_description(name: str) -> None:
    text = configs.describe(name)
    assert text
    assert "\n" not in text
    assert not text.startswith("#")
    assert text.count("(") == text.count(")")  # not cut inside a parenthesis


def test_description_is_the_first_sentence_of_the_comment() -> None:
    assert configs.describe("pnn_xbb") == "Parameterised X -> bb tagger"
    # a ':' inside parentheses does not end it
    assert configs.describe("data/w_jet") == (
        "W vs QCD (sample set w-vs-qcd: R = 0.8, pT 500-1000 GeV) with high-level jet features"
    )


def test_list_prints_every_name_with_its_description() -> None:
    res = heptagon("configs", "list")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == len(configs.names())
    for line, name in zip(lines, configs.names(), strict=True):
        assert line.split()[0] == name
        assert line.endswith(configs.describe(name))


def test_show_prints_the_yaml() -> None:
    res = heptagon("configs", "show", "top_particlenet_lite")
    assert res.returncode == 0, res.stderr
    assert res.stdout == (SHIPPED / "top_particlenet_lite.yaml").read_text()
    res = heptagon("configs", "show", "data/top_kinematic.yaml")  # the suffix is allowed
    assert res.stdout == (SHIPPED / "data" / "top_kinematic.yaml").read_text()


def test_unknown_name_is_one_line_with_close_matches(tmp_path: Path) -> None:
    for command in (("show", "top_particlenet_lit"), ("copy", "top_particlenet_lit", "out")):
        message = user_error(heptagon("configs", *command, cwd=tmp_path))
        assert "'top_particlenet_lit'" in message
        assert "top_particlenet_lite" in message.split("did you mean", 1)[1]
    assert not (tmp_path / "out").exists()
    message = user_error(heptagon("configs", "show", "zzzz"))
    assert "'zzzz'" in message
    assert "did you mean" not in message


def test_copy_brings_the_data_config_and_trains_as_shipped(tmp_path: Path) -> None:
    res = heptagon("configs", "copy", "top_particlenet_lite", str(tmp_path / "mine"))
    assert res.returncode == 0, res.stderr
    copied = tmp_path / "mine" / "top_particlenet_lite.yaml"
    data = tmp_path / "mine" / "data" / "top_kinematic.yaml"
    assert res.stdout.splitlines() == [f"wrote {copied}", f"wrote {data}"]
    assert copied.read_text() == (SHIPPED / "top_particlenet_lite.yaml").read_text()
    assert data.read_text() == (SHIPPED / "data" / "top_kinematic.yaml").read_text()
    assert sorted(p.name for p in (tmp_path / "mine").rglob("*")) == [
        "data",
        "top_kinematic.yaml",
        "top_particlenet_lite.yaml",
    ]  # no temporary file left


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_copy_loads_like_the_shipped_one(name: str, tmp_path: Path) -> None:
    written = configs.copy(name, tmp_path)
    assert written[0] == tmp_path / f"{name}.yaml"
    shipped = load_experiment(SHIPPED / f"{name}.yaml")
    assert load_experiment(written[0]).model_dump() == shipped.model_dump()


def test_copy_of_a_data_config_keeps_its_folder(tmp_path: Path) -> None:
    assert configs.copy("data/top_kinematic", tmp_path) == [
        tmp_path / "data" / "top_kinematic.yaml"
    ]


def test_copy_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    data = tmp_path / "data" / "top_kinematic.yaml"
    data.parent.mkdir()
    data.write_text("mine\n")
    res = heptagon("configs", "copy", "top_particlenet_lite", str(tmp_path))
    assert str(data) in user_error(res)
    assert "--force" in res.stderr
    assert data.read_text() == "mine\n"
    assert not (tmp_path / "top_particlenet_lite.yaml").exists()  # nothing written
    res = heptagon("configs", "copy", "top_particlenet_lite", str(tmp_path), "--force")
    assert res.returncode == 0, res.stderr
    assert data.read_text() == (SHIPPED / "data" / "top_kinematic.yaml").read_text()


def test_copy_into_a_file_is_one_line_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder\n")
    res = heptagon("configs", "copy", "top_particlenet_lite", str(blocker / "sub"))
    assert str(blocker) in user_error(res)
    assert blocker.read_text() == "a file, not a folder\n"


def test_demo_jets_option_defaults_to_the_demo_size() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    (jets,) = [p for p in group.commands["demo"].params if p.name == "jets"]
    assert jets.default == DEMO_JETS
