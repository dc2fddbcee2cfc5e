"""Every command of the CLI walked through the two faults any of them can meet: an input
that is not there, and an output that cannot be written (issue 15). Each must end in one
line naming the path and exit status 2, with nothing written.

The cases run in-process through :func:`heptagon.cli.main` (the real exit-status and
message path, without a subprocess per case). A command added to the CLI without a case
here fails :func:`test_every_command_is_walked`. The deeper faults (corrupt, truncated,
NaN, tampered, interrupted) of each stage are in the other ``test_faults_*`` modules.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import typer
from faults_helpers import run_main, without_log

from heptagon.cli import app

#: command -> argv with MISSING (an input path that does not exist) or BLOCKED (an output
#: path that cannot be created, even by root: below a regular file)
MISSING, BLOCKED = "{missing}", "{blocked}"
WALK: dict[str, list[list[str]]] = {
    "info": [],  # reads and writes no file
    "generate": [
        ["generate", "top-vs-qcd", "--jets", "5", "--seed", "1", "--out", BLOCKED],
    ],
    "generate-events": [
        ["generate-events", "dy", "--events", "5", "--seed", "1", "--out", BLOCKED],
    ],
    "demo": [["demo", "--jets", "10", "--out", BLOCKED]],
    "train": [
        ["train", MISSING, "--data", ".", "--out", "run"],
        ["train", "{experiment}", "--data", MISSING, "--out", "run"],
        ["train", "{experiment}", "--data", ".", "--out", "run", "--continue-from", MISSING],
    ],
    "evaluate": [
        ["evaluate", MISSING],
        ["evaluate", "run", "--data", ".", "--systematics", MISSING],
        ["evaluate", MISSING, "--pnn-mass", "100", "--data", "xbb", "--data", "qcd"],
    ],
    "ddt": [["ddt", MISSING]],
    "compare": [["compare", MISSING, "--out", "cmp"]],
    "export": [["export", MISSING]],
    "publish": [["publish", MISSING]],
    "predict": [["predict", MISSING, "x.parquet", "--out", "scores"]],
    "data inspect": [["data", "inspect", MISSING, "--config", "{data_config}"]],
    "data pnn": [["data", "pnn", MISSING, ".", "--out", "pnn"]],
    "data domains": [["data", "domains", MISSING, ".", "--out", "domains"]],
    "data mix": [
        ["data", "mix", MISSING, "--out", "mix", "--signal", "label_Tbqq", "--fractions", "1", "0"]
    ],
    "dqm simulate": [["dqm", "simulate", "--source", MISSING, "--out", "dqm"]],
    "dqm train": [["dqm", "train", MISSING, "--out", "model"]],
    "dqm certify": [["dqm", "certify", "d", "--model", MISSING, "--out", "verdicts"]],
    "mlpf generate": [["mlpf", "generate", "gun", "--events", "5", "--out", BLOCKED]],
    "mlpf train": [["mlpf", "train", "--data", MISSING, "--out", "run"]],
    "mlpf evaluate": [["mlpf", "evaluate", MISSING, "--data", "d"]],
    "mlpf export": [["mlpf", "export", MISSING]],
    "trigger features": [["trigger", "features", MISSING, "--out", "f.parquet"]],
    "trigger speed": [["trigger", "speed", MISSING]],
    "trigger train": [["trigger", "train", MISSING, "--out", "run"]],
    "trigger hls": [["trigger", "hls", MISSING, "--out", "hls"]],
    "trigger topup": [["trigger", "topup", MISSING, "f.parquet", "--out", "run2"]],
    "trigger ad": [["trigger", "ad", MISSING, "--out", "ad"]],
    "bundle inspect": [["bundle", "inspect", MISSING]],
    "refine train": [
        ["refine", "train", "--full", MISSING, "--fast", MISSING, "--columns", "x", "--out", "m"]
    ],
    "refine apply": [["refine", "apply", MISSING, "x.parquet", "--out", "refined"]],
    "sf generate": [["sf", "generate", "--probes", "5", "--seed", "1", "--out", BLOCKED]],
    "sf reveal": [["sf", "reveal", MISSING]],
    "sf measure": [
        ["sf", "measure", MISSING, "--sim", "s", "--data", "d", "--out", "sf", "--threshold", "0.5"]
    ],
    "sf closure": [["sf", "closure", MISSING]],
    "sf toys": [["sf", "toys", MISSING]],
    "configs list": [],  # reads the package only
    "configs show": [],  # an unknown name: tests/test_configs_cli.py
    "configs copy": [["configs", "copy", "top_pfn", BLOCKED]],
}

CASES = [(name, argv) for name, cases in WALK.items() for argv in cases]


def commands(group: click.Group, prefix: str = "") -> list[str]:
    """The names of every leaf command below ``group``, as typed (``dqm train``)."""
    out: list[str] = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        full = f"{prefix}{name}"
        out += commands(cmd, f"{full} ") if hasattr(cmd, "commands") else [full]
    return out


def test_every_command_is_walked() -> None:
    assert sorted(commands(typer.main.get_command(app))) == sorted(WALK)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "argv"), CASES, ids=[" ".join(a[:3]) for _, a in CASES])
def test_missing_input_or_blocked_output_is_one_line(
    name: str,
    argv: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "blocker").write_text("a file where a directory is needed\n")
    fill = {
        MISSING: str(tmp_path / "nowhere" / "gone"),
        BLOCKED: str(tmp_path / "blocker" / "out"),
        "{experiment}": str(Path(__file__).resolve().parents[2] / "configs" / "top_pfn.yaml"),
        "{data_config}": str(
            Path(__file__).resolve().parents[2] / "configs" / "data" / "top_kinematic.yaml"
        ),
    }
    culprit = fill[MISSING] if MISSING in argv else fill[BLOCKED]
    monkeypatch.chdir(work)
    res = run_main(monkeypatch, capsys, *(fill.get(a, a) for a in argv))
    err = without_log(res.stderr).strip()  # demo logs its first stage
    assert res.returncode == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("heptagon: error: "), err
    # the path is named (or a file in it: RUN/model.json for a run directory)
    assert str(Path(culprit).parent.name) + "/" + Path(culprit).name in err, err
    assert list(work.iterdir()) == [], f"{name} wrote {list(work.iterdir())}"
    assert not (tmp_path / "nowhere").exists()
