"""heptagon installed from its wheel, outside this checkout, works.

The wheel is built (offline, no build isolation) from a copy of the project's sources and
installed into a fresh virtual environment in a temporary folder. The dependencies are not
installed again (minutes): a ``.pth`` file lends the fresh environment the project
environment's site-packages, behind its own, so heptagon itself is imported from the wheel
and the configs come from the package data. Every command runs in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import heptagon.configs

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = Path(heptagon.configs.__file__).parent


@dataclass(frozen=True)
class Installed:
    """The fresh environment with the wheel in it, and a working folder outside the repo."""

    wheel: Path
    venv: Path
    work: Path

    def heptagon(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the environment's ``heptagon`` script in the working folder; exit 0."""
        res = subprocess.run(
            [str(self.venv / "bin" / "heptagon"), *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.work,
            env=outside_env(),
            timeout=timeout,
        )
        assert res.returncode == 0, f"heptagon {' '.join(args)}:\n{res.stdout}\n{res.stderr}"
        return res


def outside_env() -> dict[str, str]:
    """This process's environment without what would point Python at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _run(*cmd: str | Path) -> None:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"{cmd}:\n{res.stdout}\n{res.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"  # what a clean clone has: no build leftovers, no egg-info
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    _run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "-w", base / "dist", source,
    )  # fmt: skip
    (wheel,) = (base / "dist").glob("heptagon-*.whl")
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies: appended to sys.path, after the fresh site-packages (the project
    # environment's own .pth files, the editable heptagon among them, are not read)
    (Path(site) / "heptagon-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-index", wheel,
    )  # fmt: skip
    work = base / "work"
    work.mkdir()
    return Installed(wheel, venv, work)


def test_wheel_ships_the_code_and_every_config(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert "heptagon/py.typed" in names
    assert "heptagon/cli.py" in names
    shipped = {f"heptagon/configs/{p.relative_to(SHIPPED)}" for p in SHIPPED.rglob("*.yaml")}
    assert len(shipped) > 30
    assert shipped <= names
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]


def test_installed_heptagon_runs_outside_the_checkout(installed: Installed) -> None:
    where = subprocess.run(
        [installed.venv / "bin" / "python", "-c", "import heptagon; print(heptagon.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=installed.work,
        env=outside_env(),
    ).stdout.strip()
    assert Path(where).is_relative_to(installed.venv), where
    assert "0.1.0" in installed.heptagon("info").stdout
    listed = installed.heptagon("configs", "list").stdout.splitlines()
    assert [line.split()[0] for line in listed] == heptagon.configs.names()
    installed.heptagon("configs", "copy", "top_particlenet_lite", ".")
    assert (installed.work / "data" / "top_kinematic.yaml").exists()
    installed.heptagon(
        "generate", "top-vs-qcd", "--jets", "60", "--seed", "1", "--out", "s",
        "--shard-size", "60",
    )  # fmt: skip
    res = installed.heptagon(
        "train", "top_particlenet_lite.yaml", "--data", "s", "--out", "runs/pn",
        "--set", "train.epochs=1", "--set", "train.batch_size=32",
    )  # fmt: skip
    assert "1 epochs" in res.stdout
    assert (installed.work / "runs" / "pn" / "checkpoints" / "best.pt").exists()


@pytest.mark.slow
def test_installed_demo_runs_outside_the_checkout(installed: Installed) -> None:
    res = installed.heptagon("demo", "--jets", "200", "--out", "demo", timeout=1800)
    assert "bundle:" in res.stdout
    assert (installed.work / "demo" / "runs" / "particlenet_lite" / "model.json").exists()
    assert (installed.work / "demo" / "compare" / "compare.md").exists()
    assert list((installed.work / "demo" / "predictions").glob("*.parquet"))
