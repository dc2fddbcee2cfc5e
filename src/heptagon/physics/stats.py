"""Weighted-event statistics shared by the metrics: input checks, effective counts,
binomial errors and limits, and the bootstrap.

Every function honours per-event weights (``weights=None`` means 1 for every event); the
statistical uncertainties use the effective number of events ``N_eff = (sum w)^2 / sum w^2``
so that weighted samples get the errors their statistics allow."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaincinv

from heptagon.errors import DataError

__all__ = [
    "CL",
    "FloatArray",
    "binary_inputs",
    "binomial_err",
    "bootstrap",
    "event_weights",
    "finite_or_none",
    "n_eff",
    "resamples",
    "spread",
    "upper_limit",
]

FloatArray = NDArray[np.float64]

#: Confidence level of the limits quoted on background rejection.
CL = 0.95


def event_weights(weights: ArrayLike | None, n: int) -> FloatArray:
    """The weights of ``n`` events as float64 (1 each for None); a :class:`DataError` for
    NaN or infinite weights."""
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights have shape {w.shape}, expected ({n},)")
    if not np.all(np.isfinite(w)):
        raise DataError("event weights contain NaN or infinite values")
    return w


def binary_inputs(
    scores: ArrayLike, labels: ArrayLike, weights: ArrayLike | None
) -> tuple[FloatArray, NDArray[np.bool_], FloatArray]:
    """Scores, boolean labels (True: signal) and weights of a binary problem, checked: 1D,
    equal length, finite scores, signal and background with positive total weight."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be 1D of equal length")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("binary labels must be 0/1 or boolean")
    if not np.all(np.isfinite(s)):
        raise DataError("classifier scores contain NaN or infinite values")
    y = y.astype(bool)
    w = event_weights(weights, len(s))
    if not (w[y].sum() > 0 and w[~y].sum() > 0):
        raise DataError("need signal and background events with positive total weight")
    return s, y, w


def n_eff(w: FloatArray) -> float:
    """Effective number of events (sum w)^2 / sum w^2 (0 for no events)."""
    sum_w2 = float(np.sum(w**2))
    return float(np.sum(w)) ** 2 / sum_w2 if sum_w2 > 0 else 0.0


def binomial_err(eff: Any, n: Any) -> Any:
    """sqrt(eff (1 - eff) / n), the binomial error of an efficiency over ``n`` effective
    events (scalars or arrays)."""
    return np.sqrt(np.clip(eff * (1 - eff), 0.0, None) / n)


def upper_limit(eff: float, n: float) -> float:
    """One-sided Clopper-Pearson upper limit at :data:`CL` on an efficiency over ``n``
    effective events."""
    k = eff * n
    if k >= n:
        return 1.0
    return float(betaincinv(k + 1.0, n - k, CL))


def finite_or_none(x: float) -> float | None:
    """``x`` as a float, or None (JSON null) when it is NaN or infinite."""
    return float(x) if np.isfinite(x) else None


def resamples(groups: ArrayLike, *, n_boot: int = 100, seed: int = 0) -> Iterator[NDArray[np.intp]]:
    """``n_boot`` bootstrap resamples of the events, as index arrays: each draws, with
    replacement, as many events from each group (e.g. each true class) as the group holds,
    so every resample keeps the class counts (seeded: the same resamples every time)."""
    g = np.asarray(groups)
    members = [np.flatnonzero(g == k) for k in np.unique(g)]
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield np.concatenate([rng.choice(m, size=len(m)) for m in members])


def bootstrap(
    statistic: Callable[[NDArray[np.intp]], ArrayLike],
    groups: ArrayLike,
    *,
    n_boot: int = 100,
    seed: int = 0,
) -> FloatArray:
    """Evaluate ``statistic(indices)`` on the :func:`resamples` of the events. Returns an
    array of shape ``(n_boot, ...)``; a statistic returns NaN where it is undefined."""
    return np.array(
        [statistic(i) for i in resamples(groups, n_boot=n_boot, seed=seed)], dtype=np.float64
    )


def spread(samples: ArrayLike) -> FloatArray:
    """Standard deviation per column over the resamples where the statistic is defined
    (not NaN); NaN where fewer than two are."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0", RuntimeWarning)
        return np.asarray(np.nanstd(np.asarray(samples, dtype=np.float64), axis=0, ddof=1))
