"""Heavy-flavour tagging quantities, defined once: track impact parameters signed by the
jet axis, the track-to-jet distance, secondary-vertex (SV) flight distances and angles,
and the CMS discriminants with their working points (docs/flavour.md).

Units: lengths in mm (as the ``part_d0val`` / ``part_dzval`` branches), momenta and
masses in GeV. The primary vertex is the origin (the generated samples' beam spot);
tracks are straight lines (the detector's impact parameters use the same approximation).

Track parameters: ``d0`` is the transverse impact parameter ``(x py - y px) / pT`` of the
production point ``(x, y)``, ``dz`` the z of the track at its transverse point of closest
approach (PCA), the PCA itself is ``(d0 uy, -d0 ux, dz)`` with ``u`` the unit transverse
direction. A signed impact parameter is ``|IP|`` times the sign of ``PCA . jet``: positive
when the track crosses the jet axis downstream of the primary vertex, as the products of
a b- or c-hadron decay do; resolution effects spread prompt tracks symmetrically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from heptagon.artifacts.metrics import BinaryMetrics, FlavourMetrics, FlavourWorkingPoint
from heptagon.physics.roc import Roc, roc_curve
from heptagon.physics.stats import FloatArray, event_weights
from heptagon.physics.summaries import binary_metrics

__all__ = [
    "B_EFFICIENCY",
    "C_MISTAGS",
    "FLAVOURS",
    "LIGHT",
    "LIGHT_MISTAGS",
    "TAGGERS",
    "WORKING_POINTS",
    "Track",
    "cos_theta_flight",
    "discriminants",
    "flavour_metrics",
    "flavour_rocs",
    "flight_distances",
    "ip2d",
    "ip3d",
    "ip3d_error",
    "track_features",
    "track_jet_distance",
]

#: the flavour classes of ``ak4-flavour``, in its label order
FLAVOURS = ("b", "c", "uds", "g")
#: the light classes (the mistag of a b or c tagger)
LIGHT = ("uds", "g")
#: b efficiency at which light and c rejections are quoted
B_EFFICIENCY = 0.7
#: light mistag rates of the b-tagging working points (CMS loose, medium, tight)
LIGHT_MISTAGS = (0.1, 0.01, 0.001)
WORKING_POINTS = dict(zip(("loose", "medium", "tight"), LIGHT_MISTAGS, strict=True))
#: mistag rates at which the c efficiency of CvsL (light) and CvsB (b) is quoted
C_MISTAGS = (0.1, 0.01)


@dataclass(frozen=True)
class Track:
    """Measured track parameters (flat arrays): impact parameters ``d0``, ``dz`` (mm) and
    their errors, and the momentum ``px, py, pz`` (GeV)."""

    d0: FloatArray
    dz: FloatArray
    d0err: FloatArray
    dzerr: FloatArray
    px: FloatArray
    py: FloatArray
    pz: FloatArray

    def _unit(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """(ux, uy) transverse unit direction, (nx, ny, nz) the 3D one."""
        pt = np.maximum(np.hypot(self.px, self.py), 1e-12)
        p = np.maximum(np.sqrt(pt**2 + self.pz**2), 1e-12)
        return self.px / pt, self.py / pt, self.px / p, self.py / p, self.pz / p

    def pca(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The transverse point of closest approach to the primary vertex (mm)."""
        ux, uy, *_ = self._unit()
        return self.d0 * uy, -self.d0 * ux, self.dz


def _sign(x: FloatArray) -> FloatArray:
    """+1 for x >= 0, -1 otherwise (a track exactly on the axis counts as downstream)."""
    return np.where(x >= 0, 1.0, -1.0)


def ip2d(t: Track, jet_px: FloatArray, jet_py: FloatArray) -> FloatArray:
    """Transverse impact parameter (mm) signed by the jet axis:
    ``|d0| sign(PCA_xy . jet_xy) = d0 sign(jet_x uy - jet_y ux)``."""
    ux, uy, *_ = t._unit()
    return np.asarray(t.d0 * _sign(jet_px * uy - jet_py * ux))


def ip3d(t: Track, jet_px: FloatArray, jet_py: FloatArray, jet_pz: FloatArray) -> FloatArray:
    """3D impact parameter (mm) signed by the jet axis: the distance of the track line
    from the primary vertex, ``sqrt(d0^2 + (dz sin(theta))^2)``, signed by
    ``PCA3D . jet`` with ``PCA3D = PCA - (PCA . n) n`` (``n`` the track direction)."""
    x, y, z = t.pca()
    _, _, nx, ny, nz = t._unit()
    along = x * nx + y * ny + z * nz
    px3, py3, pz3 = x - along * nx, y - along * ny, z - along * nz
    size = np.sqrt(px3**2 + py3**2 + pz3**2)
    return np.asarray(size * _sign(px3 * jet_px + py3 * jet_py + pz3 * jet_pz))


def ip3d_error(t: Track) -> FloatArray:
    """Error (mm) of the 3D impact parameter, propagated from ``d0err`` and ``dzerr``
    (uncorrelated): ``sqrt((d0 d0err)^2 + (s^2 dz dzerr)^2) / IP3D`` with
    ``s = sin(theta)``; at ``IP3D = 0``, ``sqrt(d0err^2 + (s dzerr)^2) / sqrt(2)``."""
    _, _, _, _, nz = t._unit()
    s2 = 1.0 - nz**2
    size = np.sqrt(t.d0**2 + s2 * t.dz**2)
    num = np.sqrt((t.d0 * t.d0err) ** 2 + (s2 * t.dz * t.dzerr) ** 2)
    at_zero = np.sqrt((t.d0err**2 + s2 * t.dzerr**2) / 2)
    return np.asarray(np.where(size > 0, num / np.where(size > 0, size, 1.0), at_zero))


def track_jet_distance(
    t: Track, jet_px: FloatArray, jet_py: FloatArray, jet_pz: FloatArray
) -> FloatArray:
    """Distance of closest approach (mm, >= 0) between the track line and the jet axis
    (the line through the primary vertex along the jet): ``|PCA . (n x j)| / |n x j|``;
    for a track parallel to the axis, its distance from the primary vertex."""
    x, y, z = t.pca()
    _, _, nx, ny, nz = t._unit()
    cx, cy, cz = ny * jet_pz - nz * jet_py, nz * jet_px - nx * jet_pz, nx * jet_py - ny * jet_px
    norm = np.sqrt(cx**2 + cy**2 + cz**2)
    parallel = norm <= 1e-12 * np.sqrt(jet_px**2 + jet_py**2 + jet_pz**2)
    dist = np.abs(x * cx + y * cy + z * cz) / np.where(parallel, 1.0, norm)
    return np.asarray(np.where(parallel, np.abs(ip3d(t, jet_px, jet_py, jet_pz)), dist))


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den, 0 where den <= 0 (a neutral candidate has no errors)."""
    return np.asarray(np.divide(num, den, out=np.zeros_like(num), where=den > 0))


def track_features(
    t: Track, jet_px: FloatArray, jet_py: FloatArray, jet_pz: FloatArray
) -> dict[str, FloatArray]:
    """The per-track inputs (DeepJet's ``Cpfcan_BtagPf_*``): ``ip2d``, ``ip2d_sig``,
    ``ip3d``, ``ip3d_sig`` (signed, mm; significance = value / error) and ``jet_dist``
    (mm). Arrays are per track with the jet's momentum repeated per track."""
    i2 = ip2d(t, jet_px, jet_py)
    i3 = ip3d(t, jet_px, jet_py, jet_pz)
    return {
        "ip2d": i2,
        "ip2d_sig": _ratio(i2, t.d0err),
        "ip3d": i3,
        "ip3d_sig": _ratio(i3, ip3d_error(t)),
        "jet_dist": track_jet_distance(t, jet_px, jet_py, jet_pz),
    }


def flight_distances(position: FloatArray, covariance: FloatArray) -> dict[str, FloatArray]:
    """SV flight distances from the primary vertex (the origin): ``dxy`` (transverse) and
    ``d3d`` (mm) of ``(n, 3)`` positions, and their significances ``dxysig``, ``d3dsig``
    (distance over its error ``sqrt(d^T C d) / |d|``, ``C`` the ``(n, 3, 3)`` position
    covariance in mm^2)."""
    pos = np.asarray(position, dtype=np.float64)
    cov = np.asarray(covariance, dtype=np.float64)
    out: dict[str, FloatArray] = {}
    for name, axes in (("dxy", 2), ("d3d", 3)):
        d = pos[:, :axes]
        size = np.sqrt((d * d).sum(axis=1))
        unit = d / np.where(size > 0, size, 1.0)[:, None]
        var = np.einsum("ni,nij,nj->n", unit, cov[:, :axes, :axes], unit)
        out[name] = size
        out[f"{name}sig"] = _ratio(size, np.sqrt(np.maximum(var, 0.0)))
    return out


def cos_theta_flight(position: FloatArray, momentum: FloatArray) -> FloatArray:
    """Cosine of the angle between the SV flight direction (primary vertex to SV) and its
    momentum (DeepJet's ``sv_costhetasvpv``), for ``(n, 3)`` arrays; 0 at zero length."""
    pos, mom = np.asarray(position, np.float64), np.asarray(momentum, np.float64)
    norm = np.linalg.norm(pos, axis=1) * np.linalg.norm(mom, axis=1)
    return _ratio((pos * mom).sum(axis=1), norm)


# ------------------------------------------------------------------ discriminants


def discriminants(probs: Mapping[str, ArrayLike]) -> dict[str, FloatArray]:
    """The CMS discriminants from per-class probabilities ``b``, ``c``, ``uds``, ``g``:
    ``BvsAll = P(b) / (P(b) + P(c) + P(uds) + P(g))``, ``CvsL = P(c) / (P(c) + P(uds) +
    P(g))``, ``CvsB = P(c) / (P(c) + P(b))``; 0 where the denominator is 0."""
    p = {k: np.asarray(probs[k], dtype=np.float64) for k in FLAVOURS}
    light = p["uds"] + p["g"]
    return {
        "BvsAll": _ratio(p["b"], p["b"] + p["c"] + light),
        "CvsL": _ratio(p["c"], p["c"] + light),
        "CvsB": _ratio(p["c"], p["c"] + p["b"]),
    }


#: the binary taggers quoted: key -> (discriminant, signal classes, background classes)
TAGGERS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "b_vs_light": ("BvsAll", ("b",), LIGHT),
    "b_vs_c": ("BvsAll", ("b",), ("c",)),
    "c_vs_light": ("CvsL", ("c",), LIGHT),
    "c_vs_b": ("CvsB", ("c",), ("b",)),
}
#: the mistag rates each tagger's signal efficiency is quoted at
_MISTAGS = {"b_vs_light": LIGHT_MISTAGS, "b_vs_c": (), "c_vs_light": C_MISTAGS, "c_vs_b": C_MISTAGS}


@dataclass(frozen=True)
class _Split:
    """A flavour sample's discriminants, integer labels and weights by class name."""

    disc: dict[str, FloatArray]
    labels: np.ndarray
    weights: FloatArray
    column: dict[str, int]

    def pair(self, tagger: str) -> tuple[FloatArray, np.ndarray, FloatArray]:
        """Scores, is-signal and weights of the jets of the tagger's two groups."""
        name, signal, background = TAGGERS[tagger]
        sig = [self.column[c] for c in signal]
        keep = np.isin(self.labels, [*sig, *(self.column[c] for c in background)])
        return self.disc[name][keep], np.isin(self.labels[keep], sig), self.weights[keep]

    def efficiency(self, names: Sequence[str], threshold: float) -> float:
        """Weighted fraction of the jets of classes ``names`` with BvsAll >= threshold."""
        sel = np.isin(self.labels, [self.column[c] for c in names])
        return float(
            self.weights[sel & (self.disc["BvsAll"] >= threshold)].sum() / self.weights[sel].sum()
        )


def _split(
    probs: ArrayLike, labels: ArrayLike, class_names: Sequence[str], weights: ArrayLike | None
) -> _Split | None:
    """None unless the classes are b, c, uds, g and b, c and light jets are all there."""
    if sorted(class_names) != sorted(FLAVOURS):
        return None
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    column = {name: list(class_names).index(name) for name in FLAVOURS}
    groups = (("b",), ("c",), LIGHT)
    if not all(np.isin(t, [column[c] for c in g]).any() for g in groups):
        return None
    disc = discriminants({k: p[:, i] for k, i in column.items()})
    return _Split(disc, t, event_weights(weights, len(t)), column)


def flavour_rocs(
    probs: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    weights: ArrayLike | None = None,
) -> dict[str, Roc]:
    """The ROC curves of :data:`TAGGERS` (``"BvsAll: b vs light"``...); empty when
    :func:`flavour_metrics` is None."""
    split = _split(probs, labels, class_names, weights)
    if split is None:
        return {}
    return {
        f"{TAGGERS[k][0]}: {k.replace('_vs_', ' vs ')}": roc_curve(*split.pair(k)) for k in TAGGERS
    }


def flavour_metrics(
    probs: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    weights: ArrayLike | None = None,
    *,
    n_boot: int = 100,
    seed: int = 0,
) -> FlavourMetrics | None:
    """The flavour-tagging numbers of a classifier whose classes are ``b, c, uds, g`` (in
    any order; None otherwise, or when b, c or light jets are missing): each of
    :data:`TAGGERS` as a binary tagger (rejection at ``B_EFFICIENCY`` signal efficiency;
    b efficiency at each ``LIGHT_MISTAGS`` for BvsAll, c efficiency at each ``C_MISTAGS``
    for CvsL and CvsB) and the BvsAll working points at the ``LIGHT_MISTAGS``."""
    split = _split(probs, labels, class_names, weights)
    if split is None:
        return None
    roc = roc_curve(*split.pair("b_vs_light"))
    wps = {}
    for name, mistag in WORKING_POINTS.items():
        wp = roc.at_background_eff(mistag)
        wps[name] = FlavourWorkingPoint(
            light_mistag=mistag,
            threshold=wp.threshold,
            b_eff=wp.signal_eff,
            c_eff=split.efficiency(("c",), wp.threshold),
            light_eff=wp.background_eff,
        )
    taggers: dict[str, BinaryMetrics] = {
        k: binary_metrics(
            *split.pair(k),
            efficiencies=(B_EFFICIENCY,),
            mistags=_MISTAGS[k],
            n_boot=n_boot,
            seed=seed,
        )
        for k in TAGGERS
    }
    return FlavourMetrics(**taggers, working_points=wps)
