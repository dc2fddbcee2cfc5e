"""``heptagon trigger ...``: the trigger workflow's commands (registered by heptagon.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["app"]

app = typer.Typer(
    help="Trigger fast-ML: high-level features, int8 speed (hls4ml emulation: benchmarks).",
    no_args_is_help=True,
)
console = Console()


@app.command("features")
def features(
    files: Annotated[list[str], typer.Argument(help="Jet files, globs or dataset dirs.")],
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    radius: Annotated[float, typer.Option("--radius", min=0, help="Jet radius (mMDT R0).")] = 0.8,
) -> None:
    """Write the 16 high-level features of the hls4ml jet-tagging benchmark (hlf_*) and
    the label branches of every jet to one Parquet file."""
    from heptagon.apps.trigger.features import features_file

    n = features_file(files, out, radius)
    console.print(f"{out}: 16 high-level features of {n} jets")


@app.command("speed")
def speed(
    model: Annotated[Path, typer.Argument(help="An ONNX model (batch axis dynamic).")],
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Jets per call for throughput.")
    ] = 4096,
    particles: Annotated[
        int, typer.Option("--particles", min=1, help="Length of other dynamic axes.")
    ] = 16,
    threads: Annotated[int, typer.Option("--threads", min=1, help="ONNX Runtime threads.")] = 1,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Batch-1 calls timed.")] = 2000,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip a bundle's SHA256SUMS check (warns).")
    ] = False,
) -> None:
    """Measured CPU latency at batch 1 and throughput at --batch of MODEL (a file or a
    bundle directory) in fp32 and after post-training int8 quantisation, on random inputs
    of the model's shapes."""
    from rich.table import Table

    from heptagon.apps.trigger.latency import speed_file

    if no_verify:
        typer.echo(f"heptagon: warning: --no-verify: {model} is used unverified", err=True)
    speeds = speed_file(
        model, batch=batch, particles=particles, threads=threads, repeats=repeats,
        verify=not no_verify,
    )  # fmt: skip
    table = Table(title=f"{model.name}: ONNX Runtime on CPU, {threads} thread(s) (measured)")
    for col in ("", "latency, batch 1 [us]", "p90 [us]", f"throughput, batch {batch} [jets/s]"):
        table.add_column(col, justify="right")
    for name, s in speeds.items():
        table.add_row(
            name, f"{s.latency_us:.1f}", f"{s.latency_p90_us:.1f}", f"{s.throughput:,.0f}"
        )
    console.print(table)
