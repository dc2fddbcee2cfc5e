"""``heptagon dqm simulate|train|certify``: the typer sub-app (thin wrappers)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from heptagon.config import validate
from heptagon.errors import ConfigError
from heptagon.generate.options import DETECTOR_SET_HELP

__all__ = ["dqm_app"]

dqm_app = typer.Typer(
    help="Data-quality monitoring: simulate runs, train the methods, certify runs.",
    no_args_is_help=True,
)
console = Console()


def _progress() -> bool:
    return sys.stderr.isatty() or sys.stdout.isatty()


def _names(value: str, key: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ConfigError("needs at least one name", key=key)
    return names


def _size_range(value: str) -> tuple[float, float]:
    lo, _, hi = value.partition(":")
    try:
        pair = (float(lo), float(hi or lo))
    except ValueError:
        raise ConfigError(f"expected SIZE or MIN:MAX, got '{value}'", key="size") from None
    if not 0 < pair[0] <= pair[1]:
        raise ConfigError(f"need 0 < MIN <= MAX, got '{value}'", key="size")
    return pair


@dqm_app.command("simulate")
def simulate_cmd(
    out: Annotated[Path, typer.Option("--out", help="Directory for the runs' histograms.")],
    runs: Annotated[int, typer.Option("--runs", min=1, help="Number of runs.")] = 40,
    ls: Annotated[int, typer.Option("--ls", min=1, help="Lumisections per run.")] = 20,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed of the runs.")] = 0,
    first_run: Annotated[
        int, typer.Option("--first-run", min=1, help="Number of the first run.")
    ] = 1,
    events_per_ls: Annotated[
        float, typer.Option("--events-per-ls", min=0, help="Mean events per LS at nominal lumi.")
    ] = 1000.0,
    bad_fraction: Annotated[
        float, typer.Option("--bad-fraction", min=0, max=1, help="Fraction of runs with a fault.")
    ] = 0.3,
    faults: Annotated[
        str,
        typer.Option(
            "--faults",
            help="Comma-separated: dead_region, hot_region, noisy_towers, jes_shift, "
            "tracker_ineff, rate_drop.",
        ),
    ] = "dead_region,hot_region,noisy_towers,jes_shift,tracker_ineff,rate_drop",
    size: Annotated[
        str | None,
        typer.Option("--size", help="Fault size (SIZE or MIN:MAX, log-uniform) for all faults."),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option("--source", help="Generated jet dataset (default: OUT/source, made once)."),
    ] = None,
    source_jets: Annotated[
        int, typer.Option("--source-jets", min=1, help="Jets of the generated QCD source.")
    ] = 4000,
    pileup: Annotated[
        float | None,
        typer.Option(
            "--pileup",
            min=0,
            max=200,
            help="Mean pile-up of the generated source (heptagon generate's overlay).",
        ),
    ] = None,
    mitigation: Annotated[
        str,
        typer.Option("--mitigation", help="Pile-up mitigation of the source: none, chs, puppi."),
    ] = "none",
    pileup_library: Annotated[
        int, typer.Option("--pileup-library", min=1, help="Minimum-bias library events.")
    ] = 1000,
    detector_set: Annotated[
        list[str] | None,
        typer.Option(
            "--detector-set", help=f"{DETECTOR_SET_HELP} For the generated source (no --source)."
        ),
    ] = None,
) -> None:
    """Simulate runs and lumisections from a generated QCD jet sample, with faults."""
    from heptagon.apps.dqm.simulate import (
        SimulateConfig,
        SourceOptions,
        load_source,
        make_source,
        simulate,
    )
    from heptagon.artifacts.manifest import load_manifest
    from heptagon.io import make_dir, write_json_atomic

    kinds = _names(faults, "faults")
    fields: dict[str, object] = {
        "runs": runs,
        "ls_per_run": ls,
        "seed": seed,
        "first_run": first_run,
        "events_per_ls": events_per_ls,
        "bad_fraction": bad_fraction,
        "faults": kinds,
    }
    if size is not None:
        fields["sizes"] = dict.fromkeys(kinds, _size_range(size))
    cfg = validate(SimulateConfig, fields)
    opts = validate(
        SourceOptions,
        {"jets": source_jets, "pileup": pileup, "mitigation": mitigation}
        | {"pileup_library": pileup_library, "detector_set": detector_set},
    )
    if source is not None and pileup is not None:
        raise ConfigError("--pileup makes the source: not with --source", key="pileup")
    if source is not None and detector_set:
        raise ConfigError("--detector-set makes the source: not with --source", key="detector_set")
    given = None if source is None else load_source(source)
    make_dir(out)  # an output that cannot be written fails now, not after the simulation
    if source is None:
        source = make_source(out / "source", opts, show_progress=_progress())
    jets = given if given is not None else load_source(source)
    data = simulate(cfg, jets, show_progress=_progress())
    data.save(out)
    made_from = load_manifest(source)
    write_json_atomic(
        out / "config.json",
        {
            "simulate": cfg.model_dump(mode="json"),
            "source": str(source),
            "pileup": made_from.pileup,
            "detector": made_from.detector,
        },
    )
    n_bad = int(data.run_bad.sum())
    console.print(
        f"{len(data.runs)} runs ({n_bad} with a fault), {len(data.ls['run'])} LS -> {out}"
    )


@dqm_app.command("train")
def train_cmd(
    data: Annotated[Path, typer.Argument(help="Directory written by `dqm simulate`.")],
    out: Annotated[Path, typer.Option("--out", help="Model directory.")],
    methods: Annotated[
        str,
        typer.Option(
            "--methods",
            help="Comma-separated: chi2, beta_binomial, pca, autoencoder, conv_autoencoder.",
        ),
    ] = "chi2,beta_binomial,pca,autoencoder,conv_autoencoder",
    quantile: Annotated[
        float,
        typer.Option(
            "--quantile", min=0, max=1, help="Threshold quantile of good training scores."
        ),
    ] = 1.0,
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help="Epochs of both autoencoders (dense and conv).")
    ] = 30,
    classifiers: Annotated[
        bool,
        typer.Option("--classifiers/--no-classifiers", help="Feature ranking + KNN/GNB/SVM."),
    ] = True,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
) -> None:
    """Train and calibrate the methods on the good runs (classifiers on all labelled runs)."""
    from heptagon.apps.dqm.certify import TrainConfig, train_dir

    cfg = validate(
        TrainConfig,
        {
            "methods": _names(methods, "methods"),
            "quantile": quantile,
            "ae_epochs": epochs,
            "classifiers": classifiers,
            "seed": seed,
        },
    )
    model = train_dir(data, out, cfg)
    thresholds = ", ".join(f"{m} {c['max_ls'].threshold:.3g}" for m, c in model.calibration.items())
    console.print(f"model: {out} (LS thresholds: {thresholds})")
    if model.ranking:
        top = ", ".join(n for n, _ in model.ranking[:5])
        console.print(f"most important summaries: {top}")


@dqm_app.command("certify")
def certify_cmd(
    data: Annotated[Path, typer.Argument(help="Directory written by `dqm simulate`.")],
    model: Annotated[Path, typer.Option("--model", help="Directory written by `dqm train`.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for verdicts and report.")],
    method: Annotated[
        str,
        typer.Option(
            "--method", help="chi2 | beta_binomial | pca | autoencoder | conv_autoencoder"
        ),
    ] = "autoencoder",
    aggregate: Annotated[
        str, typer.Option("--aggregate", help="max_ls (worst LS) | run (summed histograms)")
    ] = "max_ls",
    plots: Annotated[bool, typer.Option("--plots/--no-plots")] = True,
) -> None:
    """Per-run and per-LS verdicts with the histograms that drove them, and a report."""
    from heptagon.apps.dqm.certify import certify_dir

    result = certify_dir(data, model, out, method=method, aggregate=aggregate, plots=plots)
    bad = ", ".join(map(str, result.bad_runs)) or "none"
    console.print(
        f"{len(result.bad_runs)} / {result.n_runs} runs bad ({bad}); "
        f"{result.n_bad_ls} / {result.n_ls} LS bad"
    )
    console.print(f"verdicts: {out / 'verdicts.json'}, report: {out / 'report.md'}")
