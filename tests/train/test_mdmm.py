"""MDMM: the multiplier grows while a constraint is violated, and a toy constrained
problem reaches its constrained optimum (and the multiplier its Lagrange value)."""

from __future__ import annotations

import pytest
import torch

from heptagon.train.mdmm import MDMM, EqualConstraint, MaxConstraint, mmd, wasserstein_1d


def test_multiplier_grows_while_the_constraint_is_violated() -> None:
    constraint = MaxConstraint(bound=0.5, damping=0.0)
    mdmm = MDMM([constraint])
    opt = torch.optim.SGD(mdmm.parameters(), lr=0.1)
    seen = []
    for _ in range(5):
        value = torch.tensor(1.0)  # violated by 0.5 whatever the parameters
        loss = mdmm.lagrangian(torch.tensor(0.0), [value])
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.append(mdmm.multipliers()[0])
    # gradient ascent: lambda += lr * (value - bound) each step
    assert seen == pytest.approx([0.05, 0.10, 0.15, 0.20, 0.25])


def test_multiplier_shrinks_when_an_equality_is_overshot() -> None:
    mdmm = MDMM([EqualConstraint(bound=1.0, damping=0.0)])
    opt = torch.optim.SGD(mdmm.parameters(), lr=0.1)
    for _ in range(3):
        loss = mdmm.lagrangian(torch.tensor(0.0), [torch.tensor(0.0)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert mdmm.multipliers()[0] == pytest.approx(-0.3)


@pytest.mark.parametrize("damping", [1.0, 10.0])
def test_toy_problem_reaches_the_constraint(damping: float) -> None:
    """min (x - 3)^2 s.t. x <= 1: x* = 1, lambda* = 2 (3 - 1) = 4; an unconstrained or
    fixed-weight descent would end elsewhere."""
    x = torch.nn.Parameter(torch.tensor(0.0))
    mdmm = MDMM([MaxConstraint(bound=1.0, damping=damping)])
    opt = torch.optim.SGD([x, *mdmm.parameters()], lr=0.02)
    for _ in range(4000):
        loss = mdmm.lagrangian((x - 3) ** 2, [x])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert x.item() == pytest.approx(1.0, abs=0.01)
    assert mdmm.multipliers()[0] == pytest.approx(4.0, abs=0.1)


def test_a_satisfied_constraint_lets_the_objective_win() -> None:
    """min (x - 3)^2 s.t. x <= 5: the constraint is slack, x -> 3."""
    x = torch.nn.Parameter(torch.tensor(0.0))
    mdmm = MDMM([MaxConstraint(bound=5.0, damping=1.0)])
    opt = torch.optim.SGD([x, *mdmm.parameters()], lr=0.02)
    for _ in range(4000):
        loss = mdmm.lagrangian((x - 3) ** 2, [x])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert x.item() == pytest.approx(3.0, abs=0.02)


def test_constraint_count_must_match() -> None:
    with pytest.raises(ValueError, match="2 values for 1 constraints"):
        MDMM([MaxConstraint(1.0)]).lagrangian(torch.tensor(0.0), [torch.tensor(0.0)] * 2)


def test_distances() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 2, generator=g)
    b = torch.randn(400, 2, generator=g)
    same = [mmd(a, torch.randn(400, 2, generator=g)).item() for _ in range(20)]
    assert abs(sum(same) / 20) < 3 * torch.tensor(same).std().item() / 20**0.5  # mean 0
    assert mmd(a, b + 1.0).item() > 20 * max(same)
    w = wasserstein_1d(a, a + torch.tensor([0.5, -2.0]))
    assert w.tolist() == pytest.approx([0.5, 2.0], abs=1e-5)
