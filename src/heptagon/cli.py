"""The ``heptagon`` command line: one thin command per stage over the library functions.

User errors (:class:`heptagon.errors.HeptagonError`) print one line on stderr and exit
with status 2; a traceback is shown only with ``--debug``. Anything else is a bug (1).
"""

from __future__ import annotations

import inspect
import logging
import signal
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar, cast, get_args

import annotated_types
import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.table import Table
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from heptagon.apps.dqm.cli import dqm_app
from heptagon.apps.mlpf.cli import mlpf_app
from heptagon.apps.refine.cli import app as refine_app
from heptagon.apps.sf.cli import sf_app
from heptagon.apps.trigger.cli import app as trigger_app
from heptagon.config import validate
from heptagon.cpu import configure_threads, set_wait_policy
from heptagon.errors import HeptagonError, Interrupted
from heptagon.generate.options import EventOptions, GenerateOptions
from heptagon.logs import configure
from heptagon.publish.fair_defaults import DEFAULT_AUTHOR, DEFAULT_LICENSE, DEFAULT_VERSION

if TYPE_CHECKING:
    from heptagon.artifacts.derived import DerivedDataset
    from heptagon.generate.run import Summary as GenerateSummary

__all__ = ["app", "main"]

Options = TypeVar("Options", bound=BaseModel)

app = typer.Typer(
    name="heptagon",
    help="Machine learning for collider physics: generate -> data -> train -> evaluate -> "
    "export / publish -> predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
_state = {"debug": False}

_INFO_PACKAGES = (
    "heptagon",
    "pythia8mc",
    "fastjet",
    "torch",
    "onnxruntime",
    "onnx",
    "uproot",
    "awkward",
    "vector",
    "xgboost-cpu",
    "hepdata_lib",
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Log warnings and errors only.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log debug records too.")
    ] = False,
    log_file: Annotated[
        Path | None,
        typer.Option("--log-file", help="Also write every log record here, with timestamps."),
    ] = None,
) -> None:
    _state["debug"] = debug
    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose exclude each other")
    configure(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO, log_file)


@app.command()
def info() -> None:
    """Print the versions of heptagon and its key dependencies."""
    from importlib.metadata import PackageNotFoundError, version  # ~20 ms: not at start-up

    table = Table("package", "version", title="heptagon environment")
    for pkg in _INFO_PACKAGES:
        try:
            table.add_row(pkg, version(pkg))
        except PackageNotFoundError:
            table.add_row(pkg, "not installed")
    console.print(table)


def _bounds(field: FieldInfo) -> tuple[float | None, float | None]:
    """The (min, max) of a numeric field, inclusive: a strict bound of an integer is the
    next integer, of a real number the bound itself (the model checks it)."""
    step = 1 if int in (field.annotation, *get_args(field.annotation)) else 0
    lo = hi = None
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            lo = cast("float", rule.ge)
        elif isinstance(rule, annotated_types.Gt):
            lo = cast("float", rule.gt) + step
        elif isinstance(rule, annotated_types.Le):
            hi = cast("float", rule.le)
        elif isinstance(rule, annotated_types.Lt):
            hi = cast("float", rule.lt) - step
    return lo, hi


def _cli_parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    """The command-line form of an options-model field: ``sample`` is the argument, any
    other field ``--name`` (``--name/--no-name`` for a switch), with the field's
    description as help, its default and its bounds."""
    info: typer.models.ParameterInfo
    if name == "sample":
        info = typer.Argument(help=field.description)
    else:
        flag = "--" + name.replace("_", "-")
        if field.annotation in (bool, bool | None):
            flag = f"{flag}/--no-{flag[2:]}"
        lo, hi = _bounds(field)
        info = typer.Option(flag, help=field.description, min=lo, max=hi)
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=inspect.Parameter.empty if field.is_required() else field.default,
        annotation=Annotated[field.annotation, info],
    )


def _options_command(name: str, model: type[Options], run: Callable[[Options], None]) -> None:
    """Register command ``name``: its parameters are the fields of ``model`` (the sample
    argument, then the required options, then the rest), its help ``run``'s docstring;
    the validated options are handed to ``run``."""
    fields = sorted(
        model.model_fields.items(),
        key=lambda item: (item[0] != "sample", not item[1].is_required()),
    )

    def command(**values: Any) -> None:
        run(validate(model, values))

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [_cli_parameter(field_name, field) for field_name, field in fields]
    )
    command.__doc__ = run.__doc__
    app.command(name)(command)


def _generate(opts: GenerateOptions) -> None:
    """Generate a jet sample with Pythia 8 + FastJet and the parametric detector."""
    from heptagon.generate.run import generate as run_generate

    _print_sample(run_generate(opts, show_progress=_interactive()))


def _generate_events(opts: EventOptions) -> None:
    """Generate an event-level sample (NanoAOD-style jets, leptons, MET, b tag, weights)."""
    from heptagon.generate.events import generate_events as run_events

    summary = run_events(opts, show_progress=_interactive())
    table = Table(title=f"{opts.sample}: {opts.out}")
    for col in ("class", "events", "sigma_gen [pb]"):
        table.add_column(col)
    for cls, c in summary.manifest.classes.items():
        table.add_row(cls, str(c.events), f"{c.sigma_gen_pb:.4g} +- {c.sigma_err_pb:.2g}")
    console.print(table)
    console.print(f"{summary.wall_s:.1f} s, {summary.events_per_s:.1f} events/s")


_options_command("generate", GenerateOptions, _generate)
_options_command("generate-events", EventOptions, _generate_events)


def _interactive() -> bool:
    return sys.stderr.isatty() or sys.stdout.isatty()


def _print_sample(summary: GenerateSummary) -> None:
    table = Table(title=f"{summary.manifest.sample}: {summary.out}")
    for col in ("class", "jets", "selected / events", "sigma_gen [pb]"):
        table.add_column(col)
    for cls, c in summary.manifest.classes.items():
        table.add_row(
            cls,
            str(c.jets),
            f"{c.jets_selected} / {c.events_generated}",
            f"{c.sigma_gen_pb:.4g} +- {c.sigma_err_pb:.2g}",
        )
    console.print(table)
    n_files = len(summary.manifest.files)
    if summary.skipped_shards == n_files:
        console.print(f"all {n_files} shards were already there (checksums verified)")
        return
    made = f"{summary.wall_s:.1f} s, {summary.jets_per_s:.1f} jets/s"
    if summary.skipped_shards:
        made += f", {summary.skipped_shards} finished shard(s) reused"
    console.print(made)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the demo writes.")] = Path(
        "heptagon-demo"
    ),
    jets: Annotated[
        int, typer.Option("--jets", min=1, help="Jets per class of the training sample.")
    ] = 5000,
) -> None:
    """The main job on a small top-vs-QCD sample (re-running resumes)."""
    from heptagon.apps.demo import run_demo

    result = run_demo(out, jets=jets, show_progress=_interactive(), console=console)
    _print_sample(result.sample)
    console.print(result.table())
    console.print(
        f"reports: {', '.join(str(r / 'eval' / 'report.md') for r in result.runs.values())}"
    )
    console.print(f"comparison: {result.out / 'compare' / 'compare.md'}")
    console.print(f"bundle: {result.bundle}")
    console.print(
        f"predict: {len(result.predictions)} file(s) scored in {result.out / 'predictions'}"
    )
    console.print(f"demo wall time: {result.wall_s / 60:.1f} min")


#: ``--network-config`` of the commands that re-load a run (evaluate, export, ...)
_Networks = Annotated[
    list[Path] | None,
    typer.Option(
        "--network-config",
        help="The run's network file, named again: heptagon never imports the copy in a run "
        "dir by itself (docs/security.md).",
    ),
]


def _trusting(networks: list[Path] | None) -> AbstractContextManager[None]:
    """A block in which re-loaded runs may import the network files the user named."""
    from heptagon.train.network import trusted_networks

    return trusted_networks(networks or [])


@app.command()
def train(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory.")],
    data: Annotated[
        list[str] | None,
        typer.Option("--data", help="Dataset dirs, files, globs or URLs (hash-split)."),
    ] = None,
    data_train: Annotated[
        list[str] | None,
        typer.Option("--data-train", help="Training files instead of --data (name:glob too)."),
    ] = None,
    data_val: Annotated[
        list[str] | None, typer.Option("--data-val", help="Validation files (with --data-train).")
    ] = None,
    data_test: Annotated[
        list[str] | None,
        typer.Option("--data-test", help="Test files for evaluate (with --data-train)."),
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a key: --set train.lr=1e-3")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint.")
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="torch threads (default: the CPUs available)."),
    ] = None,
    network_config: Annotated[
        Path | None,
        typer.Option(
            "--network-config",
            help="Your own network file in weaver's convention (get_model, optional get_loss), "
            "run as trusted code: it replaces the experiment's model.",
        ),
    ] = None,
    load_weights: Annotated[
        Path | None,
        typer.Option(
            "--load-model-weights", help="Start from these weights: a run dir or a checkpoint."
        ),
    ] = None,
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict",
            help="Every tensor must match (default) / load the tensors that match by name and "
            "shape (a new head).",
        ),
    ] = None,
    freeze: Annotated[
        list[str] | None,
        typer.Option("--freeze", help="Do not train parameters matching this fnmatch pattern."),
    ] = None,
    continue_from: Annotated[
        Path | None,
        typer.Option(
            "--continue-from",
            help="Top up this run on --data: its weights and preprocessing are the start.",
        ),
    ] = None,
    ewc: Annotated[
        float | None,
        typer.Option("--ewc", min=0, help="Top-up: EWC strength (Fisher on the run's data)."),
    ] = None,
    replay: Annotated[
        int | None,
        typer.Option("--replay", min=1, help="Top-up: mix in this many of the run's jets."),
    ] = None,
) -> None:
    """Train the experiment's model into a run directory."""
    from heptagon.errors import ConfigError
    from heptagon.train.continual import Continual
    from heptagon.train.experiment import ModelFlags
    from heptagon.train.run import train as run_train

    configure_threads(threads)
    if continue_from is None and (ewc is not None or replay is not None):
        raise ConfigError("top up a run: name it with --continue-from", "--ewc/--replay")
    flags = ModelFlags(network_config, load_weights, strict, tuple(freeze or ()))
    summary = run_train(
        experiment,
        data or None,
        out,
        overrides=overrides or [],
        resume=resume,
        flags=flags,
        data_train=data_train or (),
        data_val=data_val or (),
        data_test=data_test or (),
        continual=None if continue_from is None else Continual(continue_from, ewc, replay),
    )
    stop = ", stopped early" if summary.stopped_early else ""
    console.print(
        f"run: {summary.run_dir} ({summary.steps} steps, {summary.epochs} epochs, "
        f"best val loss {summary.best_val_loss:.4g}{stop})"
    )


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    data: Annotated[
        list[str] | None,
        typer.Option("--data", help="Test samples (default: the run's test split)."),
    ] = None,
    data_test: Annotated[
        list[str] | None,
        typer.Option("--data-test", help="Test samples by weaver's name:glob groups."),
    ] = None,
    lumi: Annotated[
        float | None,
        typer.Option(
            "--lumi", min=0, help="Luminosity in fb^-1: expected yields per process (classifiers)."
        ),
    ] = None,
    xsec_weight: Annotated[
        str,
        typer.Option("--xsec-weight", help="Observer with the per-event cross section in pb."),
    ] = "xsec_weight_pb",
    rate_khz: Annotated[
        float,
        typer.Option(
            "--rate-khz",
            min=0,
            max=40e3,
            help="Anomaly detectors: the background rate [kHz] of 40 MHz at which the signal "
            "efficiency is quoted.",
        ),
    ] = 1.0,
    pnn_mass: Annotated[
        float | None,
        typer.Option(
            "--pnn-mass",
            min=0,
            help="A PNN at this mass [GeV]: --data SIGNAL --data BACKGROUND become its test "
            "set (as data pnn --at).",
        ),
    ] = None,
    networks: _Networks = None,
    systematics: Annotated[
        list[Path] | None,
        typer.Option(
            "--systematics",
            help="A varied sample (generate --variation) of the one --data sample: adds the "
            "efficiency / mistag table with uncertainties (docs/systematics.md).",
        ),
    ] = None,
) -> None:
    """Metrics, plots and report of a run on its test split (or on each --data sample)."""
    from heptagon.evaluate.run import evaluate as run_evaluate

    if systematics:
        from heptagon.evaluate.systematics import evaluate_systematics, systematics_inputs

        inputs = systematics_inputs(data, systematics)  # checked before the long part
    with _trusting(networks):
        result = run_evaluate(
            run, data, data_test=data_test or (), lumi_fb=lumi, xsec_weight=xsec_weight,
            rate_hz=rate_khz * 1e3, pnn_mass=pnn_mass,
        )  # fmt: skip
        made = evaluate_systematics(run, inputs) if systematics else None
    console.print(result.table())
    console.print(f"report: {result.eval_dir / 'report.md'}")
    if made is not None:
        console.print(made.rich_table())
        console.print(f"systematics: {made.report}")


@app.command()
def ddt(
    run: Annotated[Path, typer.Argument(help="Run directory (a binary classifier).")],
    efficiency: Annotated[
        float,
        typer.Option("--efficiency", min=0, max=1, help="Background efficiency x of the DDT cut."),
    ] = 0.05,
    networks: _Networks = None,
) -> None:
    """Build RUN/ddt.json: the (1-x) background-score quantile in bins of rho and pT, from
    the training and validation splits (evaluate, export and predict then apply it)."""
    from heptagon.evaluate.ddt import make_ddt
    from heptagon.physics.ddt import DDT_FILE

    with _trusting(networks):
        made = make_ddt(run, efficiency)
    console.print(
        f"{run / DDT_FILE}: {made.thresholds.size} bins of rho x pT, background efficiency "
        f"{made.efficiency:g} on the {made.score} score"
    )


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the overlay and table.")],
    networks: _Networks = None,
) -> None:
    """Overlay the ROCs of several runs and tabulate their numbers."""
    from heptagon.evaluate.run import compare as run_compare

    with _trusting(networks):
        result = run_compare(runs, out)
    console.print(result.table())
    console.print(f"comparison: {out / 'compare.md'}")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    networks: _Networks = None,
    output_name: Annotated[
        str,
        typer.Option("--output-name", help="The ONNX output's name ('softmax' as weaver's)."),
    ] = "probs",
) -> None:
    """Export the run's best model to RUN/model.onnx, checked against PyTorch, and
    RUN/preprocess.json (the file CMSSW's ONNX jet-tag producers read)."""
    from heptagon.publish.bundle import export_run

    with _trusting(networks):
        report = export_run(run, output_name)
    worst = max(report.max_abs_diff.values())
    console.print(
        f"{report.path} (opset {report.opset}, inputs {', '.join(report.input_names)}); "
        f"ONNX Runtime vs PyTorch max |diff| {worst:.2g} over {len(report.max_abs_diff)} cases"
    )


@app.command()
def publish(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    networks: _Networks = None,
    license: Annotated[
        str, typer.Option("--license", help="The model's licence, one SPDX licence id.")
    ] = DEFAULT_LICENSE,
    model_version: Annotated[
        str, typer.Option("--model-version", help="The model's version.")
    ] = DEFAULT_VERSION,
    identifier: Annotated[
        str | None,
        typer.Option("--identifier", "--doi", help="A persistent identifier (DOI); default none."),
    ] = None,
    authors: Annotated[
        list[str] | None,
        typer.Option("--author", help="'Family, Given' or a group's name (repeatable)."),
    ] = None,
    scale_factors: Annotated[
        Path | None,
        typer.Option("--scale-factors", help="The model's SF table (sf measure) to publish."),
    ] = None,
) -> None:
    """Build RUN/bundle/: ONNX, preprocess.json, metrics.json, MODEL_CARD.md, HEPData
    record, FAIR metadata (metadata.json, CITATION.cff, codemeta.json, .zenodo.json),
    SHA256SUMS (RUN/model.onnx is re-exported first unless it is a checked export of the
    best checkpoint). Licence CC-BY-4.0 unless --license says otherwise."""
    from heptagon.publish.bundle import publish as run_publish
    from heptagon.publish.fair import FairOptions

    options = FairOptions(license, model_version, identifier, tuple(authors or [DEFAULT_AUTHOR]))
    with _trusting(networks):
        bundle = run_publish(run, options=options, say=typer.echo, scale_factors=scale_factors)
    console.print(f"bundle: {bundle}")


@app.command()
def predict(
    model: Annotated[
        Path, typer.Argument(help="model.onnx exported by heptagon, or a bundle directory.")
    ],
    files: Annotated[list[str], typer.Argument(help="Input files, globs or dataset dirs.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (one file per input).")],
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", min=1, help="ONNX Runtime threads (default: the CPUs available)."
        ),
    ] = None,
    observers: Annotated[
        str, typer.Option("--observers", help="Branches to copy, comma-separated.")
    ] = "",
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Dask scheduler address.")
    ] = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip the bundle's SHA256SUMS check (warns).")
    ] = False,
    fmt: Annotated[
        str,
        typer.Option("--format", help="parquet, or root: a TTree, a friend of the input tree."),
    ] = "parquet",
    scale_factors: Annotated[
        Path | None,
        typer.Option(
            "--scale-factors", help="SF table (sf measure): add per-jet weights nominal/up/down."
        ),
    ] = None,
) -> None:
    """Score files with an exported model (the bundle alone is enough; its SHA256SUMS is
    checked first)."""
    names = [o for o in observers.split(",") if o]
    if scheduler and scale_factors is not None:
        from heptagon.errors import ConfigError

        raise ConfigError("--scale-factors is not supported with --scheduler", key="scheduler")
    if no_verify:
        typer.echo(f"heptagon: warning: --no-verify: {model} is used unverified", err=True)
    if scheduler:
        from heptagon.infer.distributed import predict_distributed

        outputs = predict_distributed(
            model, files, out, scheduler=scheduler, threads=threads or 1, observers=names,
            progress=_interactive(), verify=not no_verify, fmt=fmt,
        )  # fmt: skip
    else:
        from heptagon.infer.predict import predict as run_predict

        outputs = run_predict(
            model, files, out, threads=threads, observers=names, progress=_interactive(),
            verify=not no_verify, fmt=fmt, scale_factors=scale_factors,
        )  # fmt: skip
    console.print(f"{len(outputs)} file(s) scored into {out}")


data_app = typer.Typer(
    help="Inspect input files; derive datasets (PNN parameter, domains, mixtures).",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")
app.add_typer(dqm_app, name="dqm")
app.add_typer(mlpf_app, name="mlpf")
app.add_typer(refine_app, name="refine")
app.add_typer(sf_app, name="sf")
app.add_typer(trigger_app, name="trigger")
bundle_app = typer.Typer(help="Published bundles (heptagon publish).", no_args_is_help=True)
app.add_typer(bundle_app, name="bundle")


@bundle_app.command("inspect")
def bundle_inspect(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory (RUN/bundle).")],
) -> None:
    """What the model needs (inputs, pre-processing), its outputs, training data,
    performance and licence; checks every file against SHA256SUMS first."""
    from heptagon.publish.inspect import inspect_bundle

    for line in inspect_bundle(bundle):
        typer.echo(line)


@data_app.command("inspect")
def data_inspect(
    files: Annotated[
        list[str], typer.Argument(help="ROOT / Parquet files, globs or dataset dirs.")
    ],
    config: Annotated[Path, typer.Option("--config", help="Data config YAML.")],
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Directory for one histogram per input.")
    ] = None,
    max_entries: Annotated[
        int | None, typer.Option("--max-entries", min=1, help="Inspect about this many entries.")
    ] = None,
) -> None:
    """Branches, entries, class counts and a summary of every input variable."""
    from heptagon.data import inspect_files, load_config

    result = inspect_files(files, load_config(config), plots, max_entries=max_entries)
    console.print(result.table())
    if plots is not None:
        console.print(f"histograms in {plots}")


_DerivedOut = Annotated[
    Path, typer.Option("--out", help="The new dataset dir (a derived one there is replaced).")
]


@data_app.command("pnn")
def data_pnn(
    signal: Annotated[Path, typer.Argument(help="A mass-scan sample dir (e.g. xbb-scan).")],
    background: Annotated[Path, typer.Argument(help="A background sample dir (e.g. QCD).")],
    out: _DerivedOut,
    param: Annotated[str, typer.Option("--param", help="The parameter column.")] = "pnn_mass",
    hold_out: Annotated[
        list[float] | None,
        typer.Option("--hold-out", help="Leave the signal of this mass [GeV] out (repeatable)."),
    ] = None,
    at: Annotated[
        float | None,
        typer.Option(
            "--at", help="Test set at this mass [GeV]: its signal alone, every jet's parameter it."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the background draw.")] = 0,
    signal_label: Annotated[
        str, typer.Option("--signal-label", help="label_<this> marks the signal.")
    ] = "Xbb",
    background_label: Annotated[
        str, typer.Option("--background-label", help="label_<this> marks the background.")
    ] = "QCD",
) -> None:
    """Label signal and background and add the PNN parameter column.

    A signal jet's parameter is its resonance mass, a background jet's drawn from the
    signal's masses (docs/workflows.md)."""
    from heptagon.data.derive import add_pnn_parameter

    made = add_pnn_parameter(
        signal, background, out, param=param, hold_out=hold_out or (), at=at, seed=seed,
        signal_label=signal_label, background_label=background_label,
    )  # fmt: skip
    masses = ", ".join(f"{m:g}" for m in sorted(made.settings["masses"].values()))
    console.print(f"{out}: {_jets(made)} jets, signal masses {masses} GeV, parameter {param}")


@data_app.command("domains")
def data_domains(
    source: Annotated[Path, typer.Argument(help="The labelled source domain's sample dir.")],
    target: Annotated[Path, typer.Argument(help="The target domain's sample dir.")],
    out: _DerivedOut,
    labelled_target: Annotated[
        bool,
        typer.Option("--labelled-target", help="Target train_weight 1 (a test set), not 0."),
    ] = False,
) -> None:
    """Mark source and target jets for domain adaptation.

    The domain column is 0 / 1, train_weight 1 / 0: the target's labels never reach the
    loss (docs/workflows.md)."""
    from heptagon.data.derive import label_domains

    made = label_domains(source, target, out, labelled_target=labelled_target)
    console.print(f"{out}: {_jets(made)} jets (source domain 0, target domain 1)")


@data_app.command("mix")
def data_mix(
    sample: Annotated[Path, typer.Argument(help="A labelled sample dir (e.g. w-vs-qcd).")],
    out: _DerivedOut,
    signal: Annotated[
        str,
        typer.Option(
            "--signal", help="Which jets are signal: a label branch (label_Wqq) or an expression."
        ),
    ],
    fractions: Annotated[
        tuple[float, float],
        typer.Option("--fractions", help="Signal fractions of M1 and M2, e.g. 0.8 0.2."),
    ],
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the jets' draw.")] = 0,
) -> None:
    """Make two mixed samples for weak supervision.

    M1 and M2 are disjoint, of equal size, with the given signal fractions, marked
    label_M1 / label_M2; fractions 1 0 give the truth, for a test set
    (docs/workflows.md)."""
    from heptagon.data.derive import mix_samples

    made = mix_samples(sample, out, signal=signal, fractions=fractions, seed=seed)
    jets, sig = made.settings["jets"], made.settings["signal_jets"]
    console.print(
        f"{out}: M1 {jets['M1']} jets ({sig['M1']} signal), "
        f"M2 {jets['M2']} jets ({sig['M2']} signal)"
    )


def _jets(made: DerivedDataset) -> int:
    return sum(f.entries for f in made.files)


configs_app = typer.Typer(
    help="The ready experiment and data configs shipped with heptagon.", no_args_is_help=True
)
app.add_typer(configs_app, name="configs")


@configs_app.command("list")
def configs_list() -> None:
    """Every shipped config with its one-line description."""
    from heptagon import configs

    names = configs.names()
    width = max(len(n) for n in names)
    for name in names:
        typer.echo(f"{name:<{width}}  {configs.describe(name)}")


@configs_app.command("show")
def configs_show(
    name: Annotated[str, typer.Argument(help="A config, e.g. top_particlenet_lite.")],
) -> None:
    """Print a shipped config's YAML."""
    from heptagon import configs

    typer.echo(configs.read(name), nl=False)


@configs_app.command("copy")
def configs_copy(
    name: Annotated[str, typer.Argument(help="A config, e.g. top_particlenet_lite.")],
    dest: Annotated[Path, typer.Argument(help="Directory to copy into.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Copy a shipped config (an experiment with its data config) into a directory."""
    from heptagon import configs

    for path in configs.copy(name, dest, force=force):
        typer.echo(f"wrote {path}")


def main() -> None:
    """Console entry point: run the app, turning user and usage errors into one line on
    stderr and exit 2, and an interrupt (Ctrl-C, SIGTERM) into one line and exit 130."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # batch systems: as Ctrl-C
    set_wait_policy()  # before any command imports torch (OpenMP reads it at its start)
    try:
        # typer turns a bare KeyboardInterrupt into its exit status 130, returned here
        status = app(standalone_mode=False, prog_name="heptagon")
    except HeptagonError as err:
        if _state["debug"]:
            raise
        _fail(f"error: {err}", 2)
    except Interrupted as err:
        _fail(f"interrupted: {err}", 130)
    except NoArgsIsHelpError as err:
        err.show()
        sys.exit(err.exit_code)
    except UsageError as err:
        where = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
        _fail(f"error: {err.format_message()}{where}", 2)
    except typer.TyperException as err:
        _fail(f"error: {err.format_message()}", 2)
    if status == 130:
        _fail("interrupted", 130)
    sys.exit(status if isinstance(status, int) else 0)


def _fail(message: str, status: int) -> NoReturn:
    """Print ``heptagon: MESSAGE`` as one line on stderr and exit with ``status``."""
    print(f"heptagon: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(status)
