"""``heptagon mlpf generate|train|evaluate|export``: the typer sub-app (thin wrappers)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from heptagon.config import validate
from heptagon.generate.options import DETECTOR_SET_HELP

__all__ = ["mlpf_app"]

mlpf_app = typer.Typer(
    help="Machine-learned particle flow: element samples, MLPF training, comparison with the "
    "rule-based PF.",
    no_args_is_help=True,
)
console = Console()


@mlpf_app.command("generate")
def generate_cmd(
    sample: Annotated[str, typer.Argument(help="ttbar | qcd | gun")],
    events: Annotated[int, typer.Option("--events", min=1, help="Number of events.")],
    out: Annotated[Path, typer.Option("--out", help="Sample directory.")],
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
    pileup: Annotated[
        float, typer.Option("--pileup", min=0, help="Mean pile-up (default 0).")
    ] = 0.0,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Worker processes.")] = 1,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Events per shard.")] = 500,
    detector_set: Annotated[
        list[str] | None, typer.Option("--detector-set", help=DETECTOR_SET_HELP)
    ] = None,
) -> None:
    """Detector elements (tracks, towers) with per-element targets, sharded + manifest."""
    from heptagon.generate.elements import ElementOptions, generate_elements

    opts = validate(
        ElementOptions,
        {
            "sample": sample,
            "events": events,
            "out": out,
            "seed": seed,
            "pileup": pileup,
            "jobs": jobs,
            "shard_size": shard_size,
            "detector_set": detector_set,
        },
    )
    summary = generate_elements(opts, show_progress=sys.stderr.isatty())
    console.print(f"{events} {sample} events in {out} ({summary.wall_s:.1f} s)")


@mlpf_app.command("train")
def train_cmd(
    data: Annotated[Path, typer.Option("--data", help="Element sample directory.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory.")],
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    batch_events: Annotated[int, typer.Option("--batch-events", min=1)] = 8,
    lr: Annotated[float, typer.Option("--lr", min=0)] = 1e-3,
    width: Annotated[int, typer.Option("--width", min=1)] = 64,
    layers: Annotated[int, typer.Option("--layers", min=1)] = 3,
    bin_size: Annotated[int, typer.Option("--bin-size", min=1)] = 64,
    class_weight_power: Annotated[
        float,
        typer.Option(
            "--class-weight-power", min=0, help="Class weights frequency^-power (0: none)."
        ),
    ] = 0.25,
    energy_loss: Annotated[
        str, typer.Option("--energy-loss", help="log | ratio (pT and energy loss).")
    ] = "ratio",
    regression_pt_power: Annotated[
        float,
        typer.Option("--regression-pt-power", help="Regression loss weight pT^power."),
    ] = 1.0,
    lr_schedule: Annotated[str, typer.Option("--lr-schedule", help="cosine | constant")] = "cosine",
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", min=0, max=1, help="Events held out for validation.")
    ] = 0.1,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=0,
            max=1,
            help="Particle probability threshold (default: on validation).",
        ),
    ] = None,
    track_momentum: Annotated[
        bool,
        typer.Option(
            "--track-momentum/--regressed-momentum",
            help="Charged particles from tracks keep the track momentum (or the regressed).",
        ),
    ] = True,
    patience: Annotated[
        int | None,
        typer.Option(
            "--patience", min=1, help="Stop after this many epochs without a lower val loss."
        ),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="auto (CUDA when there is one) | cpu | cuda.")
    ] = "auto",
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the run in --out from checkpoints/last.pt."),
    ] = False,
) -> None:
    """Train MLPF on an element sample (torchrun: data-parallel)."""
    values = dict(locals())  # the options, named as MLPFTrainOptions' fields below
    from heptagon.apps.mlpf.training import MLPFTrainOptions, train_mlpf

    del values["resume"]
    values["n_layers"] = values.pop("layers")
    opts = validate(MLPFTrainOptions, values)
    console.print(f"model in {train_mlpf(opts, resume=resume)}")


@mlpf_app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory of `heptagon mlpf train`.")],
    data: Annotated[Path, typer.Option("--data", help="Element sample to evaluate on.")],
) -> None:
    """MLPF vs the rule-based PF vs the targets: RUN/eval/metrics.json and a table."""
    from heptagon.apps.mlpf.run import evaluate_mlpf

    m = evaluate_mlpf(run, data)
    table = Table(title=f"{m['events']} events, {m['mean_elements']:.0f} elements/event")
    table.add_column("")
    # with pile-up, also each with PUPPI on its particles
    algos = [a for a in ("mlpf", "mlpf_puppi", "pf", "pf_puppi", "truth") if a in m]
    for algo in algos:
        table.add_column(algo)

    def row(name: str, get: str) -> None:
        vals = []
        for algo in algos:
            v = m[algo]
            for k in get.split("/"):
                v = v.get(k) if isinstance(v, dict) else None
            vals.append("-" if v is None else f"{v:.3f}")
        table.add_row(name, *vals)

    row("jet pT response median", "jets/response_median")
    row("jet pT response IQR", "jets/response_iqr")
    row("MET resolution (x, y; GeV)", "met/resolution_xy_gev")
    for c in ("charged_hadron", "neutral_hadron", "photon", "electron", "muon"):
        row(f"{c} efficiency", f"particles/per_class/{c}/efficiency")
        row(f"{c} fake rate", f"particles/per_class/{c}/fake_rate")
    console.print(table)
    console.print(f"MLPF decoding: {m['mlpf_decoding']}")
    console.print(f"metrics in {run / 'eval' / 'metrics.json'}")


@mlpf_app.command("export")
def export_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory of `heptagon mlpf train`.")],
) -> None:
    """RUN/model.onnx with dynamic batch and element axes."""
    from heptagon.apps.mlpf.run import export_mlpf, load_mlpf

    console.print(f"ONNX in {export_mlpf(load_mlpf(run), run / 'model.onnx')}")
