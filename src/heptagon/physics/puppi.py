"""Pile-up mitigation on reconstructed candidates, the way CMS does it: vertex association
of charged candidates (MiniAOD's ``fromPV``), charged-hadron subtraction (CHS) and PUPPI
weights (Bertolini, Harris, Low, Tran, arXiv:1407.6013; CMS JME-18-001). Parameters and
their CMS defaults: :class:`MitigationConfig` and ``docs/pileup.md``.

Pure numpy / scipy over flat candidate arrays with per-event counts; lengths in mm,
momenta in GeV. The leading (primary) vertex is the first vertex of each event.

**Vertex association** (:func:`vertex_association`), a simplified ``fromPV`` with CMS's
meaning of 0 and >= 2: each track goes to the vertex nearest in z to its ``dz`` (the z of
its point of closest approach to the beam line); it is *compatible* with that vertex when
``|dz - z_v| < assoc_n_sigma * dzerr`` (the detector's longitudinal resolution decides
what can be told apart). ``3`` (PVUsedInFit): nearest vertex is the PV and compatible;
``2`` (PVTight): nearest is the PV but not compatible with any vertex (displaced tracks);
``0`` (NoPV): nearest is another vertex. CMS's ``1`` (PVLoose: used in another vertex's
fit but closer to the PV) cannot occur when a track is always given to its nearest vertex.
Neutral candidates get ``3``, as in MiniAOD (they are associated to the PV by
construction).

**CHS** (:func:`chs_mask`) keeps neutrals and the charged candidates with ``fromPV > 0``.

**PUPPI** (:func:`puppi_weights`): for every candidate
``alpha_i = log sum_j (pT_j / dR_ij)^2`` over ``r_min < dR_ij < r0``, the sum running over
the charged candidates from the PV in the central region (``|eta| < eta_central``, the
tracker) and over all candidates beyond it. Per event and region, the median and RMS
(``sqrt(mean((alpha - median)^2))``, the paper's definition) of alpha over the reference
candidates (charged pile-up centrally, all candidates forward) define
``chi2_i = Theta(alpha_i - median) (alpha_i - median)^2 / RMS^2`` and the weight
``w_i = F_chi2(chi2_i; 1 dof)``. Charged candidates get 1 (from the PV: ``fromPV == 3``,
or ``fromPV`` 1 / 2 within ``|dz| < dz_cut_mm``) or 0 (pile-up). Weights below
``min_weight`` and neutrals with ``w pT < min_neutral_pt + min_neutral_pt_slope * nPV``
are set to 0. A candidate with nothing in its cone has no alpha (``-inf``, weight 0) and
does not enter the median; a region without reference candidates (no pile-up) keeps
every candidate that has an alpha (weight 1). Candidates marked ``excluded`` are nobody's
neighbour in the alpha sums (CMS's ``puppiNoLep``, the weights for lepton isolation, which
leave the leptons out: a prompt lepton would otherwise lift the pile-up around it).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial import cKDTree
from scipy.stats import chi2

__all__ = [
    "FROM_PV_NONE",
    "FROM_PV_TIGHT",
    "FROM_PV_USED_IN_FIT",
    "MitigationConfig",
    "chs_mask",
    "forward_subsample",
    "puppi_alpha",
    "puppi_weights",
    "vertex_association",
]

#: ``fromPV`` values (CMS ``pat::PackedCandidate::PVAssoc``); PVLoose (1) does not occur
FROM_PV_NONE, FROM_PV_TIGHT, FROM_PV_USED_IN_FIT = 0, 2, 3


class MitigationConfig(BaseModel):
    """Vertex association and PUPPI parameters (mm, GeV), CMS defaults (docs/pileup.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assoc_n_sigma: float = Field(3.0, gt=0, description="track-vertex compatibility, sigma(dz)")
    dz_cut_mm: float = Field(3.0, gt=0, description="PUPPI: |dz| of fromPV 1/2 tracks from PV")
    r0: float = Field(0.4, gt=0, description="PUPPI cone")
    r_min: float = Field(0.01, ge=0, description="PUPPI: pairs closer than this are skipped")
    eta_central: float = Field(2.5, gt=0, description="central (tracker) / forward boundary")
    min_weight: float = Field(0.01, ge=0, lt=1, description="weights below are set to 0")
    min_neutral_pt: tuple[float, float] = (0.2, 2.0)  # central, forward (GeV)
    min_neutral_pt_slope: tuple[float, float] = (0.015, 0.08)  # per vertex (GeV)


def vertex_association(
    counts: np.ndarray,
    charge: np.ndarray,
    dz: np.ndarray,
    dzerr: np.ndarray,
    n_vertices: np.ndarray,
    vertex_z: np.ndarray,
    n_sigma: float,
) -> np.ndarray:
    """``fromPV`` of every candidate (module docstring): ``counts`` candidates and
    ``n_vertices`` vertices (flat ``vertex_z``, mm, the PV first) per event."""
    n_ev = len(counts)
    event = np.repeat(np.arange(n_ev), counts)
    v_event = np.repeat(np.arange(n_ev), n_vertices)
    v_start = np.cumsum(n_vertices) - n_vertices
    v_rank = np.arange(vertex_z.size) - v_start[v_event]
    # one sorted key per vertex: events far apart, z within the event
    span = 2.0 * (np.abs(vertex_z).max(initial=0.0) + 1.0)
    v_key = v_event * (2 * span) + vertex_z
    order = np.argsort(v_key, kind="stable")
    v_key, v_rank, v_ev_sorted = v_key[order], v_rank[order], v_event[order]
    t_key = event * (2 * span) + np.clip(dz, -span / 2, span / 2)
    right = np.clip(np.searchsorted(v_key, t_key), 0, max(v_key.size - 1, 0))
    left = np.maximum(right - 1, 0)
    d_left = np.where(v_ev_sorted[left] == event, np.abs(t_key - v_key[left]), np.inf)
    d_right = np.where(v_ev_sorted[right] == event, np.abs(t_key - v_key[right]), np.inf)
    nearest = np.where(d_left <= d_right, left, right)
    distance = np.minimum(d_left, d_right)
    to_pv = v_rank[nearest] == 0
    compatible = distance < n_sigma * dzerr
    out = np.where(to_pv, np.where(compatible, FROM_PV_USED_IN_FIT, FROM_PV_TIGHT), FROM_PV_NONE)
    return np.where(charge != 0, out, FROM_PV_USED_IN_FIT).astype(np.int8)


def chs_mask(charge: np.ndarray, from_pv: np.ndarray) -> np.ndarray:
    """The candidates CHS keeps: neutrals and charged candidates with ``fromPV > 0``."""
    return np.asarray((charge == 0) | (from_pv > FROM_PV_NONE))


def _cone_sums(
    x: np.ndarray,
    y: np.ndarray,
    box: tuple[float, float],
    targets: np.ndarray,
    sources: np.ndarray,
    pt: np.ndarray,
    cfg: MitigationConfig,
) -> np.ndarray:
    """``sum_j (pT_j / dR_ij)^2`` over the ``sources`` j with ``r_min < dR_ij < r0`` of
    each of ``targets`` i, in the plane (x, y) with both coordinates periodic in ``box``.
    The pairs come from k-d trees of the two sets (scipy) and are summed in one pass over
    them (the forward region has ~10^5 pairs per event at mu = 200)."""
    out = np.zeros(targets.size)
    near_t, near_s = _neighbouring(x[targets], y[targets], x[sources], y[sources], cfg.r0)
    targets, sources = targets[near_t], sources[near_s]
    if targets.size == 0 or sources.size == 0:
        return out
    pts = np.column_stack([x, y])
    a = cKDTree(pts[targets], boxsize=box)
    b = cKDTree(pts[sources], boxsize=box)
    m = a.sparse_distance_matrix(b, cfg.r0, output_type="ndarray")
    dr = m["v"]
    ratio = np.divide(
        pt[sources][m["j"]], dr, out=np.zeros(dr.size), where=(dr > cfg.r_min) & (dr < cfg.r0)
    )
    out[near_t] = np.bincount(m["i"], weights=ratio * ratio, minlength=targets.size)
    return out


def _neighbouring(
    xt: np.ndarray, yt: np.ndarray, xs: np.ndarray, ys: np.ndarray, r: float
) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the targets (xt, yt) and sources (xs, ys) that have a point of the other
    set in their own or a neighbouring cell of a grid of cells at least ``r`` wide (x >= 0;
    y in [0, 2 pi), periodic): every pair closer than ``r`` is in both masks, so the pair
    search can skip the others (a central target far from every charged candidate of the
    PV has an empty cone)."""
    if xt.size == 0 or xs.size == 0:
        return np.zeros(xt.size, dtype=bool), np.zeros(xs.size, dtype=bool)
    ny = max(int(2 * np.pi / r), 1)
    nx = int(max(xt.max(), xs.max()) / r) + 1

    def cells(xv: np.ndarray, yv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (xv / r).astype(np.int64), np.minimum(
            (yv / (2 * np.pi / ny)).astype(np.int64), ny - 1
        )

    def dilated(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
        grid = np.zeros((nx + 2, ny), dtype=bool)
        grid[cx + 1, cy] = True
        grid[1:] |= grid[:-1].copy()
        grid[:-1] |= grid[1:].copy()
        return grid | np.roll(grid, 1, axis=1) | np.roll(grid, -1, axis=1)

    tx, ty = cells(xt, yt)
    sx, sy = cells(xs, ys)
    return dilated(sx, sy)[tx + 1, ty], dilated(tx, ty)[sx + 1, sy]


def puppi_alpha(
    counts: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    pv_charged: np.ndarray,
    cfg: MitigationConfig,
    excluded: np.ndarray | None = None,
    wanted: np.ndarray | None = None,
) -> np.ndarray:
    """PUPPI's alpha of every candidate (module docstring); ``-inf`` for an empty cone.
    ``pv_charged`` marks the charged candidates from the PV; ``excluded`` candidates are
    left out of every sum; only the ``wanted`` candidates' alphas are computed (all when
    None; the others get ``-inf``), their neighbours are all candidates as ever."""
    if pt.size == 0:
        return np.zeros(0)
    event = np.repeat(np.arange(len(counts)), counts)
    # dR as a distance in a plane: events side by side in eta, far apart; phi periodic
    width = float(eta.max() - eta.min()) + 2 * cfg.r0 + 1.0
    x = eta - eta.min() + event * width
    y = np.minimum(np.mod(phi + np.pi, 2 * np.pi), np.nextafter(2 * np.pi, 0))
    box = (len(counts) * width + width, 2 * np.pi)
    central = np.abs(eta) < cfg.eta_central
    source = np.ones(pt.size, dtype=bool) if excluded is None else ~excluded
    wanted = np.ones(pt.size, dtype=bool) if wanted is None else wanted
    total = np.zeros(pt.size)
    # central candidates see the charged ones from the PV; forward ones see every candidate
    for targets, sources in (
        (np.flatnonzero(central & wanted), np.flatnonzero(pv_charged & source)),
        (
            np.flatnonzero(~central & wanted),
            np.flatnonzero(source & (np.abs(eta) >= cfg.eta_central - cfg.r0)),
        ),
    ):
        total[targets] = _cone_sums(x, y, box, targets, sources, pt, cfg)
    with np.errstate(divide="ignore"):
        return np.where(total > 0, np.log(np.where(total > 0, total, 1.0)), -np.inf)


def _median_rms(group: np.ndarray, alpha: np.ndarray, n_groups: int) -> tuple[np.ndarray, ...]:
    """Median and RMS about the median of ``alpha`` per ``group`` (NaN for empty ones)."""
    order = np.lexsort((alpha, group))
    g, a = group[order], alpha[order]
    n = np.bincount(g, minlength=n_groups)
    start = np.cumsum(n) - n
    has = n > 0
    lo = start + (n - 1) // 2
    hi = start + n // 2
    median = np.full(n_groups, np.nan)
    median[has] = 0.5 * (a[lo[has]] + a[hi[has]])
    sq = np.bincount(g, weights=(a - median[g]) ** 2, minlength=n_groups)
    rms = np.full(n_groups, np.nan)
    rms[has] = np.sqrt(sq[has] / n[has])
    return median, rms


def puppi_weights(
    counts: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    charge: np.ndarray,
    from_pv: np.ndarray,
    dz: np.ndarray,
    n_vertices: np.ndarray,
    cfg: MitigationConfig,
    excluded: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    forward_reference_max: int | None = None,
) -> np.ndarray:
    """PUPPI weight in [0, 1] of every candidate (module docstring); ``n_vertices`` per
    event is the nPV of the neutral pT cut; ``excluded`` candidates are nobody's
    neighbour (``puppiNoLep``).

    ``targets`` (jet samples: the candidates within reach of the jets that can be
    selected): only their neutral weights are computed, the other neutral candidates get
    0 (charged ones keep their vertex weight); each target's alpha, and so its weight, is
    the one it has without the restriction when the per-region medians are. The central
    median and RMS still come from every charged pile-up candidate;
    ``forward_reference_max``: the forward ones from at most that many forward candidates
    per event (every k-th in candidate order, :func:`forward_subsample`), all when None."""
    n_ev = len(counts)
    event = np.repeat(np.arange(n_ev), counts)
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(py, px)
    charged = charge != 0
    pv_charged = charged & (
        (from_pv == FROM_PV_USED_IN_FIT) | ((from_pv > FROM_PV_NONE) & (np.abs(dz) < cfg.dz_cut_mm))
    )
    forward = (np.abs(eta) >= cfg.eta_central).astype(np.int64)
    fwd_reference = (
        forward == 1
        if forward_reference_max is None
        else forward_subsample(counts, forward == 1, forward_reference_max)
    )
    reference = np.where(forward == 1, fwd_reference, charged & ~pv_charged)
    wanted = None if targets is None else (targets & ~charged) | reference
    alpha = puppi_alpha(counts, pt, eta, phi, pv_charged, cfg, excluded, wanted)
    group = 2 * event + forward
    reference &= np.isfinite(alpha)
    median, rms = _median_rms(group[reference], alpha[reference], 2 * n_ev)
    med, sig = median[group], rms[group]
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(alpha > med, (alpha - med) ** 2 / sig**2, 0.0)
    # no reference (no pile-up): everything with an alpha is kept; RMS 0: a step at the median
    excess = np.where(np.isnan(med), np.inf, excess)
    weight = np.where(np.isfinite(alpha), chi2.cdf(excess, 1), 0.0)
    weight = np.where(weight < cfg.min_weight, 0.0, weight)
    a = np.asarray(cfg.min_neutral_pt)[forward]
    b = np.asarray(cfg.min_neutral_pt_slope)[forward]
    weight = np.where(weight * pt < a + b * n_vertices[event], 0.0, weight)
    if targets is not None:
        weight = np.where(targets, weight, 0.0)
    return np.where(charged, pv_charged.astype(np.float64), weight)


def forward_subsample(counts: np.ndarray, forward: np.ndarray, n_max: int) -> np.ndarray:
    """Mask of at most ``n_max`` of the ``forward`` candidates of each event (``counts``
    per event): every k-th in candidate order, ``k = ceil(n_forward / n_max)``. Towers
    are ordered by calorimeter cell, so the subsample spreads over the forward region
    (no random numbers: the same candidates give the same subsample)."""
    event = np.repeat(np.arange(len(counts)), counts)
    n_fwd = np.bincount(event[forward], minlength=len(counts))
    idx = np.flatnonzero(forward)
    rank = np.arange(idx.size) - np.repeat(np.cumsum(n_fwd) - n_fwd, n_fwd)
    k = np.maximum(-(-n_fwd // max(n_max, 1)), 1)
    out = np.zeros(forward.size, dtype=bool)
    out[idx[rank % k[event[idx]] == 0]] = True
    return out
