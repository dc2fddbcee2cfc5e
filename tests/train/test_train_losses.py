"""Losses: event-weighted means, and the focal loss's relation to cross entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from heptagon.train.losses import CrossEntropy, FocalLoss, MeanSquaredError


def test_weighted_mean_with_zero_weights() -> None:
    logits = torch.randn(6, 3, requires_grad=True)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    weight = torch.tensor([1.0, 2.0, 0.0, 1.0, 0.0, 3.0])
    loss = CrossEntropy()(logits, target, weight)
    per_entry = F.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(loss, (per_entry * weight).sum() / weight.sum())
    loss.backward()
    assert logits.grad is not None
    assert torch.all(logits.grad[weight == 0] == 0)  # zero weight: no gradient


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    logits, target, weight = torch.randn(8, 2), torch.randint(0, 2, (8,)), torch.rand(8)
    torch.testing.assert_close(
        FocalLoss(gamma=0.0)(logits, target, weight), CrossEntropy()(logits, target, weight)
    )
    assert FocalLoss(gamma=2.0)(logits, target, weight) < CrossEntropy()(logits, target, weight)


def test_all_zero_weights_give_zero() -> None:
    out = torch.randn(4, 1, requires_grad=True)
    loss = MeanSquaredError()(out, torch.randn(4, 1), torch.zeros(4))
    assert loss.item() == 0.0
    loss.backward()
