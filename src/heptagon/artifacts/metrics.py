"""``RUN/eval/metrics.json``: the numbers ``heptagon evaluate`` quotes for each sample.

A sample's metrics are :class:`BinaryMetrics`, :class:`MulticlassMetrics`,
:class:`RegressionMetrics` or :class:`AnomalyMetrics` (told apart by ``kind``), as
:mod:`heptagon.physics.summaries` computes them. The file is an :data:`Evaluation`: the
nominal sample's metrics at the top level (``kind`` says which), plus ``sample`` (its
name), ``samples`` (every scored sample's metrics, the nominal one included) and
``checkpoint_sha256`` (the checkpoint that was evaluated).

Every quoted rate and score is a :class:`Measured` ``{value, err}``, ``err`` the bootstrap
spread over resamples of the test set; a number that is undefined is null."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from heptagon.artifacts.base import Artifact, Record, read_by_kind

__all__ = [
    "AnomalyEvaluation",
    "AnomalyMetrics",
    "AnomalySignal",
    "BinaryEvaluation",
    "BinaryMetrics",
    "Confusion",
    "Count",
    "DdtMetrics",
    "Evaluation",
    "FlavourMetrics",
    "FlavourWorkingPoint",
    "Measured",
    "MulticlassEvaluation",
    "MulticlassMetrics",
    "ProcessYield",
    "RegressionEvaluation",
    "RegressionMetrics",
    "Rejection",
    "ResolutionBins",
    "SampleMetrics",
    "SignalAtRate",
    "Yields",
    "evaluation",
    "read_evaluation",
]


class Measured(Record):
    """A quoted number and its bootstrap uncertainty (null where undefined)."""

    value: float | None
    err: float | None = None


class Rejection(Measured):
    """Background rejection 1/eps_B (null when no background passes) and its one-sided
    95% CL lower limit (Clopper-Pearson on the effective counts)."""

    lower_limit: float


class Count(Record):
    """Events of a class: how many, and their summed weight."""

    raw: int = Field(ge=0)
    weighted: float


class DdtMetrics(Record):
    """The DDT cut (``RUN/ddt.json``) on the sample."""

    efficiency: float = Field(description="the signal efficiency the DDT map was made for")
    signal_eff: float
    background_eff: float
    rejection: float | None
    jsd_inverse: float | None


class ProcessYield(Record):
    """Expected events of one process (at the luminosity of :class:`Yields`)."""

    region: float
    passing: float = Field(description="passing the best S/sqrt(B) cut")


class Yields(Record):
    """Expected yields per process (``heptagon evaluate --lumi``)."""

    lumi_fb: float = Field(gt=0)
    signal: str
    best_cut: float
    s_over_sqrt_b: float
    processes: dict[str, ProcessYield]


class _Classifier(Record):
    auc: Measured
    accuracy: Measured
    ddt: DdtMetrics | None = None
    yields: Yields | None = None


class BinaryMetrics(_Classifier):
    """A binary classifier's numbers (or one class's, one-vs-rest or vs QCD)."""

    kind: Literal["binary"] = "binary"
    signal: str | None = Field(None, description="the signal class's name")
    n_signal: Count
    n_background: Count
    rejection_at_eff: dict[str, Rejection] = Field(
        description='1/eps_B at each signal efficiency ("0.3", "0.5")'
    )
    eff_at_mistag: dict[str, Measured] = Field(
        description='signal efficiency at each mistag rate ("0.01", "0.001")'
    )
    jsd_inverse_at_eff: dict[str, Measured] = Field(
        default_factory=dict,
        description="1/JSD (base 2) of the background m_SD passing vs failing the cut at "
        "each signal efficiency; empty without m_SD",
    )


class Confusion(Record):
    """The confusion matrix, rows the true class normalised to 1."""

    classes: list[str]
    matrix: list[list[float]]


class FlavourWorkingPoint(Record):
    """A cut on BvsAll at a light (uds + g) mistag rate, with the efficiencies it gives."""

    light_mistag: float = Field(description="the requested light mistag rate")
    threshold: float = Field(description="BvsAll >= threshold (inf: no light jet can pass)")
    b_eff: float
    c_eff: float
    light_eff: float = Field(description="the light mistag rate the cut gives")


class FlavourMetrics(Record):
    """Heavy-flavour tagging (classes b, c, uds, g): the CMS discriminants
    (:func:`heptagon.physics.flavour.discriminants`) as binary taggers, and the BvsAll
    working points (docs/flavour.md)."""

    b_vs_light: BinaryMetrics = Field(
        description="BvsAll, b vs uds + g: rejection at 70% b efficiency, b efficiency at "
        "10%, 1%, 0.1% light mistag"
    )
    b_vs_c: BinaryMetrics = Field(description="BvsAll, b vs c: c rejection at 70% b efficiency")
    c_vs_light: BinaryMetrics = Field(description="CvsL, c vs uds + g")
    c_vs_b: BinaryMetrics = Field(description="CvsB, c vs b")
    working_points: dict[str, FlavourWorkingPoint] = Field(
        description="BvsAll loose / medium / tight: 10%, 1%, 0.1% light mistag"
    )


class MulticlassMetrics(_Classifier):
    """A multi-class classifier's numbers: the macro one-vs-rest AUC, argmax accuracy, each
    class one-vs-rest, and each class vs QCD (``p_s / (p_s + p_QCD)``) with a QCD class."""

    kind: Literal["multiclass"] = "multiclass"
    n_events: dict[str, Count]
    per_class: dict[str, BinaryMetrics]
    confusion: Confusion
    pairwise_vs_QCD: dict[str, BinaryMetrics] = Field(default_factory=dict)
    #: classes b, c, uds, g: the CMS discriminants and working points
    flavour: FlavourMetrics | None = None
    #: classes without entries in the sample: not in ``per_class`` nor the macro AUC
    missing_classes: list[str] = Field(default_factory=list)


class ResolutionBins(Record):
    """The response in bins ``[edges[i], edges[i+1])`` of a variable (NaN in empty bins)."""

    edges: list[float]
    median: list[float]
    iqr: list[float]
    resolution: list[float]


class RegressionMetrics(Record):
    """A regression's response ``predicted / true``: median, IQR and resolution (IQR/2 over
    the median), and the same in bins of the true value and of jet pT."""

    kind: Literal["regression"] = "regression"
    response_median: Measured
    response_iqr: Measured
    resolution: Measured
    resolution_vs: dict[str, ResolutionBins] = Field(default_factory=dict)


class SignalAtRate(Record):
    """The signal efficiency of the cut on the anomaly score at a fixed background rate
    (:func:`heptagon.physics.rates.efficiency_at_rate`; rate = eps_B x reference rate)."""

    requested_rate_hz: float = Field(gt=0)
    rate_hz: float = Field(
        description="the cut's rate: the requested one, or the lowest the sample reaches"
    )
    reached: bool = Field(description="false: the sample's background cannot resolve the rate")
    threshold: float
    background_eff: float
    signal_eff: Measured = Field(description="err: binomial")


class AnomalySignal(Record):
    """One held-out class scored against the background by one anomaly score."""

    n_signal: Count
    auc: Measured
    eff_at_rate: SignalAtRate


class AnomalyMetrics(Record):
    """An anomaly detector's numbers (``train.task: anomaly``): per anomaly score (``mse``;
    ``kl`` for a VAE) and per held-out class present in the sample, the AUC against the
    ``background`` classes and the signal efficiency at ``rate_hz`` out of
    ``reference_rate_hz``. ``score`` is the model's own score; ``auc`` its AUC for all
    held-out classes together (null without any in the sample)."""

    kind: Literal["anomaly"] = "anomaly"
    score: str = Field(description="the model's anomaly score (what export writes)")
    background: list[str]
    n_background: Count
    reference_rate_hz: float = Field(gt=0, description="the bunch-crossing rate, 40 MHz")
    auc: Measured
    scores: dict[str, dict[str, AnomalySignal]] = Field(
        description="score name -> held-out class -> its numbers"
    )
    #: held-out classes without entries in the sample
    missing_classes: list[str] = Field(default_factory=list)


SampleMetrics = Annotated[
    BinaryMetrics | MulticlassMetrics | RegressionMetrics | AnomalyMetrics,
    Field(discriminator="kind"),
]


class _Evaluation(Artifact):
    WHAT: ClassVar[str] = "evaluation"

    sample: str = Field(description="the nominal sample (the test split: 'test')")
    samples: dict[str, SampleMetrics]
    checkpoint_sha256: str = Field(description="the checkpoint that was evaluated")


class BinaryEvaluation(BinaryMetrics, _Evaluation):
    """``metrics.json`` of a binary classifier."""


class MulticlassEvaluation(MulticlassMetrics, _Evaluation):
    """``metrics.json`` of a multi-class classifier."""


class RegressionEvaluation(RegressionMetrics, _Evaluation):
    """``metrics.json`` of a regression."""


class AnomalyEvaluation(AnomalyMetrics, _Evaluation):
    """``metrics.json`` of an anomaly detector."""


Evaluation = BinaryEvaluation | MulticlassEvaluation | RegressionEvaluation | AnomalyEvaluation
_BY_KIND: dict[
    str,
    type[BinaryEvaluation]
    | type[MulticlassEvaluation]
    | type[RegressionEvaluation]
    | type[AnomalyEvaluation],
] = {
    "binary": BinaryEvaluation,
    "multiclass": MulticlassEvaluation,
    "regression": RegressionEvaluation,
    "anomaly": AnomalyEvaluation,
}


def evaluation(
    samples: dict[str, BinaryMetrics | MulticlassMetrics | RegressionMetrics | AnomalyMetrics],
    nominal: str,
    checkpoint_sha256: str,
) -> Evaluation:
    """The ``metrics.json`` of ``samples`` with ``nominal``'s numbers at the top level."""
    top = samples[nominal]
    data: dict[str, Any] = {
        **dict(top),
        "sample": nominal,
        "samples": samples,
        "checkpoint_sha256": checkpoint_sha256,
    }
    return _BY_KIND[top.kind].model_validate(data)


def read_evaluation(path: str | Path) -> Evaluation:
    """Read ``metrics.json`` (typed by its ``kind``); a :class:`~heptagon.errors.DataError`
    naming the file and key when it is not one this heptagon reads."""
    return read_by_kind(path, _BY_KIND, "evaluation")
