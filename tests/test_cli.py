"""The command line: stages listed, versions, data inspect, one-line errors with exit 2."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml


def heptagon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heptagon", *args], capture_output=True, text=True, check=False
    )


def test_help_lists_the_stages() -> None:
    res = heptagon("--help")
    assert res.returncode == 0
    for stage in ("generate", "data", "info"):
        assert stage in res.stdout


def test_info_prints_versions() -> None:
    import pythia8mc  # noqa: F401  (installed: its version must be shown)

    res = heptagon("info")
    assert res.returncode == 0
    assert "8.317.2" in res.stdout
    for pkg in ("fastjet", "torch", "onnxruntime", "uproot", "awkward"):
        assert pkg in res.stdout


def test_data_inspect_on_a_generated_sample(top_qcd_sample: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "data.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "inputs": {
                    "pf_features": {"length": 64, "vars": ["part_deta", "part_pt_log"]},
                    "jet_features": {"vars": ["jet_sdmass"]},
                },
                "labels": ["label_Tbqq", "label_QCD"],
            }
        )
    )
    res = heptagon(
        "data",
        "inspect",
        str(top_qcd_sample),
        "--config",
        str(cfg),
        "--plots",
        str(tmp_path / "plots"),
    )
    assert res.returncode == 0, res.stderr
    assert "jet_sdmass" in res.stdout
    assert "Tbqq" in res.stdout
    assert (tmp_path / "plots" / "jet_features.jet_sdmass.png").stat().st_size > 1000


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    res = heptagon("data", "inspect", str(tmp_path), "--config", str(tmp_path / "missing.yaml"))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "missing.yaml" in res.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    res = heptagon(
        "--debug", "data", "inspect", str(tmp_path), "--config", str(tmp_path / "missing.yaml")
    )
    assert res.returncode == 1
    assert "Traceback" in res.stderr


# ------------------------------------------- generate commands built from the option models


def _help(command: str) -> str:
    """``heptagon <command> --help`` (in process, wide enough for one line a field), box
    drawing and white space folded away."""
    from typer.testing import CliRunner

    from heptagon.cli import app

    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    return " ".join(res.output.replace("│", " ").split())


def test_generate_help_lists_every_sample_set_and_class() -> None:
    from heptagon.generate.processes import CATALOGUE, SAMPLE_SETS

    text = _help("generate")
    missing = [name for name in (*SAMPLE_SETS, *CATALOGUE) if name not in text]
    assert missing == []


def test_generate_events_help_lists_every_event_sample_and_its_processes() -> None:
    from heptagon.generate.processes import EVENT_SAMPLES

    text = _help("generate-events")
    for name, processes in EVENT_SAMPLES.items():
        shown = name if processes == (name,) else f"{name} ({', '.join(processes)})"
        assert shown in text


def test_the_help_shows_every_option_with_its_description() -> None:
    from heptagon.generate.options import EventOptions, GenerateOptions

    for command, model in (("generate", GenerateOptions), ("generate-events", EventOptions)):
        text = _help(command)
        for name, field in model.model_fields.items():
            if name != "sample":
                assert f"--{name.replace('_', '-')}" in text, (command, name)
            assert field.description is not None
            assert " ".join(field.description.split()) in text, (command, name)


def test_command_defaults_and_choices_are_the_models() -> None:
    """Each command's parameters are its model's fields: the same defaults, the same
    required fields, the same types (Literal choices), the lower bounds (a re-declared
    default, choice or bound would drift)."""
    import typer

    from heptagon.cli import app
    from heptagon.generate.options import EventOptions, GenerateOptions

    group = typer.main.get_command(app)
    for command, model in (("generate", GenerateOptions), ("generate-events", EventOptions)):
        params = {p.name: p for p in group.commands[command].params}  # type: ignore[attr-defined]
        assert set(params) == set(model.model_fields)
        for name, field in model.model_fields.items():
            param = params[name]
            assert param.required == field.is_required(), (command, name)
            if not field.is_required():
                assert param.default == field.default, (command, name)
            # typer drops the None of an optional field (None is its "not given")
            want = [a for a in typing.get_args(field.annotation) if a is not type(None)]
            optional = type(None) in typing.get_args(field.annotation)
            assert param.type_descriptor.annotation == (
                want[0] if optional else field.annotation
            ), (command, name)
        assert params["seed"].min == 0
        assert params["jobs"].min == 1
        assert params["shard_size"].min == 1  # gt=0 on an integer
    assert params["events"].required
    assert params["mpi"].default is True
    assert group.commands["generate"].params[0].name == "sample"  # type: ignore[attr-defined]


def test_generate_options_reach_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the command line is given is what ``generate`` runs with (no generation: the
    library call is replaced)."""
    from typer.testing import CliRunner

    import heptagon.generate.run
    from heptagon.cli import app
    from heptagon.generate.options import GenerateOptions

    seen: list[GenerateOptions] = []

    def fake(opts: GenerateOptions, *, show_progress: bool = True) -> None:
        seen.append(opts)
        raise SystemExit(0)

    monkeypatch.setattr(heptagon.generate.run, "generate", fake)
    args = ["generate", "qg", "--jets", "7", "--seed", "3", "--out", str(tmp_path / "s")]
    args += ["--no-mpi", "--radius", "0.5", "--format", "root", "--pileup", "20"]
    res = CliRunner().invoke(app, [*args, "--mitigation", "puppi"])
    assert res.exit_code == 0, res.output
    [opts] = seen
    assert (opts.sample, opts.jets, opts.seed, opts.out) == ("qg", 7, 3, tmp_path / "s")
    assert (opts.mpi, opts.radius, opts.format) == (False, 0.5, "root")
    assert (opts.pileup, opts.mitigation, opts.shard_size) == (20.0, "puppi", 5000)
    assert opts.pt_min is None
    assert opts.detector == "full"
    bad = CliRunner().invoke(app, [*args, "--mitigation", "softkiller"])
    assert bad.exit_code == 2
    assert "softkiller" in bad.output
