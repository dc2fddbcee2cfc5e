"""The monitored histograms and what the methods read from them.

Every lumisection (LS) holds the histograms of :data:`HISTOGRAMS` (booked with ``hist``):
jet kinematics, jet energy fractions by particle type, constituent and track
multiplicities, a missing-HT-like quantity and two eta-phi occupancy maps of calorimeter
deposits. The methods read them in two forms:

- :func:`summary_features`: per-histogram summaries (mean, std, 10/50/90 % quantiles of
  the 1D histograms, the fraction of entries in coarse 4 x 4 cells of the 2D maps) plus
  the event rate per unit luminosity: the tabular input of the supervised classifiers;
- :func:`histogram_vectors`: the histograms normalised to unit area, flattened and
  concatenated (with the rate as one more entry): the input of PCA and the autoencoders
  (:func:`histogram_shapes` and :func:`histogram_slices` say where each histogram lies).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import hist
import numpy as np

__all__ = [
    "HISTOGRAMS",
    "OCCUPANCY_MAPS",
    "HistSpec",
    "book",
    "histogram_shapes",
    "histogram_slices",
    "histogram_vectors",
    "summary_features",
]

#: the occupancy maps' grid: 12 x 12 cells of 0.5 x 0.52 (about 6 x 6 HCAL towers, so that a
#: cell sees enough deposits in one LS)
MAP_ETA = (12, -3.0, 3.0)
MAP_PHI = (12, -np.pi, np.pi)
#: coarse cells of the maps in the summary features
COARSE = 4


@dataclass(frozen=True)
class HistSpec:
    """A monitored histogram: its name, axis label and how to book it."""

    name: str
    label: str
    book: Callable[[], hist.Hist[Any]]

    @property
    def ndim(self) -> int:
        return len(self.book().axes)


def _h1(
    bins: int, lo: float, hi: float, label: str, *, log: bool = False
) -> Callable[[], hist.Hist[Any]]:
    transform = hist.axis.transform.log if log else None
    return lambda: hist.Hist(hist.axis.Regular(bins, lo, hi, transform=transform, label=label))


def _occupancy() -> hist.Hist[Any]:
    return hist.Hist(
        hist.axis.Regular(*MAP_ETA, label="eta"),
        hist.axis.Regular(*MAP_PHI, label="phi [rad]"),
    )


_FRACTIONS = {
    "frac_chhad": "charged-hadron",
    "frac_nhad": "neutral-hadron",
    "frac_photon": "photon",
    "frac_ele": "electron",
    "frac_mu": "muon",
}

#: name -> spec of every monitored histogram, in a fixed order
HISTOGRAMS: dict[str, HistSpec] = {
    s.name: s
    for s in (
        HistSpec("jet_pt", "jet pT [GeV]", _h1(40, 30.0, 1000.0, "jet pT [GeV]", log=True)),
        HistSpec("jet_eta", "jet eta", _h1(30, -3.0, 3.0, "jet eta")),
        HistSpec("jet_phi", "jet phi [rad]", _h1(32, -np.pi, np.pi, "jet phi [rad]")),
        *(
            HistSpec(name, f"jet {what} energy fraction", _h1(20, 0.0, 1.0, f"{what} fraction"))
            for name, what in _FRACTIONS.items()
        ),
        HistSpec("jet_nconst", "constituents per jet", _h1(30, 0.0, 60.0, "constituents")),
        HistSpec("jet_ntracks", "tracks per jet", _h1(25, 0.0, 50.0, "tracks")),
        HistSpec("mht", "missing HT [GeV]", _h1(30, 0.0, 150.0, "missing HT [GeV]")),
        HistSpec("occ_neutral", "neutral calorimeter deposits (eta, phi)", _occupancy),
        HistSpec("occ_charged", "charged calorimeter deposits (eta, phi)", _occupancy),
    )
}
#: the 2D eta-phi occupancy maps
OCCUPANCY_MAPS = ("occ_neutral", "occ_charged")


def book() -> dict[str, hist.Hist[Any]]:
    """One empty histogram of each kind."""
    return {name: spec.book() for name, spec in HISTOGRAMS.items()}


def _centers(name: str) -> np.ndarray:
    return np.asarray(HISTOGRAMS[name].book().axes[0].centers)


def _quantiles(counts: np.ndarray, centers: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles ``(n, len(qs))`` of binned distributions ``(n, bins)`` (bin centres)."""
    cdf = np.cumsum(counts, axis=1) / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)
    idx = np.stack([(cdf < q).sum(axis=1) for q in qs], axis=1)
    return np.asarray(centers[np.minimum(idx, len(centers) - 1)])


def summary_features(
    counts: Mapping[str, np.ndarray], rate: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Tabular features ``(n, n_features)`` and their names from ``counts[name]`` of shape
    ``(n, *bins)`` (n LS or runs) and the event rate per unit luminosity ``(n,)``."""
    columns: list[np.ndarray] = []
    names: list[str] = []
    for name, spec in HISTOGRAMS.items():
        c = np.asarray(counts[name], dtype=float)
        total = np.maximum(c.reshape(len(c), -1).sum(axis=1), 1e-12)
        if spec.ndim == 1:
            x = _centers(name)
            mean = c @ x / total
            std = np.sqrt(np.maximum(c @ x**2 / total - mean**2, 0.0))
            quant = _quantiles(c, x, (0.1, 0.5, 0.9))
            columns += [mean, std, *quant.T]
            names += [f"{name}:{s}" for s in ("mean", "std", "q10", "q50", "q90")]
        else:
            n, ne, nphi = c.shape
            cells = c.reshape(n, COARSE, ne // COARSE, COARSE, nphi // COARSE).sum(axis=(2, 4))
            frac = cells.reshape(n, -1) / total[:, None]
            columns += list(frac.T)
            names += [f"{name}:cell{i // COARSE}{i % COARSE}" for i in range(COARSE * COARSE)]
    columns.append(np.asarray(rate, dtype=float))
    names.append("rate")
    return np.stack(columns, axis=1), names


def histogram_shapes() -> dict[str, tuple[int, ...]]:
    """The bins of each histogram: ``(bins,)`` in 1D, ``(eta, phi)`` for the maps."""
    return {name: tuple(int(n) for n in spec.book().axes.size) for name, spec in HISTOGRAMS.items()}


def histogram_slices() -> dict[str, slice]:
    """Where each histogram lies in a :func:`histogram_vectors` row (``rate`` is last)."""
    out: dict[str, slice] = {}
    start = 0
    for name, shape in histogram_shapes().items():
        size = int(np.prod(shape))
        out[name] = slice(start, start + size)
        start += size
    out["rate"] = slice(start, start + 1)
    return out


def histogram_vectors(counts: Mapping[str, np.ndarray], rate: np.ndarray) -> np.ndarray:
    """Unit-area histograms, flattened and concatenated, then the rate: ``(n, n_bins + 1)``."""
    parts = []
    for name in HISTOGRAMS:
        c = np.asarray(counts[name], dtype=float)
        flat = c.reshape(len(c), -1)
        parts.append(flat / np.maximum(flat.sum(axis=1, keepdims=True), 1e-12))
    parts.append(np.asarray(rate, dtype=float)[:, None])
    return np.concatenate(parts, axis=1)
