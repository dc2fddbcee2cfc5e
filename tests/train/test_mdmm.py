"""MDMM: the multiplier grows while a constraint is violated, and a toy constrained
problem reaches its constrained optimum (and the multiplier its Lagrange value)."""

from __future__ import annotations

import pytest
import torch

from heptagon.train.mdmm import (
    MDMM,
    EqualConstraint,
    MaxConstraint,
    conditional_mmd,
    mmd,
    wasserstein_1d,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the cores are shared


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


def test_paired_mmd_leaves_the_pairs_out() -> None:
    """Two samples of the same distribution whose rows are correlated pairs (a jet and its
    partner): the plain estimate falls below 0 (the pairs' closeness counts as
    agreement), the paired one is 0 on average."""
    g = torch.Generator().manual_seed(1)
    plain, paired = [], []
    for _ in range(30):
        x = torch.randn(200, 2, generator=g)
        y = 0.9 * x + 0.1**0.5 * 1.9**0.5 * torch.randn(200, 2, generator=g)  # also N(0, 1)
        plain.append(mmd(x, y).item())
        paired.append(mmd(x, y, paired=True).item())
    p = torch.tensor(paired)
    assert abs(p.mean().item()) < 3 * p.std().item() / 30**0.5
    assert torch.tensor(plain).mean().item() < -10 * p.std().item() / 30**0.5
    with pytest.raises(ValueError, match="same rows"):
        mmd(torch.zeros(3, 1), torch.zeros(4, 1), paired=True)


def _two_flavours(shift: float, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """400 rows of flavour 0 and 1 with a continuous condition c ~ U(0, 1): values x ~
    N(c + flavour, 1) and y the same but flavour 0 moved by ``+shift`` and flavour 1 by
    ``-shift`` (so with shift 1 the marginals of x and y agree)."""
    groups = torch.arange(400) % 2
    c = torch.rand(400, 1, generator=g)
    mean = c + groups.unsqueeze(1).float()
    x = mean + torch.randn(400, 1, generator=g)
    y = mean + shift * (1 - 2 * groups.unsqueeze(1).float()) + torch.randn(400, 1, generator=g)
    return x, y, c, groups


def test_conditional_mmd_sees_a_flavour_shift_the_marginals_hide() -> None:
    g = torch.Generator().manual_seed(2)
    same = torch.tensor([conditional_mmd(*_two_flavours(0.0, g)).item() for _ in range(40)])
    noise = same.std().item()
    assert abs(same.mean().item()) < 4 * noise / 40**0.5  # 0 for equal conditionals
    swapped = [_two_flavours(1.0, g) for _ in range(5)]
    cond = [conditional_mmd(*s).item() for s in swapped]
    marginal = [mmd(x, y, paired=True).item() for x, y, _, _ in swapped]
    assert min(cond) > 10 * noise  # flavour 0 moved up, flavour 1 down: clearly seen
    assert abs(sum(marginal) / 5) < 3 * noise  # the marginals agree: not seen
    with pytest.raises(ValueError, match="rows differ"):
        conditional_mmd(torch.zeros(4, 1), torch.zeros(4, 1), torch.zeros(3, 1), torch.zeros(4))
