"""Classifier and regression metrics: data objects and pure functions over numpy arrays.

Every function honours per-event weights (``weights=None`` means 1 for every event); the
statistical uncertainties use the effective number of events ``N_eff = (sum w)^2 / sum w^2``
so that weighted samples get the errors their statistics allow.

Conventions
-----------
* Binary labels are 1 (or ``True``) for signal and 0 for background; an event passes a
  working point when ``score >= threshold``.
* A working point at signal efficiency ``eff`` is the tightest cut whose signal efficiency
  reaches ``eff``; a working point at mistag rate ``m`` is the loosest cut whose background
  efficiency does not exceed ``m``. Neither interpolates: each is a cut one could apply.
* Background rejection is ``1 / eps_B``. Its ``lower_limit`` is the one-sided 95% CL lower
  limit ``1 / eps_B^up`` from the Clopper-Pearson upper limit on ``eps_B`` with effective
  counts. When no background passes, ``eps_B^up = 1 - 0.05^(1/N_eff)`` (about ``3 / N_eff``,
  the rule of three), so the rejection is at least about ``N_eff / 3``.
* The mass-sculpting divergence is the Jensen-Shannon divergence in base 2 (0 for identical,
  1 for disjoint shapes) between the m_SD distributions of background passing and failing
  the cut, in 40 bins from 0 to 300 GeV unless told otherwise; jets outside the range are
  not counted.

:func:`binary_metrics`, :func:`multiclass_metrics` and :func:`regression_metrics` return the
``metrics.json`` structure of docs/design.md; every quoted number carries a bootstrap uncertainty
(the standard deviation over resamples of the test set, drawn within each class).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hist
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.distance import jensenshannon
from scipy.special import betaincinv

from heptagon.errors import DataError

__all__ = [
    "EfficiencyMap",
    "MassSculpting",
    "Resolution",
    "Response",
    "Roc",
    "WorkingPoint",
    "accuracy",
    "auc",
    "binary_metrics",
    "bootstrap",
    "confusion_matrix",
    "efficiency_at_mistag",
    "efficiency_map",
    "jsd",
    "jsd_inverse_at_efficiency",
    "macro_auc",
    "mass_sculpting",
    "multiclass_metrics",
    "pairwise_discriminant",
    "regression_metrics",
    "rejection_at_efficiency",
    "resolution_in_bins",
    "response",
    "roc_curve",
    "score_histograms",
]

FloatArray = NDArray[np.float64]

#: Confidence level of the limits quoted on background rejection.
CL = 0.95
#: Absolute tolerance when comparing efficiencies with a target (floating-point sums).
_EFF_TOL = 1e-12


# --------------------------------------------------------------------------------------
# input handling and small statistics helpers


def _weights(weights: ArrayLike | None, n: int) -> FloatArray:
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights have shape {w.shape}, expected ({n},)")
    if not np.all(np.isfinite(w)):
        raise DataError("event weights contain NaN or infinite values")
    return w


def _binary_inputs(
    scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None
) -> tuple[FloatArray, NDArray[np.bool_], FloatArray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be 1D of equal length")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("binary labels must be 0/1 or boolean")
    if not np.all(np.isfinite(s)):
        raise DataError("classifier scores contain NaN or infinite values")
    y = y.astype(bool)
    w = _weights(weights, len(s))
    if not (w[y].sum() > 0 and w[~y].sum() > 0):
        raise DataError("need signal and background events with positive total weight")
    return s, y, w


def _n_eff(w: FloatArray) -> float:
    """Effective number of events (sum w)^2 / sum w^2 (0 for no events)."""
    sum_w2 = float(np.sum(w**2))
    return float(np.sum(w)) ** 2 / sum_w2 if sum_w2 > 0 else 0.0


def _binomial_err(eff: Any, n_eff: Any) -> Any:
    """sqrt(eff (1 - eff) / N_eff), the binomial error of an efficiency."""
    return np.sqrt(np.clip(eff * (1 - eff), 0.0, None) / n_eff)


def _upper_limit(eff: float, n_eff: float) -> float:
    """One-sided Clopper-Pearson upper limit at :data:`CL` on an efficiency (effective counts)."""
    k = eff * n_eff
    if k >= n_eff:
        return 1.0
    return float(betaincinv(k + 1.0, n_eff - k, CL))


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


# --------------------------------------------------------------------------------------
# ROC and working points


@dataclass(frozen=True)
class WorkingPoint:
    """A cut ``score >= threshold`` with the efficiencies it gives."""

    threshold: float
    signal_eff: float
    background_eff: float
    n_signal_eff: float
    n_background_eff: float

    @property
    def signal_eff_err(self) -> float:
        """Binomial error on the signal efficiency."""
        return float(_binomial_err(self.signal_eff, self.n_signal_eff))

    @property
    def background_eff_err(self) -> float:
        """Binomial error on the background efficiency (mistag rate)."""
        return float(_binomial_err(self.background_eff, self.n_background_eff))

    @property
    def rejection(self) -> float | None:
        """Background rejection 1/eps_B; ``None`` when no background passes."""
        return 1.0 / self.background_eff if self.background_eff > 0 else None

    @property
    def rejection_err(self) -> float | None:
        """Binomial error on 1/eps_B (first-order propagation); ``None`` with the value."""
        if self.background_eff <= 0:
            return None
        return self.background_eff_err / self.background_eff**2

    @property
    def rejection_lower_limit(self) -> float:
        """One-sided 95% CL lower limit on 1/eps_B (see the module docstring)."""
        return 1.0 / _upper_limit(self.background_eff, self.n_background_eff)


@dataclass(frozen=True, eq=False)
class Roc:
    """A ROC curve: one point per distinct score, loosest cut last.

    ``thresholds[i]`` is the cut ``score >= thresholds[i]`` that gives ``signal_eff[i]`` and
    ``background_eff[i]``; the first point is ``(0, 0)`` at ``threshold = inf``.
    """

    signal_eff: FloatArray
    background_eff: FloatArray
    thresholds: FloatArray
    n_signal_eff: float
    n_background_eff: float

    @property
    def signal_eff_err(self) -> FloatArray:
        """Binomial errors on the signal efficiencies."""
        return np.asarray(_binomial_err(self.signal_eff, self.n_signal_eff))

    @property
    def background_eff_err(self) -> FloatArray:
        """Binomial errors on the background efficiencies."""
        return np.asarray(_binomial_err(self.background_eff, self.n_background_eff))

    @property
    def rejection(self) -> FloatArray:
        """Background rejection 1/eps_B (``inf`` where no background passes)."""
        with np.errstate(divide="ignore"):
            return 1.0 / self.background_eff

    @property
    def rejection_err(self) -> FloatArray:
        """Binomial errors on 1/eps_B (``inf`` where no background passes)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            err = self.background_eff_err / self.background_eff**2
        return np.where(self.background_eff > 0, err, np.inf)

    @property
    def auc(self) -> float:
        """Area under the curve: the weighted probability that a signal event scores higher
        than a background event, ties counted half (Mann-Whitney)."""
        return float(np.trapezoid(self.signal_eff, self.background_eff))

    def _working_point(self, i: int) -> WorkingPoint:
        return WorkingPoint(
            threshold=float(self.thresholds[i]),
            signal_eff=float(self.signal_eff[i]),
            background_eff=float(self.background_eff[i]),
            n_signal_eff=self.n_signal_eff,
            n_background_eff=self.n_background_eff,
        )

    def at_signal_eff(self, eff: float) -> WorkingPoint:
        """The tightest cut whose signal efficiency reaches ``eff`` (0 < eff <= 1)."""
        if not 0 < eff <= 1:
            raise ValueError(f"signal efficiency {eff} is not in (0, 1]")
        return self._working_point(int(np.argmax(self.signal_eff >= eff - _EFF_TOL)))

    def at_background_eff(self, mistag: float) -> WorkingPoint:
        """The loosest cut whose background efficiency does not exceed ``mistag``."""
        if not 0 <= mistag <= 1:
            raise ValueError(f"mistag rate {mistag} is not in [0, 1]")
        ok = self.background_eff <= mistag + _EFF_TOL
        return self._working_point(len(ok) - 1 - int(np.argmax(ok[::-1])))


def roc_curve(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None) -> Roc:
    """The weighted ROC curve of a binary classifier (labels 1 = signal)."""
    s, y, w = _binary_inputs(scores, labels, weights)
    order = np.argsort(-s, kind="stable")
    s, y, w = s[order], y[order], w[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    w_sig = np.cumsum(np.where(y, w, 0.0))[last_of_tie]
    w_bkg = np.cumsum(np.where(y, 0.0, w))[last_of_tie]
    return Roc(
        signal_eff=np.r_[0.0, w_sig / w_sig[-1]],
        background_eff=np.r_[0.0, w_bkg / w_bkg[-1]],
        thresholds=np.r_[np.inf, s[last_of_tie]],
        n_signal_eff=_n_eff(w[y]),
        n_background_eff=_n_eff(w[~y]),
    )


def auc(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Weighted area under the ROC curve (Mann-Whitney probability, ties counted half)."""
    return roc_curve(scores, labels, weights).auc


def rejection_at_efficiency(
    scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None, eff: float = 0.5
) -> dict[str, float | None]:
    """Background rejection 1/eps_B at signal efficiency ``eff``.

    Returns ``{"value": 1/eps_B, "err": binomial error, "lower_limit": 95% CL lower limit}``;
    ``value`` and ``err`` are ``None`` when no background passes the cut, and the lower limit
    then is what the background statistics allow (about ``N_eff / 3``).
    """
    wp = roc_curve(scores, labels, weights).at_signal_eff(eff)
    return {
        "value": wp.rejection,
        "err": wp.rejection_err,
        "lower_limit": wp.rejection_lower_limit,
    }


def efficiency_at_mistag(
    scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None, mistag: float = 0.01
) -> dict[str, float]:
    """Signal efficiency at mistag rate ``mistag``: ``{"value": eps_S, "err": binomial}``."""
    wp = roc_curve(scores, labels, weights).at_background_eff(mistag)
    return {"value": wp.signal_eff, "err": wp.signal_eff_err}


def accuracy(predicted: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Weighted fraction of events whose predicted class equals the true one.

    Binary: ``accuracy(scores >= 0.5, labels)``; multi-class: ``accuracy(probs.argmax(1), labels)``.
    """
    p, t = np.asarray(predicted), np.asarray(labels)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"predicted {p.shape} and labels {t.shape} must be 1D of equal length")
    w = _weights(weights, len(t))
    return float(np.sum(w * (p == t)) / np.sum(w))


# --------------------------------------------------------------------------------------
# mass sculpting


def jsd(p: ArrayLike, q: ArrayLike) -> float:
    """Jensen-Shannon divergence in base 2 between two histograms (normalised here)."""
    p_arr, q_arr = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p_arr.shape != q_arr.shape:
        raise ValueError(f"histograms have different shapes {p_arr.shape}, {q_arr.shape}")
    if np.any(p_arr < 0) or np.any(q_arr < 0) or p_arr.sum() <= 0 or q_arr.sum() <= 0:
        raise ValueError("histograms must be non-negative with a positive sum")
    return float(jensenshannon(p_arr, q_arr, base=2)) ** 2


@dataclass(frozen=True, eq=False)
class MassSculpting:
    """m_SD of background passing and failing a working point (weighted histograms)."""

    passing: hist.Hist
    failing: hist.Hist
    working_point: WorkingPoint

    @property
    def jsd(self) -> float | None:
        """JSD (base 2) between the passing and failing shapes; ``None`` if one is empty."""
        p, f = self.passing.values(), self.failing.values()
        return jsd(p, f) if p.sum() > 0 and f.sum() > 0 else None

    @property
    def inverse_jsd(self) -> float | None:
        """1/JSD; ``None`` when the JSD is undefined or zero (identical shapes)."""
        d = self.jsd
        return 1.0 / d if d else None


def mass_sculpting(
    scores: ArrayLike,
    labels: ArrayLike,
    mass: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    working_point: WorkingPoint,
    bins: int = 40,
    mass_range: tuple[float, float] = (0.0, 300.0),
) -> MassSculpting:
    """Histogram the background m_SD [GeV] passing and failing ``working_point``."""
    s, y, w = _binary_inputs(scores, labels, weights)
    m = np.asarray(mass, dtype=np.float64)
    if m.shape != s.shape:
        raise ValueError(f"mass {m.shape} and scores {s.shape} differ in shape")
    axis = hist.axis.Regular(bins, *mass_range, name="msd", label=r"$m_{SD}$ [GeV]")
    bkg_pass = ~y & (s >= working_point.threshold)
    bkg_fail = ~y & (s < working_point.threshold)
    passing = hist.Hist(axis, storage=hist.storage.Weight()).fill(m[bkg_pass], weight=w[bkg_pass])
    failing = hist.Hist(axis, storage=hist.storage.Weight()).fill(m[bkg_fail], weight=w[bkg_fail])
    return MassSculpting(passing=passing, failing=failing, working_point=working_point)


def jsd_inverse_at_efficiency(
    scores: ArrayLike,
    labels: ArrayLike,
    mass: ArrayLike,
    weights: ArrayLike | None = None,
    eff: float = 0.5,
    *,
    bins: int = 40,
    mass_range: tuple[float, float] = (0.0, 300.0),
) -> float | None:
    """1/JSD (base 2) of background m_SD passing vs failing the cut at signal efficiency
    ``eff``; ``None`` when undefined (no background passes or fails) or infinite."""
    wp = roc_curve(scores, labels, weights).at_signal_eff(eff)
    return mass_sculpting(
        scores, labels, mass, weights, working_point=wp, bins=bins, mass_range=mass_range
    ).inverse_jsd


# --------------------------------------------------------------------------------------
# efficiency maps and score distributions


@dataclass(frozen=True, eq=False)
class EfficiencyMap:
    """A 2D efficiency (e.g. vs jet pT and eta): weighted totals and passing events."""

    total: hist.Hist
    passed: hist.Hist

    @property
    def efficiency(self) -> FloatArray:
        """Weighted efficiency per bin; NaN in bins without events."""
        tot = self.total.values()
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(tot != 0, self.passed.values() / tot, np.nan)

    @property
    def error(self) -> FloatArray:
        """Binomial error per bin with the bin's effective count; NaN without events."""
        tot, var = self.total.values(), self.total.variances()
        assert var is not None  # Weight storage
        with np.errstate(divide="ignore", invalid="ignore"):
            n_eff = np.where(var > 0, tot**2 / var, np.nan)
        return np.asarray(_binomial_err(self.efficiency, n_eff))


def efficiency_map(
    passed: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    x_axis: hist.axis.AxisProtocol,
    y_axis: hist.axis.AxisProtocol,
) -> EfficiencyMap:
    """Efficiency of the boolean ``passed`` in bins of ``x`` and ``y`` (hist axes).

    For a tagging efficiency map pass the signal jets' ``score >= wp.threshold``; for a mistag
    map the background jets'.
    """
    ok = np.asarray(passed, dtype=bool)
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not (ok.ndim == 1 and xs.shape == ok.shape and ys.shape == ok.shape):
        raise ValueError("passed, x and y must be 1D of equal length")
    w = _weights(weights, len(ok))
    total = hist.Hist(x_axis, y_axis, storage=hist.storage.Weight()).fill(xs, ys, weight=w)
    passing = hist.Hist(x_axis, y_axis, storage=hist.storage.Weight()).fill(
        xs[ok], ys[ok], weight=w[ok]
    )
    return EfficiencyMap(total=total, passed=passing)


def score_histograms(
    scores: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    weights: ArrayLike | None = None,
    *,
    bins: int = 50,
) -> dict[str, hist.Hist]:
    """Weighted histograms in [0, 1] of ``scores`` for each true class (integer labels)."""
    s, t = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    w = _weights(weights, len(s))
    axis = hist.axis.Regular(bins, 0.0, 1.0, name="score", label="score")
    return {
        name: hist.Hist(axis, storage=hist.storage.Weight()).fill(s[t == i], weight=w[t == i])
        for i, name in enumerate(class_names)
    }


# --------------------------------------------------------------------------------------
# multi-class


def pairwise_discriminant(probs: ArrayLike, signal: int, background: int) -> FloatArray:
    """``p_s / (p_s + p_b)`` for class columns ``signal`` and ``background`` of ``probs``
    (ParticleNet-MD style); 0.5 where both probabilities are 0 (neither is favoured)."""
    p = np.asarray(probs, dtype=np.float64)
    ps, pb = p[:, signal], p[:, background]
    total = ps + pb
    return np.divide(ps, total, out=np.full_like(ps, 0.5), where=total > 0)


def confusion_matrix(
    labels: ArrayLike,
    predicted: ArrayLike,
    n_classes: int,
    weights: ArrayLike | None = None,
    *,
    normalize: bool = False,
) -> FloatArray:
    """Weighted confusion matrix, rows = true class, columns = predicted class.

    With ``normalize`` each row is divided by its sum (the fraction of each true class
    predicted as each class); rows of classes without events stay 0.
    """
    t, p = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"labels {t.shape} and predicted {p.shape} must be 1D of equal length")
    if len(t) and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
        raise ValueError(f"class indices must be in [0, {n_classes})")
    w = _weights(weights, len(t))
    flat = np.bincount(t * n_classes + p, weights=w, minlength=n_classes**2)
    cm: FloatArray = flat.astype(np.float64).reshape(n_classes, n_classes)
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows != 0)
    return cm


def macro_auc(probs: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Mean over classes of the one-vs-rest AUC of each class's probability."""
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    return float(np.mean([auc(p[:, c], t == c, weights) for c in range(p.shape[1])]))


# --------------------------------------------------------------------------------------
# regression


@dataclass(frozen=True)
class Response:
    """Summary of the response ``predicted / true``."""

    median: float
    iqr: float

    @property
    def resolution(self) -> float:
        """IQR/2 over the median."""
        return self.iqr / 2 / self.median


def _weighted_quantiles(x: FloatArray, w: FloatArray, q: Sequence[float]) -> FloatArray:
    # inverted CDF: the smallest value whose weighted CDF reaches q (no interpolation)
    return np.quantile(x, q, weights=w, method="inverted_cdf")


def _response(predicted: ArrayLike, true: ArrayLike) -> FloatArray:
    pred, tru = np.asarray(predicted, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if pred.shape != tru.shape or pred.ndim != 1:
        raise ValueError(f"predicted {pred.shape} and true {tru.shape} must be 1D, equal length")
    if np.any(tru == 0):
        raise DataError("true values of 0 make the response predicted/true undefined")
    return pred / tru


def response(predicted: ArrayLike, true: ArrayLike, weights: ArrayLike | None = None) -> Response:
    """Weighted median and interquartile range of ``predicted / true``."""
    r = _response(predicted, true)
    w = _weights(weights, len(r))
    q25, q50, q75 = _weighted_quantiles(r, w, [0.25, 0.5, 0.75])
    return Response(median=float(q50), iqr=float(q75 - q25))


@dataclass(frozen=True, eq=False)
class Resolution:
    """Response median, IQR and resolution in bins of a variable (NaN in empty bins)."""

    edges: FloatArray
    median: FloatArray
    iqr: FloatArray
    counts: NDArray[np.int64]

    @property
    def resolution(self) -> FloatArray:
        """IQR/2 over the median in each bin."""
        return self.iqr / 2 / self.median


def resolution_in_bins(
    predicted: ArrayLike,
    true: ArrayLike,
    variable: ArrayLike,
    edges: ArrayLike,
    weights: ArrayLike | None = None,
) -> Resolution:
    """Response summary in bins ``[edges[i], edges[i+1])`` of ``variable``."""
    r = _response(predicted, true)
    v = np.asarray(variable, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    w = _weights(weights, len(r))
    idx = np.digitize(v, e) - 1
    n_bins = len(e) - 1
    median, iqr = np.full(n_bins, np.nan), np.full(n_bins, np.nan)
    counts = np.bincount(idx[(idx >= 0) & (idx < n_bins)], minlength=n_bins)
    for i in np.flatnonzero(counts):
        sel = idx == i
        q25, median[i], q75 = _weighted_quantiles(r[sel], w[sel], [0.25, 0.5, 0.75])
        iqr[i] = q75 - q25
    return Resolution(edges=e, median=median, iqr=iqr, counts=counts)


# --------------------------------------------------------------------------------------
# bootstrap and the metrics.json structure


def bootstrap(
    statistic: Callable[[NDArray[np.intp]], ArrayLike],
    groups: ArrayLike,
    *,
    n_boot: int = 100,
    seed: int = 0,
) -> FloatArray:
    """Evaluate ``statistic(indices)`` on ``n_boot`` resamples of the events.

    Each resample draws, with replacement, as many events from each group (e.g. each true
    class) as the group holds, so every resample keeps the class counts. Returns an array of
    shape ``(n_boot, ...)``; a statistic returns NaN where it is undefined.
    """
    g = np.asarray(groups)
    members = [np.flatnonzero(g == k) for k in np.unique(g)]
    rng = np.random.default_rng(seed)
    return np.array(
        [
            statistic(np.concatenate([rng.choice(m, size=len(m)) for m in members]))
            for _ in range(n_boot)
        ],
        dtype=np.float64,
    )


def _spread(samples: FloatArray) -> FloatArray:
    """Standard deviation per column over the resamples where the statistic is defined
    (not NaN); NaN where fewer than two are."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0", RuntimeWarning)
        return np.asarray(np.nanstd(samples, axis=0, ddof=1))


def _key(x: float) -> str:
    return format(x, "g")


def _binary_values(
    s: FloatArray,
    y: NDArray[np.bool_],
    w: FloatArray,
    mass: FloatArray | None,
    efficiencies: Sequence[float],
    mistags: Sequence[float],
    sculpting_efficiencies: Sequence[float],
) -> tuple[FloatArray, list[WorkingPoint]]:
    """[auc, accuracy, eps_B at each efficiency, eps_S at each mistag, JSD at each
    sculpting efficiency (NaN where undefined)] and the working points at ``efficiencies``."""
    roc = roc_curve(s, y, w)
    wps = [roc.at_signal_eff(e) for e in efficiencies]
    jsds = []
    for e in sculpting_efficiencies:
        assert mass is not None
        d = mass_sculpting(s, y, mass, w, working_point=roc.at_signal_eff(e)).jsd
        jsds.append(np.nan if d is None else d)
    values = [
        roc.auc,
        accuracy(s >= 0.5, y, w),
        *(wp.background_eff for wp in wps),
        *(roc.at_background_eff(m).signal_eff for m in mistags),
        *jsds,
    ]
    return np.array(values), wps


def binary_metrics(
    scores: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    mass: ArrayLike | None = None,
    efficiencies: Sequence[float] = (0.3, 0.5),
    mistags: Sequence[float] = (0.01, 0.001),
    sculpting_efficiencies: Sequence[float] = (0.5,),
    n_boot: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``metrics.json`` structure of a binary classifier (labels 1 = signal).

    ``{"n_signal": {"raw", "weighted"}, "n_background": {...}, "auc": {"value", "err"},
    "accuracy": {...} (cut at 0.5), "rejection_at_eff": {"0.3": {"value", "err",
    "lower_limit"}, ...}, "eff_at_mistag": {"0.01": {"value", "err"}, ...},
    "jsd_inverse_at_eff": {"0.5": {"value", "err"}}}``. ``err`` is the bootstrap standard
    deviation (``n_boot`` resamples within each class, seeded); for 1/eps_B and 1/JSD it is
    propagated from the spread of eps_B and JSD. ``jsd_inverse_at_eff`` needs ``mass``
    (m_SD in GeV) and is left out without it. Unavailable numbers are ``None`` (JSON null).
    """
    s, y, w = _binary_inputs(scores, labels, weights)
    m = None
    if mass is not None:
        m = np.asarray(mass, dtype=np.float64)
        if m.shape != s.shape:
            raise ValueError(f"mass {m.shape} and scores {s.shape} differ in shape")
    sculpt = tuple(sculpting_efficiencies) if m is not None else ()
    args = (tuple(efficiencies), tuple(mistags), sculpt)
    nominal, wps = _binary_values(s, y, w, m, *args)
    boot = bootstrap(
        lambda i: _binary_values(s[i], y[i], w[i], None if m is None else m[i], *args)[0],
        y,
        n_boot=n_boot,
        seed=seed,
    )
    sections = np.cumsum([1, 1, len(efficiencies), len(mistags)])
    auc_v, acc_v, eps_b, eff_s, jsds = np.split(nominal, sections)
    auc_e, acc_e, eps_b_err, eff_s_err, jsd_err = np.split(_spread(boot), sections)

    def inverse(x: float, dx: float) -> dict[str, float | None]:
        if not (np.isfinite(x) and x > 0):
            return {"value": None, "err": None}
        return {"value": 1.0 / x, "err": _finite_or_none(dx / x**2)}

    out: dict[str, Any] = {
        "n_signal": {"raw": int(y.sum()), "weighted": float(w[y].sum())},
        "n_background": {"raw": int((~y).sum()), "weighted": float(w[~y].sum())},
        "auc": {"value": float(auc_v[0]), "err": _finite_or_none(auc_e[0])},
        "accuracy": {"value": float(acc_v[0]), "err": _finite_or_none(acc_e[0])},
        "rejection_at_eff": {
            _key(e): {**inverse(b, db), "lower_limit": wp.rejection_lower_limit}
            for e, b, db, wp in zip(efficiencies, eps_b, eps_b_err, wps, strict=True)
        },
        "eff_at_mistag": {
            _key(mt): {"value": float(v), "err": _finite_or_none(dv)}
            for mt, v, dv in zip(mistags, eff_s, eff_s_err, strict=True)
        },
    }
    if m is not None:
        out["jsd_inverse_at_eff"] = {
            _key(e): inverse(d, dd) for e, d, dd in zip(sculpt, jsds, jsd_err, strict=True)
        }
    return out


def multiclass_metrics(
    probs: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    weights: ArrayLike | None = None,
    *,
    mass: ArrayLike | None = None,
    efficiencies: Sequence[float] = (0.3, 0.5),
    mistags: Sequence[float] = (0.01, 0.001),
    sculpting_efficiencies: Sequence[float] = (0.5,),
    n_boot: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``metrics.json`` structure of a multi-class classifier (integer labels).

    ``{"n_events": {class: {"raw", "weighted"}}, "auc": macro one-vs-rest {"value", "err"},
    "accuracy": argmax {"value", "err"}, "per_class": {class: binary_metrics one-vs-rest},
    "confusion": {"classes": [...], "matrix": rows = true class normalised to 1}}``.
    """
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    n_classes = len(class_names)
    if p.ndim != 2 or p.shape != (len(t), n_classes):
        raise ValueError(f"probs {p.shape} must be (n_events={len(t)}, n_classes={n_classes})")
    w = _weights(weights, len(t))
    predicted = p.argmax(axis=1)

    def values(i: NDArray[np.intp]) -> list[float]:
        return [macro_auc(p[i], t[i], w[i]), accuracy(predicted[i], t[i], w[i])]

    nominal = values(np.arange(len(t)))
    err = _spread(bootstrap(values, t, n_boot=n_boot, seed=seed))
    options: Mapping[str, Any] = {
        "mass": mass,
        "efficiencies": efficiencies,
        "mistags": mistags,
        "sculpting_efficiencies": sculpting_efficiencies,
        "n_boot": n_boot,
        "seed": seed,
    }
    return {
        "n_events": {
            name: {"raw": int((t == c).sum()), "weighted": float(w[t == c].sum())}
            for c, name in enumerate(class_names)
        },
        "auc": {"value": nominal[0], "err": _finite_or_none(err[0])},
        "accuracy": {"value": nominal[1], "err": _finite_or_none(err[1])},
        "per_class": {
            name: binary_metrics(p[:, c], t == c, w, **options)
            for c, name in enumerate(class_names)
        },
        "confusion": {
            "classes": list(class_names),
            "matrix": confusion_matrix(t, predicted, n_classes, w, normalize=True).tolist(),
        },
    }


def regression_metrics(
    predicted: ArrayLike,
    true: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    n_boot: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``metrics.json`` structure of a regression: ``response_median``, ``response_iqr``
    and ``resolution`` (IQR/2 over median) of ``predicted / true``, each ``{"value", "err"}``."""
    pred, tru = np.asarray(predicted, dtype=np.float64), np.asarray(true, dtype=np.float64)
    w = _weights(weights, len(pred))

    def values(i: NDArray[np.intp]) -> list[float]:
        r = response(pred[i], tru[i], w[i])
        return [r.median, r.iqr, r.resolution]

    nominal = values(np.arange(len(pred)))
    err = _spread(bootstrap(values, np.zeros(len(pred)), n_boot=n_boot, seed=seed))
    keys = ("response_median", "response_iqr", "resolution")
    return {
        k: {"value": v, "err": _finite_or_none(e)}
        for k, v, e in zip(keys, nominal, err, strict=True)
    }
