"""The Modified Differential Method of Multipliers (MDMM; Platt & Barr, NIPS 1988): a
training objective with constraints instead of hand-tuned loss weights.

A constraint ``g(theta) <= bound`` (:class:`MaxConstraint`) or ``g(theta) = bound``
(:class:`EqualConstraint`) on a differentiable term ``g`` (here, typically a
distribution distance: :func:`mmd` or :func:`wasserstein_1d`) adds to the loss

    lambda * h + (damping / 2) * h^2,        h = g - bound (+ slack^2 for <=)

where the multiplier ``lambda`` is a parameter learned by gradient *ascent* (its
gradient is reversed, :func:`heptagon.train.losses.gradient_reversal`), so it grows while
the constraint is violated (``h > 0``) and shrinks when it holds with room; the damping
term (Platt & Barr's ``c``) turns the saddle point into a damped oscillation that
converges. For ``<=`` a slack variable ``s`` (``h = g - bound + s^2``) lets a satisfied
constraint stop pulling. The network's parameters, the multipliers and the slacks go to
the same optimiser (plain gradient descent on all of them; no weight decay on the
multipliers: :meth:`MDMM.parameter_groups`).

>>> mdmm = MDMM([MaxConstraint(bound=0.01, damping=10.0)])
>>> loss = mdmm.lagrangian(regression_loss, [mmd(refined, target)])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from heptagon.train.losses import gradient_reversal

__all__ = [
    "MDMM",
    "Constraint",
    "EqualConstraint",
    "MaxConstraint",
    "conditional_mmd",
    "mmd",
    "wasserstein_1d",
]


class Constraint(nn.Module):
    """A constraint on one scalar term; its multiplier starts at 0."""

    def __init__(self, bound: float, damping: float = 1.0) -> None:
        super().__init__()
        if damping < 0:
            raise ValueError(f"damping must be >= 0, not {damping}")
        self.bound = bound
        self.damping = damping
        self.multiplier = nn.Parameter(torch.zeros(()))

    def infeasibility(self, value: Tensor) -> Tensor:
        """``h``: 0 when the constraint holds exactly."""
        return value - self.bound

    def forward(self, value: Tensor) -> Tensor:
        """The term the constraint adds to the loss for the current ``value``."""
        h = self.infeasibility(value)
        lam = gradient_reversal(self.multiplier, 1.0)  # ascent on the multiplier
        return lam * h + 0.5 * self.damping * h * h


class EqualConstraint(Constraint):
    """``value == bound``."""


class MaxConstraint(Constraint):
    """``value <= bound``, with a slack variable set at the first call so that ``h = 0``
    if the constraint holds then (``s^2 = bound - value``), 0 otherwise (a slack of 0
    would have no gradient and never move)."""

    def __init__(self, bound: float, damping: float = 1.0) -> None:
        super().__init__(bound, damping)
        self.slack = nn.Parameter(torch.full((), float("nan")))

    def infeasibility(self, value: Tensor) -> Tensor:
        if torch.isnan(self.slack):
            with torch.no_grad():
                self.slack.copy_((self.bound - value.detach()).clamp_min(0).sqrt())
        return value - self.bound + self.slack**2


class MDMM(nn.Module):
    """A set of constraints and the Lagrangian of an objective under them."""

    def __init__(self, constraints: Sequence[Constraint]) -> None:
        super().__init__()
        self.constraints: Sequence[Constraint] = nn.ModuleList(constraints)  # type: ignore[assignment]

    def lagrangian(self, objective: Tensor, values: Sequence[Tensor]) -> Tensor:
        """``objective`` plus each constraint's term for its ``values`` entry."""
        if len(values) != len(self.constraints):
            raise ValueError(f"{len(values)} values for {len(self.constraints)} constraints")
        out = objective
        for constraint, value in zip(self.constraints, values, strict=True):
            out = out + constraint(value)
        return out

    def multipliers(self) -> list[float]:
        """The current multipliers, in constraint order."""
        return [c.multiplier.item() for c in self.constraints]

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """An optimiser parameter group for the multipliers and slacks (``lr``, no weight
        decay), to add beside the model's."""
        return [{"params": list(self.parameters()), "lr": lr, "weight_decay": 0.0}]


def _pairwise_sq(a: Tensor, b: Tensor) -> Tensor:
    return (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)


def mmd(
    x: Tensor,
    y: Tensor,
    bandwidths: Sequence[float] = (0.1, 0.3, 1.0, 3.0),
    paired: bool = False,
) -> Tensor:
    """The unbiased (U-statistic) estimate of the squared maximum mean discrepancy between
    the samples ``x`` (n, d) and ``y`` (m, d), n, m >= 2, with a sum of Gaussian kernels
    ``exp(-|a-b|^2 / (2 s^2))``, one per bandwidth ``s``. Its mean is 0 for samples of the
    same distribution (so single estimates scatter around 0, below it too) and > 0 when the
    distributions differ; unlike the biased estimate it has no ``1/n`` floor, so a bound
    on it means the same at any batch size.

    ``paired``: row ``i`` of ``x`` and of ``y`` belong together (a refined jet and its
    FullSim partner; n = m), so ``x_i`` and ``y_i`` are not independent and the cross
    terms ``k(x_i, y_i)`` are left out too (Gretton et al.'s MMD_u for equal sizes):
    with them, a pair brought closer lowers the estimate as a per-jet regression would,
    and the estimate of two equal distributions falls below 0 for paired samples."""
    n, m = x.shape[0], y.shape[0]
    if paired and n != m:
        raise ValueError(f"paired samples need the same rows: {n} vs {m}")
    kxx, kyy, kxy = _pairwise_sq(x, x), _pairwise_sq(y, y), _pairwise_sq(x, y)
    out = x.new_zeros(())
    for s in bandwidths:
        g = -0.5 / (s * s)
        # the diagonal of k(x, x) and k(y, y) is exp(0) = 1: left out
        out = out + ((kxx * g).exp().sum() - n) / (n * (n - 1))
        out = out + ((kyy * g).exp().sum() - m) / (m * (m - 1))
        cross = (kxy * g).exp()
        if paired:
            out = out - 2 * (cross.sum() - cross.diagonal().sum()) / (n * (n - 1))
        else:
            out = out - 2 * cross.mean()
    return out


def conditional_mmd(
    x: Tensor,
    y: Tensor,
    conditions: Tensor,
    groups: Tensor,
    bandwidths: Sequence[float] = (0.1, 0.3, 1.0, 3.0),
) -> Tensor:
    """The :func:`mmd` of the joint distributions of (values, conditions) for paired
    samples: ``x`` and ``y`` (n, d) are two sets of values of the same n rows (a refined
    jet and its FullSim partner), ``conditions`` (n, k) the rows' continuous conditions
    (appended to both) and ``groups`` (n,) a discrete one (e.g. the hadron flavour):
    within each group of at least 2 rows the paired MMD of ``[values, conditions]``, and
    their mean weighted by the groups' rows. Unlike the MMD of the marginals it is > 0 when
    ``x`` and ``y`` differ for some conditions even if their marginals agree (one flavour
    shifted up, another down), which is what per-bin agreement needs; its mean is 0 when,
    for every condition, the two have the same distribution."""
    n = x.shape[0]
    if y.shape != x.shape or conditions.shape[0] != n or groups.shape[0] != n:
        raise ValueError(
            f"rows differ: x {tuple(x.shape)}, y {tuple(y.shape)}, "
            f"conditions {tuple(conditions.shape)}, groups {tuple(groups.shape)}"
        )
    xc, yc = torch.cat([x, conditions], dim=1), torch.cat([y, conditions], dim=1)
    out = x.new_zeros(())
    used = 0
    for g in torch.unique(groups):
        sel = groups == g
        k = int(sel.sum())
        if k < 2:
            continue
        out = out + k * mmd(xc[sel], yc[sel], bandwidths, paired=True)
        used += k
    return out / max(used, 1)


def wasserstein_1d(x: Tensor, y: Tensor) -> Tensor:
    """The 1D Wasserstein-1 distance of each feature (column) of ``x`` and ``y``
    (same number of rows): the mean absolute difference of the sorted values, (d,)."""
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    return (x.sort(dim=0).values - y.sort(dim=0).values).abs().mean(dim=0)
