"""The refine ResNet: the identity at zero weights (and at initialisation), bounded
outputs stay in [0, 1], each output row depends on its own input row only."""

from __future__ import annotations

import torch

from heptagon.models.refine import RefineNet


def _inputs(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.stack(
        [torch.rand(n, generator=g) * 0.98 + 0.01, 50 + 30 * torch.randn(n, generator=g)], 1
    )
    return x, torch.randn(n, 6, generator=g)


def test_zero_weights_are_the_identity() -> None:
    net = RefineNet(2, 6, bounded=[True, False], width=16, blocks=3)
    net.set_standardisation(
        torch.tensor([0.3, 40.0]), torch.tensor([2.0, 25.0]), torch.ones(6), torch.ones(6) * 2
    )
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    x, c = _inputs()
    torch.testing.assert_close(net(x, c), x, rtol=1e-5, atol=1e-5)


def test_a_fresh_network_is_the_identity_and_training_moves_it() -> None:
    net = RefineNet(2, 6, bounded=[True, False])
    x, c = _inputs()
    torch.testing.assert_close(net(x, c), x, rtol=1e-5, atol=1e-5)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(20):
        loss = (net(x, c)[:, 1] - 60.0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.allclose(net(x, c), x)


def test_bounded_outputs_stay_in_the_unit_interval() -> None:
    net = RefineNet(2, 6, bounded=[True, False])
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 3.0)
    x, c = _inputs()
    with torch.no_grad():
        y = net(x, c)
    assert bool(((y[:, 0] >= 0) & (y[:, 0] <= 1)).all())
    assert float(y[:, 1].abs().max()) > 1  # the unbounded feature is not squashed


def test_rows_are_independent() -> None:
    net = RefineNet(2, 6, bounded=[True, False])
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.3)
    x, c = _inputs()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(net(x, c)[perm], net(x[perm], c[perm]))
