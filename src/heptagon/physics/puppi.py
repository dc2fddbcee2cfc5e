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
from scipy.special import chdtr

from heptagon.physics.arrays import owner_index, stable_order

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
    event = owner_index(counts)
    v_event = owner_index(n_vertices)
    v_start = np.cumsum(n_vertices) - n_vertices
    v_rank = np.arange(vertex_z.size) - v_start[v_event]
    # one sorted key per vertex: events far apart, z within the event
    span = 2.0 * (np.abs(vertex_z).max(initial=0.0) + 1.0)
    v_key = v_event * (2 * span) + vertex_z
    order = np.argsort(v_key, kind="stable")
    v_key, v_rank, v_ev_sorted = v_key[order], v_rank[order], v_event[order]
    # the charged candidates (tracks) only: neutral ones are 3
    tracks = np.flatnonzero(charge != 0)
    event = event[tracks]
    t_key = event * (2 * span) + np.clip(dz[tracks], -span / 2, span / 2)
    right = np.clip(np.searchsorted(v_key, t_key), 0, max(v_key.size - 1, 0))
    left = np.maximum(right - 1, 0)
    d_left = np.where(v_ev_sorted[left] == event, np.abs(t_key - v_key[left]), np.inf)
    d_right = np.where(v_ev_sorted[right] == event, np.abs(t_key - v_key[right]), np.inf)
    nearest = np.where(d_left <= d_right, left, right)
    distance = np.minimum(d_left, d_right)
    to_pv = v_rank[nearest] == 0
    compatible = distance < n_sigma * dzerr[tracks]
    out = np.full(charge.size, FROM_PV_USED_IN_FIT, dtype=np.int8)
    out[tracks] = np.where(
        to_pv, np.where(compatible, FROM_PV_USED_IN_FIT, FROM_PV_TIGHT), FROM_PV_NONE
    )
    return out


def chs_mask(charge: np.ndarray, from_pv: np.ndarray) -> np.ndarray:
    """The candidates CHS keeps: neutrals and charged candidates with ``fromPV > 0``."""
    return np.asarray((charge == 0) | (from_pv > FROM_PV_NONE))


def _cone_sums(
    x: np.ndarray,
    y: np.ndarray,
    targets: np.ndarray,
    sources: np.ndarray,
    pt: np.ndarray,
    cfg: MitigationConfig,
) -> np.ndarray:
    """``sum_j (pT_j / dR_ij)^2`` over the ``sources`` j with ``r_min < dR_ij < r0`` of
    each of ``targets`` i, in the plane (x >= 0, y in [0, 2 pi) periodic): the pairs
    (:func:`_pairs`) summed in one pass (the forward region has ~10^5 pairs per event at
    mu = 200)."""
    out = np.zeros(targets.size)
    if targets.size == 0 or sources.size == 0:
        return out
    # bin the larger set, walk the smaller one's neighbouring cells
    swap = targets.size > sources.size
    a, b = (sources, targets) if swap else (targets, sources)
    i, j, dr = _pairs(x[a], y[a], x[b], y[b], cfg.r0)
    t, src = (j, i) if swap else (i, j)
    ratio = np.divide(
        pt[sources][src], dr, out=np.zeros(dr.size), where=(dr > cfg.r_min) & (dr < cfg.r0)
    )
    return np.bincount(t, weights=ratio * ratio, minlength=targets.size)


#: cells per cone radius in the pair search (:func:`_pairs`)
_CELLS_PER_R = 3


def _pairs(
    xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, r: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i of a, j of b) closer than ``r`` (x >= 0; y in [0, 2 pi), periodic)
    and its distance. b is sorted by cell (``r / 3`` wide in x, at least that in y); each
    point of a reads, in each of the 7 rows of cells within ``r`` in x, the run of cells
    that the circle's chord across the row touches (two runs where it crosses y = 0)."""
    k = _CELLS_PER_R
    cx = r / k
    ny = max(int(2 * np.pi / cx), 1)
    cy = 2 * np.pi / ny
    bx = (xb / cx).astype(np.int64) + k  # k empty rows on the left
    b_cell = bx * ny + np.minimum((yb / cy).astype(np.int64), ny - 1)
    ax = (xa / cx).astype(np.int64) + k
    count = np.bincount(b_cell, minlength=(max(int(ax.max()), int(bx.max())) + k + 1) * ny)
    first = np.concatenate([[0], np.cumsum(count)])  # run of cell c: first[c]:first[c + 1]
    b_sorted = stable_order(b_cell)
    rows = np.arange(-k, k + 1)
    row = ax[:, None] + rows  # (a, 7)
    # x distance from the point to the nearest edge of each row, and the chord there
    gap = np.where(
        rows > 0, row * cx - (xa[:, None] + k * cx), (xa[:, None] + k * cx) - (row + 1) * cx
    )
    half = np.sqrt(np.maximum(r * r - np.maximum(gap, 0.0) ** 2, 0.0))
    half = np.where(rows == 0, r, np.where(gap < r, half, -1.0))
    empty = half < 0  # a row beyond r: no run (lo 0, hi -1)
    lo = np.where(empty, 0, np.floor((ya[:, None] - half) / cy).astype(np.int64))
    hi = np.where(empty, -1, np.floor((ya[:, None] + half) / cy).astype(np.int64))
    full = hi - lo + 1 >= ny
    lo, hi = np.where(full, 0, lo), np.where(full, ny - 1, hi)
    # a run crossing y = 0 or 2 pi: [lo mod ny, ny) and [0, hi mod ny]
    wraps = (lo < 0) | (hi >= ny)
    lo1 = np.where(wraps, np.mod(lo, ny), lo)
    hi1 = np.where(wraps, ny - 1, hi)
    hi2 = np.where(wraps, np.mod(hi, ny), -1)
    base = row * ny
    start = np.stack([first[base + lo1], first[base]], axis=-1)
    stop = np.stack([first[base + hi1 + 1], first[base + hi2 + 1]], axis=-1)
    n = (stop - start).ravel()
    i = owner_index(n.reshape(xa.size, -1).sum(axis=1))
    offsets = np.repeat(np.cumsum(n) - n, n)
    pos = np.repeat(start.ravel(), n) + np.arange(i.size) - offsets
    xs, ys = xb[b_sorted], yb[b_sorted]
    dy = np.abs(ya[i] - ys[pos])
    np.minimum(dy, 2 * np.pi - dy, out=dy)
    d2 = xa[i] - xs[pos]
    d2 *= d2
    d2 += dy * dy
    close = np.flatnonzero(d2 <= r * r * (1 + 1e-9))  # then exactly: sqrt(d2) <= r
    dr = np.sqrt(d2[close])
    close, dr = close[dr <= r], dr[dr <= r]
    return i[close], b_sorted[pos[close]], dr


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
    event = owner_index(counts)
    # dR as a distance in a plane: events side by side in eta, far apart; phi periodic
    width = float(eta.max() - eta.min()) + 2 * cfg.r0 + 1.0
    x = eta - eta.min() + event * width
    y = np.minimum(np.mod(phi + np.pi, 2 * np.pi), np.nextafter(2 * np.pi, 0))
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
        total[targets] = _cone_sums(x, y, targets, sources, pt, cfg)
    with np.errstate(divide="ignore"):
        return np.where(total > 0, np.log(np.where(total > 0, total, 1.0)), -np.inf)


def _median_rms(group: np.ndarray, alpha: np.ndarray, n_groups: int) -> tuple[np.ndarray, ...]:
    """Median and RMS about the median of ``alpha`` per ``group`` (NaN for empty ones)."""
    order = np.argsort(alpha)  # then by group, stably: by group, then alpha
    order = order[stable_order(group[order])]
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
    event = owner_index(counts)
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
    # the neutral candidates with an alpha (and wanted); the others' weights are 0
    weighed = np.isfinite(alpha) & ~charged
    k = np.flatnonzero(weighed if targets is None else weighed & targets)
    a_k, med, sig = alpha[k], median[group[k]], rms[group[k]]
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(a_k > med, (a_k - med) ** 2 / sig**2, 0.0)
    # no reference (no pile-up): everything with an alpha is kept; RMS 0: a step at the median
    excess = np.where(np.isnan(med), np.inf, excess)
    w = chdtr(1, excess)  # the chi2 CDF, 1 dof
    w = np.where(w < cfg.min_weight, 0.0, w)
    a = np.asarray(cfg.min_neutral_pt)[forward[k]]
    b = np.asarray(cfg.min_neutral_pt_slope)[forward[k]]
    weight = np.zeros(pt.size)
    weight[k] = np.where(w * pt[k] < a + b * n_vertices[event[k]], 0.0, w)
    return np.where(charged, pv_charged.astype(np.float64), weight)


def forward_subsample(counts: np.ndarray, forward: np.ndarray, n_max: int) -> np.ndarray:
    """Mask of at most ``n_max`` of the ``forward`` candidates of each event (``counts``
    per event): every k-th in candidate order, ``k = ceil(n_forward / n_max)``. Towers
    are ordered by calorimeter cell, so the subsample spreads over the forward region
    (no random numbers: the same candidates give the same subsample)."""
    event = owner_index(counts)
    n_fwd = np.bincount(event[forward], minlength=len(counts))
    idx = np.flatnonzero(forward)
    rank = np.arange(idx.size) - np.repeat(np.cumsum(n_fwd) - n_fwd, n_fwd)
    k = np.maximum(-(-n_fwd // max(n_max, 1)), 1)
    out = np.zeros(forward.size, dtype=bool)
    out[idx[rank % k[event[idx]] == 0]] = True
    return out
