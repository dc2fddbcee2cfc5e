"""Designed decorrelated tagger (DDT): a score cut that keeps the background efficiency
constant across jet mass and pT (Dolen et al., arXiv:1603.00027; CMS DeepAK8-DDT).

A :class:`DDTMap` holds, in bins of ``rho = ln(m_SD^2 / pT^2)`` and pT, the ``(1 - x)``
quantile ``X(rho, pT)`` of the background's score, built on a background sample. The
transformed score is ``ddt_score = score - X(rho, pT)``; the cut ``ddt_score > 0`` passes
a fraction ``x`` of the background in every bin, so it does not sculpt the mass.

Values outside the bin edges go to the edge bins; a bin the building sample left empty
gets the quantile of the whole sample. Masses in GeV, ``rho`` dimensionless (a jet with
``m_SD <= 0`` has ``rho = -inf``: the lowest bin).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heptagon.io import write_json_atomic
from heptagon.physics.metrics import WorkingPoint, mass_sculpting

__all__ = ["DDT_FILE", "DDT_OBSERVERS", "DDTMap", "build_ddt_map", "ddt_metrics", "rho"]

#: the map's file name in a run dir
DDT_FILE = "ddt.json"
#: the branches the map is applied with: m_SD and pT [GeV]
DDT_OBSERVERS = ("jet_sdmass", "jet_pt")

FloatArray = NDArray[np.float64]


def rho(mass: ArrayLike, pt: ArrayLike) -> FloatArray:
    """``ln(m^2 / pT^2)``; ``-inf`` where ``m <= 0``."""
    m, p = np.asarray(mass, dtype=np.float64), np.asarray(pt, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m > 0, 2.0 * np.log(np.where(m > 0, m, 1.0) / p), -np.inf)


def _bin(edges: FloatArray, values: FloatArray) -> NDArray[np.intp]:
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


def _quantile(values: FloatArray, weights: FloatArray, q: float) -> float:
    return float(np.quantile(values, q, weights=weights, method="inverted_cdf"))


def _edges(values: FloatArray, weights: FloatArray, bins: int | ArrayLike) -> FloatArray:
    """Explicit increasing edges, or ``bins`` weighted-quantile bins of the finite values."""
    if not isinstance(bins, int):
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bin edges must be at least two increasing values")
        return edges
    if bins < 1:
        raise ValueError(f"need at least one bin, got {bins}")
    finite = np.isfinite(values)
    qs = [_quantile(values[finite], weights[finite], q) for q in np.linspace(0, 1, bins + 1)]
    return np.unique(np.asarray(qs))


@dataclass(frozen=True, eq=False)
class DDTMap:
    """The background-score quantile ``thresholds[rho_bin, pt_bin]`` for background
    efficiency ``efficiency``, on the probability of class ``score``."""

    efficiency: float
    score: str
    rho_edges: FloatArray
    pt_edges: FloatArray
    thresholds: FloatArray

    def threshold(self, mass: ArrayLike, pt: ArrayLike) -> FloatArray:
        """``X(rho, pT)`` of each jet (m_SD and pT in GeV)."""
        p = np.asarray(pt, dtype=np.float64)
        r = rho(mass, p)
        return self.thresholds[_bin(self.rho_edges, r), _bin(self.pt_edges, p)]

    def __call__(self, score: ArrayLike, mass: ArrayLike, pt: ArrayLike) -> FloatArray:
        """``ddt_score = score - X(rho, pT)``: positive passes."""
        return np.asarray(score, dtype=np.float64) - self.threshold(mass, pt)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "efficiency": self.efficiency,
            "score": self.score,
            "rho_edges": self.rho_edges.tolist(),
            "pt_edges": self.pt_edges.tolist(),
            "thresholds": self.thresholds.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DDTMap:
        """Inverse of :meth:`to_dict`; a ``ValueError`` or ``KeyError`` if malformed."""
        ddt = cls(
            float(data["efficiency"]),
            str(data["score"]),
            np.asarray(data["rho_edges"], dtype=np.float64),
            np.asarray(data["pt_edges"], dtype=np.float64),
            np.asarray(data["thresholds"], dtype=np.float64),
        )
        shape = (len(ddt.rho_edges) - 1, len(ddt.pt_edges) - 1)
        if ddt.thresholds.shape != shape:
            raise ValueError(f"thresholds have shape {ddt.thresholds.shape}, expected {shape}")
        return ddt

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> DDTMap:
        """Read what :meth:`save` wrote."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def build_ddt_map(
    score: ArrayLike,
    mass: ArrayLike,
    pt: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    efficiency: float,
    score_name: str,
    rho_bins: int | ArrayLike = 10,
    pt_bins: int | ArrayLike = 2,
) -> DDTMap:
    """The map of the background's ``(1 - efficiency)`` score quantile, from background
    jets' ``score``, ``mass`` and ``pt`` [GeV] (weighted). ``rho_bins`` / ``pt_bins``:
    explicit edges, or a number of bins with equal background weight."""
    if not 0 < efficiency < 1:
        raise ValueError(f"efficiency must be in (0, 1), got {efficiency}")
    s = np.asarray(score, dtype=np.float64)
    p = np.asarray(pt, dtype=np.float64)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    r = rho(mass, p)
    if not (s.ndim == 1 and s.shape == p.shape == r.shape == w.shape) or not np.any(w > 0):
        raise ValueError("score, mass, pt and weights must be 1D, equal length, some weight > 0")
    rho_edges, pt_edges = _edges(r, w, rho_bins), _edges(p, w, pt_bins)
    overall = _quantile(s, w, 1.0 - efficiency)
    thresholds = np.full((len(rho_edges) - 1, len(pt_edges) - 1), overall)
    rb, pb = _bin(rho_edges, r), _bin(pt_edges, p)
    for i, j in np.ndindex(*thresholds.shape):
        sel = (rb == i) & (pb == j) & (w > 0)
        if sel.any():
            thresholds[i, j] = _quantile(s[sel], w[sel], 1.0 - efficiency)
    return DDTMap(efficiency, score_name, rho_edges, pt_edges, thresholds)


def ddt_metrics(
    ddt_score: ArrayLike, labels: ArrayLike, mass: ArrayLike, weights: ArrayLike | None = None
) -> dict[str, float | None]:
    """The DDT cut ``ddt_score > 0`` on a labelled sample (labels: True for signal): its
    signal and background efficiencies, background rejection and the 1/JSD (base 2, m_SD
    in 40 bins from 0 to 300 GeV) of the background passing vs failing it."""
    s = np.asarray(ddt_score, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    passed = s > 0
    sig, bkg = w[y].sum(), w[~y].sum()
    if sig <= 0 or bkg <= 0:
        raise ValueError("need signal and background with positive weight")
    eff_s, eff_b = float(w[y & passed].sum() / sig), float(w[~y & passed].sum() / bkg)
    n_eff = [float(v.sum() ** 2 / np.square(v).sum()) for v in (w[y], w[~y])]
    wp = WorkingPoint(float(np.nextafter(0.0, 1.0)), eff_s, eff_b, *n_eff)
    sculpting = mass_sculpting(s, y, mass, w, working_point=wp)
    return {
        "signal_eff": eff_s,
        "background_eff": eff_b,
        "rejection": wp.rejection,
        "jsd_inverse": sculpting.inverse_jsd,
    }
