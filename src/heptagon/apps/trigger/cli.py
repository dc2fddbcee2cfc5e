"""``heptagon trigger ...``: the trigger workflow's commands (registered by heptagon.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["app"]

app = typer.Typer(
    help="Trigger fast-ML: features, QAT + pruning, hls4ml emulation, top-ups, int8 speed.",
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


def _overrides(specs: list[str]) -> dict[str, str]:
    from heptagon.errors import ConfigError

    out = {}
    for spec in specs:
        layer, sep, text = spec.partition("=")
        if not sep or not layer:
            raise ConfigError(f"'{spec}' is not LAYER[:PART]=ap_fixed<W,I>", key="layer-precision")
        out[layer.strip()] = text.strip()
    return out


@app.command("train")
def train(
    features: Annotated[Path, typer.Argument(help="Features Parquet of 'trigger features'.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory to create.")],
    precision: Annotated[
        str | None,
        typer.Option("--precision", help="QAT: ap_fixed<W,I> of every layer (none: float)."),
    ] = None,
    result_precision: Annotated[
        str | None, typer.Option("--result-precision", help="Layer results' type.")
    ] = None,
    input_precision: Annotated[
        str | None, typer.Option("--input-precision", help="Type the input is rounded to.")
    ] = None,
    layer_precision: Annotated[
        list[str] | None,
        typer.Option(
            "--layer-precision",
            help="LAYER[:weight|bias|result]=ap_fixed<W,I>, e.g. net.6:result=ap_fixed<16,6>.",
        ),
    ] = None,
    prune_to: Annotated[
        float, typer.Option("--prune-to", min=0, max=0.99, help="Fraction of weights pruned.")
    ] = 0.0,
    prune_steps: Annotated[
        int, typer.Option("--prune-steps", min=1, help="Pruning steps (geometric schedule).")
    ] = 3,
    hidden: Annotated[str, typer.Option("--hidden", help="Hidden widths.")] = "64,32,32",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Float epochs.")] = 30,
    qat_epochs: Annotated[
        int | None,
        typer.Option("--qat-epochs", min=1, help="QAT / per-pruning-step epochs [epochs/3]."),
    ] = None,
    lr: Annotated[float, typer.Option("--lr", min=0, help="Float learning rate.")] = 3e-3,
    qat_lr: Annotated[float, typer.Option("--qat-lr", min=0, help="QAT / pruning lr.")] = 1e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 256,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    memory: Annotated[
        int, typer.Option("--memory", min=1, help="Jets kept for replay in top-ups.")
    ] = 1000,
) -> None:
    """Train the trigger MLP on FEATURES, prune it to --prune-to and train it
    quantisation-aware in ap_fixed types (hls4ml's); report float vs quantised accuracy."""
    from heptagon.apps.trigger.workflow import train_trigger
    from heptagon.artifacts.trigger import TriggerOptions
    from heptagon.errors import ConfigError

    try:
        widths = tuple(int(w) for w in hidden.split(","))
    except ValueError:
        raise ConfigError(f"'{hidden}' is not comma-separated integers", key="hidden") from None
    options = TriggerOptions(
        hidden=widths, epochs=epochs, qat_epochs=qat_epochs or max(epochs // 3, 1), lr=lr,
        qat_lr=qat_lr, batch_size=batch_size, seed=seed, precision=precision,
        result_precision=result_precision, input_precision=input_precision,
        layer_precision=_overrides(layer_precision or []), prune_to=prune_to,
        prune_steps=prune_steps, memory=memory,
    )  # fmt: skip
    run = train_trigger(features, out, options)
    f = run.float_scores
    s = next(iter(run.scores.values()))
    if f is not None:
        console.print(f"float:     test accuracy {f.accuracy:.4f}, AUC {f.auc:.4f} ({f.jets} jets)")
    kind = "quantised" if run.layers else "final"
    console.print(f"{kind}: test accuracy {s.accuracy:.4f}, AUC {s.auc:.4f}, "
                  f"{run.sparsity:.1%} of the weights zero")  # fmt: skip
    console.print(f"run: {out}")


@app.command("hls")
def hls(
    run: Annotated[Path, typer.Argument(help="A run of 'trigger train' or 'trigger topup'.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the project and hls.json.")],
    reuse_factor: Annotated[int, typer.Option("--reuse-factor", min=1)] = 1,
) -> None:
    """Convert RUN with hls4ml, run its bit-accurate C++ emulation (g++) on the test jets
    and write the agreement with the torch fixed-point model and resource estimates."""
    from heptagon.apps.trigger.workflow import hls_run

    report = hls_run(run, out, reuse_factor=reuse_factor)
    c = report.comparison
    console.print(
        f"hls4ml {report.hls4ml_version} emulation (EMULATED, C++): accuracy "
        f"{c.accuracy_emulated:.4f} vs torch {c.accuracy_torch:.4f} on {c.jets} jets, argmax "
        f"agreement {c.argmax_agreement:.4f}, max |logit diff| {c.max_abs_logit_diff:.3g} "
        f"(LSB {c.lsb:.3g}; bit-exact: {'yes' if c.bit_exact else 'no'})"
    )
    mults = sum(r.multiplications for r in report.resources)
    bops = sum(r.bit_operations for r in report.resources)
    console.print(f"estimates: {mults} multiplications, {bops:.3g} bit operations per jet")
    console.print(f"hls4ml resources: none ({report.hls4ml_resources_note.split(':')[0]})")
    console.print(f"report: {out / 'hls.json'}")


@app.command("topup")
def topup(
    run: Annotated[Path, typer.Argument(help="The run to top up.")],
    features: Annotated[Path, typer.Argument(help="Features of the new condition.")],
    out: Annotated[Path, typer.Option("--out", help="The new run directory.")],
    ewc: Annotated[
        float | None, typer.Option("--ewc", min=0, help="EWC strength lambda.")
    ] = None,
    replay: Annotated[
        int | None, typer.Option("--replay", min=1, help="Remembered jets mixed in.")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 20,
    lr: Annotated[float, typer.Option("--lr", min=0)] = 3e-4,
) -> None:
    """Top RUN up on half the jets of FEATURES (the other half: its test set), plain, with
    EWC and/or with replay; report the accuracy on every condition seen so far."""
    from heptagon.apps.trigger.workflow import topup as run_topup

    result = run_topup(run, features, out, ewc=ewc, replay=replay, epochs=epochs, lr=lr)
    for name, s in result.scores.items():
        console.print(f"{name}: test accuracy {s.accuracy:.4f}, AUC {s.auc:.4f} ({s.jets} jets)")
    console.print(f"run: {out}")


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
