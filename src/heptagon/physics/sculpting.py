"""Mass sculpting: how a cut changes the background's m_SD shape.

The divergence is the Jensen-Shannon divergence in base 2 (0 for identical, 1 for disjoint
shapes) between the m_SD distributions of background passing and failing the cut, in 40
bins from 0 to 300 GeV unless told otherwise; jets outside the range are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hist
import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.distance import jensenshannon

from heptagon.physics.roc import WorkingPoint, roc_curve
from heptagon.physics.stats import binary_inputs

__all__ = ["MassSculpting", "jsd", "jsd_inverse_at_efficiency", "mass_sculpting"]


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

    passing: hist.Hist[Any]
    failing: hist.Hist[Any]
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
    s, y, w = binary_inputs(scores, labels, weights)
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
