"""A HEPData submission of a tagger's performance, built with ``hepdata_lib`` and checked with
``hepdata-validator``.

Tables: the ROC (background efficiency and rejection at a grid of signal efficiencies, with
binomial errors), one table per efficiency / mistag map, and the working points of
``metrics.json`` (rejection at fixed signal efficiency with its 95% CL lower limit, signal
efficiency at fixed mistag rate, and 1/JSD where present) with the same numbers and bootstrap
uncertainties, to hepdata_lib's 5 significant digits. Every dependent variable carries the
qualifier Sample and, from the :class:`~heptagon.physics.experiment.Experiment`, SQRT(S)
(also each table's ``cmenergies`` keyword) when the sample's energy is known and
LUMINOSITY when given; the model file is attached as an additional resource.

The other tasks (:func:`task_tables`): a multi-class tagger gets the AUC per class, the
confusion matrix, and per class one-vs-rest (and each signal vs QCD, with the pairwise
discriminant ``p_s / (p_s + p_QCD)``) its ROC and working-point tables, named
``<class> vs rest: ...`` / ``<class> vs QCD: ...``; a regression its response (median,
IQR, resolution) and the same in bins of each variable of ``resolution_vs``; an anomaly
detector, per anomaly score, each held-out class's AUC and signal efficiency at the
fixed background rate.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from heptagon.artifacts.metrics import (
    AnomalyMetrics,
    BinaryMetrics,
    Measured,
    MulticlassMetrics,
    RegressionMetrics,
    ResolutionBins,
)
from heptagon.artifacts.scale_factors import ScaleFactorTable
from heptagon.errors import ExportError
from heptagon.physics.experiment import Experiment
from heptagon.physics.metrics import EfficiencyMap, Roc

with warnings.catch_warnings():
    # hepdata-validator imports jsonschema's deprecated RefResolver and RefResolutionError;
    # hepdata_lib sets a global warning filter on import, which catch_warnings undoes
    warnings.filterwarnings(
        "ignore", message=r"jsonschema\.[\w.]+ is deprecated", category=DeprecationWarning
    )
    from hepdata_lib import Submission, Table, Uncertainty, Variable
    from hepdata_validator.full_submission_validator import FullSubmissionValidator

__all__ = [
    "ROC_EFFICIENCIES",
    "add_tables",
    "build_submission",
    "scale_factor_tables",
    "submission_of",
    "task_tables",
    "validate_submission",
    "write_submission",
]

#: Signal efficiencies at which the ROC table quotes the background rejection.
ROC_EFFICIENCIES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 21))
#: HEPData's mark for a value that does not exist (rejection when no background passes).
NO_VALUE = "-"


def _qualify(var: Variable, sample: str) -> Variable:
    var.add_qualifier("Sample", sample)
    return var


def _dependent(
    name: str,
    values: Sequence[float | str],
    errors: Sequence[float | None] | None,
    sample: str,
    error_label: str,
) -> Variable:
    var = Variable(name, is_independent=False, is_binned=False, zero_uncertainties_warning=False)
    var.values = list(values)
    if errors is not None:
        unc = Uncertainty(error_label, is_symmetric=True)
        unc.values = list(errors)
        var.add_uncertainty(unc)
    return _qualify(var, sample)


def _independent(name: str, values: Sequence[float]) -> Variable:
    var = Variable(name, is_independent=True, is_binned=False)
    var.values = list(values)
    return var


def _table(name: str, description: str, variables: Sequence[Variable]) -> Table:
    table = Table(name)
    table.description = description
    table.location = "heptagon evaluation"
    for var in variables:
        table.add_variable(var)
    return table


def _named(label: str, name: str) -> str:
    """A table name for one class's curve (``label``: ``Hbb vs rest``; empty: binary)."""
    return f"{label}: {name}" if label else name


def _roc_table(roc: Roc, sample: str, efficiencies: Sequence[float], label: str = "") -> Table:
    wps = [roc.at_signal_eff(e) for e in efficiencies]
    return _table(
        _named(label, "ROC curve"),
        "Background efficiency and rejection 1/eps_B at the tightest cut reaching each signal "
        "efficiency; binomial uncertainties with effective event counts. '-': no background "
        "passes the cut.",
        [
            _independent("Signal efficiency", [wp.signal_eff for wp in wps]),
            _dependent(
                "Background efficiency",
                [wp.background_eff for wp in wps],
                [wp.background_eff_err for wp in wps],
                sample,
                "stat.",
            ),
            _dependent(
                "Background rejection",
                [NO_VALUE if wp.rejection is None else wp.rejection for wp in wps],
                [wp.rejection_err for wp in wps],
                sample,
                "stat.",
            ),
        ],
    )


def _map_table(name: str, emap: EfficiencyMap, sample: str) -> Table:
    x_axis, y_axis = emap.total.axes
    eff, err = emap.efficiency, emap.error
    filled = np.argwhere(np.isfinite(eff))  # bins without events are left out
    x = Variable(x_axis.label, is_independent=True, is_binned=True)
    x.values = [(x_axis.edges[i], x_axis.edges[i + 1]) for i, _ in filled]
    y = Variable(y_axis.label, is_independent=True, is_binned=True)
    y.values = [(y_axis.edges[j], y_axis.edges[j + 1]) for _, j in filled]
    value = _dependent(
        "Efficiency",
        [eff[i, j] for i, j in filled],
        [err[i, j] for i, j in filled],
        sample,
        "stat.",
    )
    return _table(
        name,
        f"{name}: weighted efficiency per bin with binomial uncertainties (effective counts); "
        "bins without events are left out.",
        [x, y, value],
    )


def _working_point_tables(metrics: BinaryMetrics, sample: str, name: str = "") -> list[Table]:
    rej = metrics.rejection_at_eff
    eff = metrics.eff_at_mistag
    label = "stat. (bootstrap)"
    tables = [
        _table(
            _named(name, "Background rejection at fixed signal efficiency"),
            "Background rejection 1/eps_B at the tightest cut reaching each signal efficiency, "
            "with its bootstrap uncertainty and the one-sided 95% CL lower limit "
            "(Clopper-Pearson, effective counts). '-': no background passes the cut.",
            [
                _independent("Signal efficiency", [float(k) for k in rej]),
                _dependent(
                    "Background rejection",
                    [NO_VALUE if v.value is None else v.value for v in rej.values()],
                    [v.err for v in rej.values()],
                    sample,
                    label,
                ),
                _dependent(
                    "Background rejection 95% CL lower limit",
                    [v.lower_limit for v in rej.values()],
                    None,
                    sample,
                    label,
                ),
            ],
        ),
        _table(
            _named(name, "Signal efficiency at fixed mistag rate"),
            "Signal efficiency at the loosest cut whose background efficiency does not exceed "
            "each mistag rate, with its bootstrap uncertainty.",
            [
                _independent("Background efficiency", [float(k) for k in eff]),
                _dependent(
                    "Signal efficiency",
                    [NO_VALUE if v.value is None else v.value for v in eff.values()],
                    [v.err for v in eff.values()],
                    sample,
                    label,
                ),
            ],
        ),
    ]
    if metrics.jsd_inverse_at_eff:  # with m_SD
        jsd = metrics.jsd_inverse_at_eff
        tables.append(
            _table(
                _named(name, "Mass sculpting"),
                "1/JSD (Jensen-Shannon divergence, base 2) between the m_SD distributions of "
                "background passing and failing the cut at each signal efficiency (40 bins, "
                "0-300 GeV), with its bootstrap uncertainty. '-': undefined.",
                [
                    _independent("Signal efficiency", [float(k) for k in jsd]),
                    _dependent(
                        "1/JSD",
                        [NO_VALUE if v.value is None else v.value for v in jsd.values()],
                        [v.err for v in jsd.values()],
                        sample,
                        label,
                    ),
                ],
            )
        )
    return tables


def _measured(
    name: str, values: Sequence[Measured], sample: str, label: str = "stat. (bootstrap)"
) -> Variable:
    """A dependent variable of quoted numbers and their uncertainties."""
    return _dependent(
        name,
        [NO_VALUE if v.value is None else v.value for v in values],
        [v.err for v in values],
        sample,
        label,
    )


def _labels(name: str, values: Sequence[str]) -> Variable:
    """An independent variable of names (classes, samples)."""
    var = Variable(name, is_independent=True, is_binned=False)
    var.values = list(values)
    return var


def _multiclass_tables(
    metrics: MulticlassMetrics, rocs: Mapping[str, Roc], sample: str, efficiencies: Sequence[float]
) -> list[Table]:
    classes = list(metrics.per_class)
    aucs = [_measured("AUC (one vs rest)", [metrics.per_class[c].auc for c in classes], sample)]
    description = "One-vs-rest AUC of each class's output, with its bootstrap uncertainty"
    if metrics.pairwise_vs_QCD:
        vs_qcd = metrics.pairwise_vs_QCD
        none = Measured(value=None)
        aucs.append(
            _measured(
                "AUC (vs QCD)", [vs_qcd[c].auc if c in vs_qcd else none for c in classes], sample
            )
        )
        description += ", and each signal's AUC vs QCD (discriminant p_s / (p_s + p_QCD))"
    tables = [
        _table(
            "AUC per class", description + ". '-': not defined.", [_labels("Class", classes), *aucs]
        )
    ]
    conf = metrics.confusion
    n = len(conf.classes)
    tables.append(
        _table(
            "Confusion matrix",
            "Fraction of each true class's (weighted) entries assigned to each class by the "
            "largest output; rows normalised to 1.",
            [
                _labels("True class", [t for t in conf.classes for _ in range(n)]),
                _labels("Predicted class", [p for _ in conf.classes for p in conf.classes]),
                _dependent(
                    "Fraction", [v for row in conf.matrix for v in row], None, sample, "stat."
                ),
            ],
        )
    )
    for versus, by_class in (("rest", metrics.per_class), ("QCD", metrics.pairwise_vs_QCD)):
        for cls, m in by_class.items():
            label = f"{cls} vs {versus}"
            if label in rocs:
                tables.append(_roc_table(rocs[label], sample, efficiencies, label))
            tables += _working_point_tables(m, sample, label)
    return tables


_VARIABLE_LABELS = {"true": "True value", "jet_pt": "Jet $p_T$ [GeV]"}


def _resolution_table(key: str, bins: ResolutionBins, sample: str) -> Table:
    keep = [i for i, r in enumerate(bins.resolution) if np.isfinite(r)]
    x = Variable(_VARIABLE_LABELS.get(key, key), is_independent=True, is_binned=True)
    x.values = [(bins.edges[i], bins.edges[i + 1]) for i in keep]
    return _table(
        f"Response in bins of {key}",
        f"Median response predicted/true, its IQR and the resolution IQR/2 / median in "
        f"bins of {_VARIABLE_LABELS.get(key, key)}; empty bins are left out.",
        [
            x,
            *(
                _dependent(name, [values[i] for i in keep], None, sample, "stat.")
                for name, values in (
                    ("Median response", bins.median),
                    ("Response IQR", bins.iqr),
                    ("Resolution", bins.resolution),
                )
            ),
        ],
    )


def _regression_tables(metrics: RegressionMetrics, sample: str) -> list[Table]:
    tables = [
        _table(
            "Response and resolution",
            "The response predicted/true over the test sample: its median, interquartile "
            "range and the resolution IQR/2 / median, with bootstrap uncertainties.",
            [
                _labels("Sample", [sample]),
                _measured("Median response", [metrics.response_median], sample),
                _measured("Response IQR", [metrics.response_iqr], sample),
                _measured("Resolution", [metrics.resolution], sample),
            ],
        )
    ]
    tables += [_resolution_table(k, b, sample) for k, b in metrics.resolution_vs.items()]
    return tables


def _anomaly_tables(metrics: AnomalyMetrics, sample: str) -> list[Table]:
    tables = []
    for score, by_class in metrics.scores.items():
        classes = list(by_class)
        if not classes:
            continue
        rate = {c: by_class[c].eff_at_rate for c in classes}
        tables.append(
            _table(
                f"Anomaly score {score}",
                f"Each held-out class against the background ({', '.join(metrics.background)}"
                f") by the anomaly score {score}: the AUC (bootstrap uncertainty) and the "
                f"signal efficiency (binomial uncertainty) of the cut whose background rate "
                f"is the one given (eps_B x {metrics.reference_rate_hz:g} Hz).",
                [
                    _labels("Held-out class", classes),
                    _measured("AUC", [by_class[c].auc for c in classes], sample),
                    _dependent(
                        "Background rate [Hz]",
                        [rate[c].rate_hz for c in classes],
                        None,
                        sample,
                        "stat.",
                    ),
                    _measured(
                        "Signal efficiency at the rate",
                        [rate[c].signal_eff for c in classes],
                        sample,
                        "stat.",
                    ),
                ],
            )
        )
    return tables


def task_tables(
    metrics: MulticlassMetrics | RegressionMetrics | AnomalyMetrics,
    *,
    sample: str,
    rocs: Mapping[str, Roc] | None = None,
    roc_efficiencies: Sequence[float] = ROC_EFFICIENCIES,
) -> list[Table]:
    """The tables of a multi-class tagger (``rocs``: its ROC curves keyed ``<class> vs
    rest`` / ``<class> vs QCD``, as evaluation names them), a regression or an anomaly
    detector, from its ``metrics.json`` numbers."""
    if isinstance(metrics, MulticlassMetrics):
        return _multiclass_tables(metrics, rocs or {}, sample, roc_efficiencies)
    if isinstance(metrics, RegressionMetrics):
        return _regression_tables(metrics, sample)
    return _anomaly_tables(metrics, sample)


def _stamp(table: Table, experiment: Experiment) -> None:
    """The experiment's energy (the ``cmenergies`` keyword and a SQRT(S) qualifier of every
    dependent variable) and luminosity on ``table``, each only where known."""
    energy = experiment.sqrt_s_gev
    if energy is not None:
        table.keywords["cmenergies"] = [energy]
    for var in table.variables:
        if var.is_independent:
            continue
        if energy is not None:
            var.add_qualifier("SQRT(S)", energy, "GeV")
        if experiment.lumi_fb is not None:
            var.add_qualifier("LUMINOSITY", experiment.lumi_fb, "fb$^{-1}$")


def build_submission(
    metrics: BinaryMetrics,
    roc: Roc,
    maps: Mapping[str, EfficiencyMap],
    *,
    sample: str,
    model_path: str | Path | None = None,
    comment: str = "Performance of a jet tagger trained and evaluated with heptagon.",
    roc_efficiencies: Sequence[float] = ROC_EFFICIENCIES,
    experiment: Experiment | None = None,
) -> Submission:
    """A ``hepdata_lib`` submission from a binary classifier's ``metrics`` (as
    ``metrics.json`` holds them: :func:`heptagon.physics.metrics.binary_metrics`), its ROC,
    and efficiency / mistag maps keyed by table name (at most 64 characters).
    ``model_path`` (e.g. the ONNX model) is attached as an additional resource;
    ``experiment`` gives the energy and luminosity (None: neither known)."""
    tables = [
        _roc_table(roc, sample, roc_efficiencies),
        *(_map_table(name, emap, sample) for name, emap in maps.items()),
        *_working_point_tables(metrics, sample),
    ]
    return submission_of(tables, model_path=model_path, comment=comment, experiment=experiment)


def submission_of(
    tables: Sequence[Table],
    *,
    model_path: str | Path | None = None,
    comment: str = "Performance of a model trained and evaluated with heptagon.",
    experiment: Experiment | None = None,
) -> Submission:
    """A submission of ``tables``, each stamped with the ``experiment``'s energy and
    luminosity, with ``model_path`` attached (see :func:`build_submission`)."""
    submission = Submission()
    submission.comment = comment
    for table in tables:
        _stamp(table, experiment or Experiment())
        submission.add_table(table)
    if model_path is not None:
        path = Path(model_path).resolve()  # hepdata_lib copies it later, from another cwd
        submission.add_additional_resource(f"The model, {path.name}", str(path), copy_file=True)
    return submission


def _pt_bins(table: ScaleFactorTable) -> Variable:
    pt = Variable("Probe jet $p_T$ [GeV]", is_independent=True, is_binned=True)
    pt.values = [(b.pt_low, b.pt_high) for b in table.bins]
    return pt


def _with_uncertainties(
    name: str, values: Sequence[float], parts: Mapping[str, Sequence[float]], sample: str
) -> Variable:
    """A dependent variable with one symmetric uncertainty per named part."""
    var = Variable(name, is_independent=False, is_binned=False, zero_uncertainties_warning=False)
    var.values = list(values)
    for label, errors in parts.items():
        unc = Uncertainty(label, is_symmetric=True)
        unc.values = list(errors)
        var.add_uncertainty(unc)
    return _qualify(var, sample)


def scale_factor_tables(table: ScaleFactorTable) -> list[Table]:
    """The tagger's tag-and-probe efficiency in simulation and its data/simulation scale
    factors per probe-pT bin (``heptagon sf measure``'s table), with the breakdown of the
    uncertainties."""
    cut = f"{table.score} > {table.threshold:.4g}"
    wp = f" (the {table.working_point:g} working point)" if table.working_point else ""
    sample = "ttbar-semilep tag-and-probe"
    groups = table.variations
    eff_parts = {"stat.": [b.eff_sim_stat for b in table.bins]}
    eff_parts |= {f"syst. {g}": [b.eff_sim_syst.get(g, 0.0) for b in table.bins] for g in groups}
    names = sorted({k for b in table.bins for k in b.breakdown})
    sf_parts = {
        ("stat. (data)" if k == "data_stat" else
         "stat. (simulation)" if k == "sim_stat" else f"syst. {k}"): [
            b.breakdown.get(k, 0.0) for b in table.bins
        ]
        for k in names
    }  # fmt: skip
    tables = [
        _table(
            "Tagger efficiency in simulation (tag-and-probe)",
            f"Efficiency of the cut {cut}{wp} for merged top quarks (the hadronic top and its "
            "visible decay products within the probe jet) in simulated semileptonic ttbar, "
            "per probe pT bin; stat.: binomial; syst.: the largest shift of each systematic "
            "group's up / down sample.",
            [
                _pt_bins(table),
                _with_uncertainties(
                    "Efficiency", [b.eff_sim for b in table.bins], eff_parts, sample
                ),
            ],
        ),
        _table(
            "Data-to-simulation scale factors",
            f"Scale factor eff_data / eff_sim of the cut {cut}{wp} per probe pT bin, from a "
            f"pass/fail template fit: {table.fit}. Uncertainties: the fit's, broken down into "
            "the data statistics (nuisance parameters fixed), the simulation statistics and "
            "each systematic group (impacts: sqrt(total^2 - without^2)); the total is quoted "
            "separately (the parts add to it in quadrature up to the fit's correlations).",
            [
                _pt_bins(table),
                _with_uncertainties("Scale factor", [b.sf for b in table.bins], sf_parts, sample),
                _dependent(
                    "Scale factor total uncertainty",
                    [b.sf_err for b in table.bins],
                    None,
                    sample,
                    "",
                ),
                _dependent(
                    "Efficiency in data",
                    [b.eff_data for b in table.bins],
                    [b.eff_data_err for b in table.bins],
                    sample,
                    "fit",
                ),
            ],
        ),
    ]
    return tables


def add_tables(submission: Submission, tables: Sequence[Table], sqrt_s_tev: float) -> None:
    """Add ``tables`` of a sample at ``sqrt_s_tev`` (e.g. the scale factors' control
    sample) to ``submission``, stamped with that energy."""
    for table in tables:
        _stamp(table, Experiment(sqrt_s_tev=sqrt_s_tev))
        submission.add_table(table)


def validate_submission(directory: str | Path) -> None:
    """Run the full-submission validator over ``directory``; raise :class:`ExportError` with
    its messages if the submission is invalid."""
    validator = FullSubmissionValidator()
    with warnings.catch_warnings():
        # the validator leaves the data files it reads to the garbage collector
        warnings.filterwarnings("ignore", message="unclosed file", category=ResourceWarning)
        valid = validator.validate(directory=str(directory))
    if not valid:
        messages = [
            f"{file}: {msg.message}"
            for file, msgs in validator.get_messages().items()
            for msg in msgs
        ]
        raise ExportError(f"invalid HEPData submission in {directory}: " + "; ".join(messages))


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def write_submission(submission: Submission, outdir: str | Path) -> Path:
    """Write ``submission`` into ``outdir`` and its tarball beside it (``<outdir>.tar.gz``),
    after validating it; return ``outdir``.

    The files are written and validated in a staging directory first, so an invalid
    submission raises :class:`ExportError` and leaves an earlier ``outdir`` untouched.
    hepdata_lib writes the tarball into the working directory, so this changes the process's
    working directory while it runs (not thread-safe).
    """
    outdir = Path(outdir).resolve()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    try:
        with _working_directory(staging):
            submission.create_files("submission", validate=False)
        validate_submission(staging / "submission")
        if outdir.exists():
            os.replace(outdir, staging / "previous")
        os.replace(staging / "submission", outdir)
        os.replace(staging / "submission.tar.gz", outdir.with_name(f"{outdir.name}.tar.gz"))
    finally:
        shutil.rmtree(staging)
    return outdir
