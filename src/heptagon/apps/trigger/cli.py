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


@app.command("ad")
def ad(
    run: Annotated[Path, typer.Argument(help="An anomaly run (train.task: anomaly).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for ad.json and the project.")],
    bits: Annotated[int, typer.Option("--bits", min=2, max=32, help="ap_fixed width W.")] = 8,
    integer_bits: Annotated[
        int, typer.Option("--integer-bits", min=1, help="ap_fixed integer bits I (sign incl.).")
    ] = 3,
    qat_epochs: Annotated[
        int, typer.Option("--qat-epochs", min=0, help="Quantisation-aware epochs (0: none).")
    ] = 5,
    qat_lr: Annotated[float, typer.Option("--qat-lr", min=0, help="QAT learning rate.")] = 1e-3,
    rate_khz: Annotated[
        float,
        typer.Option("--rate-khz", min=0, max=40e3, help="Background rate [kHz] of 40 MHz."),
    ] = 1.0,
    data: Annotated[
        list[str] | None, typer.Option("--data", help="Score these files (default: test split).")
    ] = None,
    no_emulation: Annotated[
        bool, typer.Option("--no-emulation", help="Skip the hls4ml C++ emulation.")
    ] = False,
) -> None:
    """Quantise an anomaly detector to ap_fixed<W,I>, fine-tune it quantisation-aware on
    the background, emulate its firmware with hls4ml and compare float vs fixed point:
    AUC and signal efficiency at a fixed L1 rate per held-out class."""
    from heptagon.apps.trigger.ad import AD_FILE, anomaly_trigger

    report = anomaly_trigger(
        run, out, bits=bits, integer_bits=integer_bits, qat_epochs=qat_epochs, qat_lr=qat_lr,
        rate_hz=rate_khz * 1e3, data=data or (), emulation=not no_emulation,
    )  # fmt: skip
    m = report.metrics
    for variant, by_class in m.scores.items():
        for c, s in by_class.items():
            at = s.eff_at_rate
            where = "" if at.reached else " (the lowest rate the sample reaches)"
            console.print(
                f"{variant} {c}: AUC {s.auc.value:.4f}, signal efficiency "
                f"{at.signal_eff.value:.4g} at {at.rate_hz / 1e3:.4g} kHz{where}"
            )
    if report.emulation is not None:
        e = report.emulation
        exact = "bit-exact" if e.bit_exact else f"max |diff| {e.max_abs_diff:.3g}"
        console.print(f"hls4ml {e.hls4ml_version} emulation vs torch fixed point: {exact}")
    console.print(f"report: {out / AD_FILE}")
