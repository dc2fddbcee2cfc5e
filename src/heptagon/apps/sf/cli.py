"""``heptagon sf generate|reveal|measure|closure|toys``: tag-and-probe scale factors (the
typer sub-app, thin wrappers; docs/scale-factors.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from heptagon.config import validate
from heptagon.generate.options import DETECTOR_SET_HELP

__all__ = ["sf_app"]

sf_app = typer.Typer(
    help="Data/simulation scale factors of a tagger: tag-and-probe samples, pseudo-data, "
    "the pyhf fit, closure and coverage.",
    no_args_is_help=True,
)
console = Console()


def _progress() -> bool:
    return sys.stderr.isatty() or sys.stdout.isatty()


@sf_app.command("generate")
def generate(
    probes: Annotated[int, typer.Option("--probes", help="Tag-and-probe events to keep.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files).")],
    out: Annotated[Path, typer.Option("--out", help="Dataset directory.")],
    probe_pt_min: Annotated[
        float, typer.Option("--probe-pt-min", help="Lowest probe-jet pT, GeV.")
    ] = 300.0,
    shard_size: Annotated[int, typer.Option("--shard-size", help="Probe jets per shard.")] = 1000,
    jobs: Annotated[int, typer.Option("--jobs", help="Processes (one shard each).")] = 1,
    mpi: Annotated[bool, typer.Option("--mpi/--no-mpi", help="Multi-parton interactions.")] = False,
    variation: Annotated[
        str | None,
        typer.Option("--variation", help="A shape systematic variation (docs/systematics.md)."),
    ] = None,
    weight_variations: Annotated[
        bool, typer.Option("--weight-variations", help="Add the ISR / FSR weight columns.")
    ] = False,
    pseudo_data: Annotated[
        int | None,
        typer.Option("--pseudo-data", help="Pseudo-data: hidden settings drawn from this seed."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or root.")] = "parquet",
    detector_set: Annotated[
        list[str] | None, typer.Option("--detector-set", help=DETECTOR_SET_HELP)
    ] = None,
) -> None:
    """Generate a semileptonic-ttbar tag-and-probe sample (the hadronic large-R jet as the
    probe), or pseudo-data with hidden shower and detector settings."""
    from heptagon.generate.tagprobe import TagProbeOptions, generate_tag_probe

    values: dict[str, Any] = {
        "probes": probes, "seed": seed, "out": out, "probe_pt_min": probe_pt_min,
        "shard_size": shard_size, "jobs": jobs, "mpi": mpi, "variation": variation,
        "weight_variations": weight_variations, "pseudo_data": pseudo_data, "format": fmt,
        "detector_set": detector_set,
    }  # fmt: skip
    summary = generate_tag_probe(validate(TagProbeOptions, values), show_progress=_progress())
    m = summary.manifest
    kind = "pseudo-data (settings sealed)" if m.pseudo_data else "simulation"
    console.print(
        f"{out}: {m.probes} probe jets of {m.events_generated} events ({kind}), "
        f"sigma {m.sigma_gen_pb:.4g} pb, {summary.wall_s:.1f} s"
    )


@sf_app.command("reveal")
def reveal(
    dataset: Annotated[Path, typer.Argument(help="A pseudo-data dataset dir.")],
) -> None:
    """Print the hidden settings of pseudo-data (unblinding: after the measurement)."""
    from heptagon.generate.tagprobe import read_sealed

    _, hidden = read_sealed(dataset)
    console.print_json(json.dumps(hidden))


def _table(table: Any) -> Table:
    out = Table(title=f"scale factors: {table.score} > {table.threshold:.4g}")
    for col in ("pT [GeV]", "eff sim", "eff data", "SF", "largest parts"):
        out.add_column(col)
    for b in table.bins:
        parts = sorted(b.breakdown.items(), key=lambda kv: -kv[1])[:3]
        out.add_row(
            f"{b.pt_low:g}-{b.pt_high:g}",
            f"{b.eff_sim:.3f} +- {b.eff_sim_stat:.3f}",
            f"{b.eff_data:.3f} +- {b.eff_data_err:.3f}",
            f"{b.sf:.3f} +- {b.sf_err:.3f}",
            ", ".join(f"{k} {v:.3f}" for k, v in parts),
        )
    return out


def _edges(value: str, key: str) -> list[float]:
    from heptagon.errors import ConfigError

    try:
        return [float(x) for x in value.split(",")]
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got '{value}'", key=key) from None


@sf_app.command("measure")
def measure(
    model: Annotated[Path, typer.Argument(help="The tagger: an ONNX export or bundle.")],
    sim: Annotated[Path, typer.Option("--sim", help="The nominal simulation (sf generate).")],
    data: Annotated[Path, typer.Option("--data", help="The (pseudo-)data (sf generate).")],
    out: Annotated[Path, typer.Option("--out", help="Output dir (scale_factors.json).")],
    variation: Annotated[
        list[Path] | None,
        typer.Option("--variation", help="A systematic-variation sample (repeatable)."),
    ] = None,
    working_point: Annotated[
        float | None,
        typer.Option("--working-point", help="Cut at this simulated merged-top efficiency."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Cut at this score instead.")
    ] = None,
    score: Annotated[
        str | None, typer.Option("--score", help="Score column (default: the last).")
    ] = None,
    pt_edges: Annotated[
        str, typer.Option("--pt-edges", help="Probe-pT bin edges, GeV, comma-separated.")
    ] = "300,400,550,1000",
    mass_edges: Annotated[
        str | None,
        typer.Option("--mass-edges", help="Soft-drop mass bin edges, GeV (default 40-250 by 15)."),
    ] = None,
) -> None:
    """Fit the tagger's data/simulation scale factor per probe-pT bin (pyhf)."""
    from heptagon.apps.sf.measure import DEFAULT_MASS_EDGES
    from heptagon.apps.sf.measure import measure as run_measure

    table = run_measure(
        model, sim, data, out, variations=variation or [], score=score, threshold=threshold,
        working_point=working_point, pt_edges=_edges(pt_edges, "pt_edges"),
        mass_edges=DEFAULT_MASS_EDGES if mass_edges is None else _edges(mass_edges, "mass_edges"),
    )  # fmt: skip
    console.print(_table(table))


@sf_app.command("closure")
def closure(
    out: Annotated[Path, typer.Argument(help="The output dir of sf measure.")],
    limit: Annotated[float, typer.Option("--limit", help="The |pull| bound per bin.")] = 2.0,
) -> None:
    """Closure on pseudo-data: SF x eff_sim against the true efficiency (sealed truth)."""
    from heptagon.apps.sf.measure import closure as run_closure

    c = run_closure(out, limit=limit).closure
    assert c is not None
    pulls = ", ".join(f"{p:+.2f}" for p in c.pulls)
    verdict = "closes" if c.within_uncertainty else "does not close"
    console.print(f"closure pulls per bin: {pulls} ({verdict} within |pull| < {c.limit:g})")


@sf_app.command("toys")
def toys(
    out: Annotated[Path, typer.Argument(help="The output dir of sf measure.")],
    n_toys: Annotated[int, typer.Option("--toys", help="Toys per pT bin.")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Toy seed.")] = 0,
) -> None:
    """Coverage: SF pulls over toys drawn from the fitted models (mean ~0, width ~1)."""
    from heptagon.apps.sf.measure import toys as run_toys

    t = run_toys(out, n_toys=n_toys, seed=seed).toys
    assert t is not None
    console.print(
        f"{t.fits} toy fits: pull mean {t.pull_mean_all:+.2f}, width {t.pull_width_all:.2f}"
    )
