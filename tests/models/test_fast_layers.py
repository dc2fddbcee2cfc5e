"""The CPU-fast layers keep torch's semantics: dropout (rate, scale, gradient, seeding) and
NarrowLinear (output and gradients of nn.Linear)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from heptagon.models.layers import Dropout, NarrowLinear, dropout

N = 1 << 20  # above the size where the NumPy mask is used


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_rate_and_scale(p: float) -> None:
    x = torch.rand(N) + 1.0  # no zeros, so dropped elements are exactly the zeros
    y = dropout(x, p, training=True)
    dropped = y == 0
    # binomial spread sqrt(p (1 - p) / N) <= 5e-4
    assert abs(dropped.float().mean().item() - p) < 3e-3
    torch.testing.assert_close(y[~dropped], x[~dropped] / (1 - p))


def test_gradient_is_the_mask() -> None:
    x = torch.randn(4, 512, 512, requires_grad=True)
    y = dropout(x, 0.1, training=True)
    y.backward(torch.ones_like(y))
    assert x.grad is not None
    expected = torch.where(y == 0, 0.0, 1 / 0.9)
    torch.testing.assert_close(x.grad, expected)


def test_seeded_by_torch() -> None:
    x = torch.ones(N)
    torch.manual_seed(3)
    first, second = dropout(x, 0.1, True), dropout(x, 0.1, True)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.1, True), first)
    assert not torch.equal(first, second)


def test_falls_back_to_torch() -> None:
    x = torch.randn(N)
    assert torch.equal(dropout(x, 0.3, training=False), x)
    small = torch.randn(64, 16)
    for t in (small, x.double()):
        torch.manual_seed(0)
        expected = F.dropout(t, 0.3, True)
        torch.manual_seed(0)
        assert torch.equal(dropout(t, 0.3, True), expected)


def test_module_follows_train_and_eval() -> None:
    module = Dropout(0.2)
    x = torch.ones(N)
    assert (module(x) == 0).any()
    module.eval()
    assert torch.equal(module(x), x)
    assert module.state_dict() == {}


def test_narrow_linear_equals_linear() -> None:
    torch.manual_seed(0)
    narrow, plain = NarrowLinear(4, 16), nn.Linear(4, 16)
    plain.load_state_dict(narrow.state_dict())
    x = torch.randn(5000, 4, requires_grad=True)
    grad = torch.randn(5000, 16)
    outputs = []
    for layer in (narrow, plain):
        x.grad = None
        out = layer(x)
        out.backward(grad)
        outputs.append((out, x.grad, layer.weight.grad, layer.bias.grad))
    for got, expected in zip(*outputs, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    narrow.eval()
    torch.testing.assert_close(narrow(x), plain(x))
