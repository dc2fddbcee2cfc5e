"""Regression response ``predicted / true``: its median, interquartile range and
resolution (IQR/2 over the median), overall and in bins of a variable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heptagon.errors import DataError
from heptagon.physics.stats import FloatArray, event_weights

__all__ = ["Resolution", "Response", "resolution_in_bins", "response"]


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
    w = event_weights(weights, len(r))
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
    w = event_weights(weights, len(r))
    idx = np.digitize(v, e) - 1
    n_bins = len(e) - 1
    median, iqr = np.full(n_bins, np.nan), np.full(n_bins, np.nan)
    counts = np.bincount(idx[(idx >= 0) & (idx < n_bins)], minlength=n_bins)
    for i in np.flatnonzero(counts):
        sel = idx == i
        q25, median[i], q75 = _weighted_quantiles(r[sel], w[sel], [0.25, 0.5, 0.75])
        iqr[i] = q75 - q25
    return Resolution(edges=e, median=median, iqr=iqr, counts=counts)
