"""Trigger rates: a cut's background efficiency as a rate, and the signal efficiency at a
fixed background rate (how an anomaly-detection trigger is quoted).

An unbiased background sample stands for every bunch crossing, so a cut that keeps a
fraction ``eps_B`` of it fires at ``rate = eps_B x reference`` with the reference the LHC
bunch-crossing rate, 40 MHz (:data:`LHC_BUNCH_CROSSING_HZ`). CMS's Level-1 trigger accepts
about 100 kHz in all; an anomaly-detection seed might take about 1 kHz of it, i.e.
``eps_B = 1 kHz / 40 MHz = 2.5e-5``.

A sample of N background events cannot resolve an efficiency much below 1/N: when the
requested rate is below what the sample reaches (its highest-scoring background event
alone), :func:`efficiency_at_rate` quotes the cut at that lowest reachable rate and says
so (``reached`` false).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from heptagon.physics.roc import roc_curve

__all__ = [
    "LHC_BUNCH_CROSSING_HZ",
    "RateWorkingPoint",
    "efficiency_at_rate",
    "efficiency_of_rate",
    "rate_of_efficiency",
]

#: the LHC's nominal bunch-crossing rate [Hz]: every crossing is a background event
LHC_BUNCH_CROSSING_HZ = 40.0e6


def efficiency_of_rate(rate_hz: float, reference_hz: float = LHC_BUNCH_CROSSING_HZ) -> float:
    """The background efficiency that fires at ``rate_hz`` out of ``reference_hz``
    (``1e3`` of 40 MHz: 2.5e-5). Raises ValueError outside ``0 < rate <= reference``."""
    if not 0 < rate_hz <= reference_hz:
        raise ValueError(f"a rate of {rate_hz} Hz is not in (0, {reference_hz}] Hz")
    return rate_hz / reference_hz


def rate_of_efficiency(eff: float, reference_hz: float = LHC_BUNCH_CROSSING_HZ) -> float:
    """The rate [Hz] of a cut keeping a fraction ``eff`` of the background."""
    if not 0 <= eff <= 1:
        raise ValueError(f"efficiency {eff} is not in [0, 1]")
    return eff * reference_hz


@dataclass(frozen=True)
class RateWorkingPoint:
    """The cut ``score >= threshold`` at a background rate: the rate asked for, the rate
    the cut gives (``rate_hz``; the lowest the sample reaches when ``reached`` is false),
    its background efficiency and the signal efficiency with its binomial error."""

    requested_rate_hz: float
    rate_hz: float
    reached: bool
    threshold: float
    background_eff: float
    signal_eff: float
    signal_eff_err: float


def efficiency_at_rate(
    scores: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    rate_hz: float,
    reference_hz: float = LHC_BUNCH_CROSSING_HZ,
) -> RateWorkingPoint:
    """Signal efficiency (labels 1) of the loosest cut whose background rate does not
    exceed ``rate_hz`` (weighted; see the module docstring for an unreachable rate)."""
    target = efficiency_of_rate(rate_hz, reference_hz)
    roc = roc_curve(scores, labels, weights)
    floor = float(roc.background_eff[np.argmax(roc.background_eff > 0)])
    wp = roc.at_background_eff(max(target, floor))
    return RateWorkingPoint(
        requested_rate_hz=float(rate_hz),
        rate_hz=rate_of_efficiency(wp.background_eff, reference_hz),
        reached=target >= floor,
        threshold=wp.threshold,
        background_eff=wp.background_eff,
        signal_eff=wp.signal_eff,
        signal_eff_err=wp.signal_eff_err,
    )
