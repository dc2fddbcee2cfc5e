"""ROC curves and working points of a binary classifier (labels 1 or ``True`` for signal).

* An event passes a working point when ``score >= threshold``.
* A working point at signal efficiency ``eff`` is the tightest cut whose signal efficiency
  reaches ``eff``; a working point at mistag rate ``m`` is the loosest cut whose background
  efficiency does not exceed ``m``. Neither interpolates: each is a cut one could apply.
* Background rejection is ``1 / eps_B``. Its ``lower_limit`` is the one-sided 95% CL lower
  limit ``1 / eps_B^up`` from the Clopper-Pearson upper limit on ``eps_B`` with effective
  counts. When no background passes, ``eps_B^up = 1 - 0.05^(1/N_eff)`` (about ``3 / N_eff``,
  the rule of three), so the rejection is at least about ``N_eff / 3``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from heptagon.physics.stats import (
    FloatArray,
    binary_inputs,
    binomial_err,
    event_weights,
    n_eff,
    upper_limit,
)

__all__ = [
    "Roc",
    "WorkingPoint",
    "accuracy",
    "auc",
    "efficiency_at_mistag",
    "rejection_at_efficiency",
    "roc_curve",
]

#: Absolute tolerance when comparing efficiencies with a target (floating-point sums).
_EFF_TOL = 1e-12


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
        return float(binomial_err(self.signal_eff, self.n_signal_eff))

    @property
    def background_eff_err(self) -> float:
        """Binomial error on the background efficiency (mistag rate)."""
        return float(binomial_err(self.background_eff, self.n_background_eff))

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
        return 1.0 / upper_limit(self.background_eff, self.n_background_eff)


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
        return np.asarray(binomial_err(self.signal_eff, self.n_signal_eff))

    @property
    def background_eff_err(self) -> FloatArray:
        """Binomial errors on the background efficiencies."""
        return np.asarray(binomial_err(self.background_eff, self.n_background_eff))

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
    s, y, w = binary_inputs(scores, labels, weights)
    order = np.argsort(-s, kind="stable")
    s, y, w = s[order], y[order], w[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    w_sig = np.cumsum(np.where(y, w, 0.0))[last_of_tie]
    w_bkg = np.cumsum(np.where(y, 0.0, w))[last_of_tie]
    return Roc(
        signal_eff=np.r_[0.0, w_sig / w_sig[-1]],
        background_eff=np.r_[0.0, w_bkg / w_bkg[-1]],
        thresholds=np.r_[np.inf, s[last_of_tie]],
        n_signal_eff=n_eff(w[y]),
        n_background_eff=n_eff(w[~y]),
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
    w = event_weights(weights, len(t))
    return float(np.sum(w * (p == t)) / np.sum(w))
