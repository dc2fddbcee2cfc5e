"""``heptagon refine ...``: train a FastSim -> FullSim refinement and apply it
(registered by heptagon.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["app"]

app = typer.Typer(
    help="Refine FastSim jets to FullSim quality (ResNet + MDMM; docs/refinement.md).",
    no_args_is_help=True,
)
console = Console()


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


@app.command("train")
def train(
    full: Annotated[str, typer.Option("--full", help="FullSim jets: dataset dir, file or glob.")],
    fast: Annotated[str, typer.Option("--fast", help="FastSim jets of the same events.")],
    columns: Annotated[str, typer.Option("--columns", help="Comma-separated columns to refine.")],
    out: Annotated[Path, typer.Option("--out", help="The model checkpoint to write.")],
    bounded: Annotated[
        str, typer.Option("--bounded", help="Columns in [0, 1], refined in logit space.")
    ] = "",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the pairs.")] = 30,
    batch: Annotated[int, typer.Option("--batch", min=2, help="Pairs per step.")] = 256,
    lr: Annotated[float, typer.Option("--lr", min=0, help="Adam learning rate.")] = 1e-3,
    width: Annotated[int, typer.Option("--width", min=1, help="ResNet width.")] = 64,
    blocks: Annotated[int, typer.Option("--blocks", min=1, help="ResNet blocks.")] = 2,
    mmd_max: Annotated[
        float | None,
        typer.Option(
            "--mmd-max", min=0, help="MDMM constraint: distribution term <= this (default 0)."
        ),
    ] = None,
    mmd_weight: Annotated[
        float | None,
        typer.Option("--mmd-weight", min=0, help="A fixed-weight sum instead of MDMM."),
    ] = None,
    marginal: Annotated[
        bool,
        typer.Option(
            "--marginal",
            help="MMD of the batch's values instead of per flavour with generator pT, eta.",
        ),
    ] = False,
    multiplier_lr: Annotated[
        float, typer.Option("--multiplier-lr", min=0, help="MDMM multiplier learning rate.")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="Torch threads (default: free cores).")
    ] = None,
) -> None:
    """Train a refinement of FastSim COLUMNS towards their paired FullSim values
    (per-jet regression under an MMD constraint per flavour and generator pT, eta, by
    MDMM), conditioned on the generator-level jet pT, eta and hadron flavour."""
    from heptagon.apps.refine.train import RefineOptions, train_refiner

    opts = RefineOptions(
        columns=_names(columns), bounded=_names(bounded), epochs=epochs, batch=batch, lr=lr,
        width=width, blocks=blocks, mmd_max=mmd_max, mmd_weight=mmd_weight,
        conditional=not marginal, multiplier_lr=multiplier_lr, seed=seed, threads=threads,
    )  # fmt: skip
    refiner = train_refiner(full, fast, opts)
    refiner.save(out)
    last = refiner.history[-1]
    console.print(
        f"{out}: {refiner.pairs} paired jets, mse {last['mse']:.4g}, mmd {last['mmd']:.4g}"
        + ("" if refiner.mmd_max is None else f" (max {refiner.mmd_max:.3g})")
        + f", multiplier {last['multiplier']:.4g}"
    )


@app.command("apply")
def apply(
    model: Annotated[Path, typer.Argument(help="A checkpoint of heptagon refine train.")],
    files: Annotated[list[str], typer.Argument(help="FastSim files, globs or dataset dirs.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the refined files.")],
) -> None:
    """Write each FastSim file to OUT with a <column>_refined column beside each refined
    column (same rows and order)."""
    from heptagon.apps.refine.train import Refiner, apply_refiner
    from heptagon.data.io import expand_files

    refiner = Refiner.load(model)
    written = apply_refiner(refiner, expand_files(files), out)
    console.print(f"{len(written)} file(s) refined into {out}: {', '.join(refiner.columns)}")
