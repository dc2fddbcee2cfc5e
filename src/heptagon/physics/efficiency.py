"""Efficiency maps (e.g. vs jet pT and eta) and score distributions per class."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hist
import numpy as np
from numpy.typing import ArrayLike

from heptagon.physics.stats import FloatArray, binomial_err, event_weights

__all__ = ["EfficiencyMap", "efficiency_map", "score_histograms"]


@dataclass(frozen=True, eq=False)
class EfficiencyMap:
    """A 2D efficiency (e.g. vs jet pT and eta): weighted totals and passing events."""

    total: hist.Hist[Any]
    passed: hist.Hist[Any]

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
        return np.asarray(binomial_err(self.efficiency, n_eff))


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
    w = event_weights(weights, len(ok))
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
) -> dict[str, hist.Hist[Any]]:
    """Weighted histograms in [0, 1] of ``scores`` for each true class (integer labels)."""
    s, t = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    w = event_weights(weights, len(s))
    axis = hist.axis.Regular(bins, 0.0, 1.0, name="score", label="score")
    return {
        name: hist.Hist(axis, storage=hist.storage.Weight()).fill(s[t == i], weight=w[t == i])
        for i, name in enumerate(class_names)
    }
