"""Training losses: a typed spec per loss (the ``train.loss`` block of an experiment) and
the ``nn.Module`` it builds.

Every loss is ``loss(output, target, weight) -> scalar``: the event-weighted mean of a
per-entry loss, ``sum(w_i * l_i) / sum(w_i)``, so event weights reach the gradient. A
loss that needs more of the batch (DisCo: the decorrelated observable; adversarial: a
second network) adds its own spec class here and its fields to :data:`LossSpec`.

In an experiment YAML ``loss: ce`` is short for ``loss: {name: ce}``::

    loss: {name: focal, gamma: 2.0}
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from torch import Tensor, nn

__all__ = [
    "CrossEntropy",
    "CrossEntropySpec",
    "FocalLoss",
    "FocalSpec",
    "LossSpec",
    "MSESpec",
    "MeanSquaredError",
    "WeightedLoss",
    "weighted_mean",
]


def weighted_mean(per_entry: Tensor, weight: Tensor) -> Tensor:
    """``sum(w * l) / sum(w)``; zero (with a gradient) when every weight is zero."""
    total = weight.sum()
    return (per_entry * weight).sum() / torch.where(total > 0, total, torch.ones_like(total))


class WeightedLoss(nn.Module):
    """Base of the losses: ``forward`` is the weighted mean of :meth:`per_entry`."""

    def per_entry(self, output: Tensor, target: Tensor) -> Tensor:
        """The loss of each entry, shape ``(batch,)``."""
        raise NotImplementedError

    def forward(self, output: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        """Event-weighted mean loss of the batch (computed in float32)."""
        return weighted_mean(self.per_entry(output.float(), target), weight.float())


class CrossEntropy(WeightedLoss):
    """Softmax cross entropy on ``(batch, n_classes)`` logits and int64 class indices."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def per_entry(self, output: Tensor, target: Tensor) -> Tensor:
        """Cross entropy of each entry."""
        return F.cross_entropy(
            output, target, reduction="none", label_smoothing=self.label_smoothing
        )


class FocalLoss(WeightedLoss):
    """Focal loss ``-(1 - p_t)^gamma log p_t`` (Lin et al. 2017) on softmax logits."""

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma

    def per_entry(self, output: Tensor, target: Tensor) -> Tensor:
        """Focal loss of each entry."""
        log_p = F.log_softmax(output, dim=1).gather(1, target[:, None]).squeeze(1)
        return -((1.0 - log_p.exp()) ** self.gamma) * log_p


class MeanSquaredError(WeightedLoss):
    """Squared error summed over the targets of each entry (regression)."""

    def per_entry(self, output: Tensor, target: Tensor) -> Tensor:
        """Squared error of each entry."""
        return (output - target.to(output.dtype)).square().sum(dim=1)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the tasks the loss applies to
    tasks: ClassVar[frozenset[str]] = frozenset({"classification"})

    def build(self) -> WeightedLoss:
        """The loss module."""
        raise NotImplementedError


class CrossEntropySpec(_Spec):
    """``ce``: cross entropy, with optional label smoothing."""

    name: Literal["ce"] = "ce"
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)

    def build(self) -> WeightedLoss:
        """A :class:`CrossEntropy`."""
        return CrossEntropy(self.label_smoothing)


class FocalSpec(_Spec):
    """``focal``: focal loss with focusing parameter ``gamma``."""

    name: Literal["focal"]
    gamma: float = Field(default=2.0, ge=0.0)

    def build(self) -> WeightedLoss:
        """A :class:`FocalLoss`."""
        return FocalLoss(self.gamma)


class MSESpec(_Spec):
    """``mse``: mean squared error (regression)."""

    name: Literal["mse"]
    tasks: ClassVar[frozenset[str]] = frozenset({"regression"})

    def build(self) -> WeightedLoss:
        """A :class:`MeanSquaredError`."""
        return MeanSquaredError()


def _short_form(value: Any) -> Any:
    """``"focal"`` -> ``{"name": "focal"}``; a mapping without ``name`` is the default ``ce``."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and "name" not in value:
        return {"name": "ce", **value}
    return value


#: The ``train.loss`` block: one of the specs, chosen by ``name``.
LossSpec = Annotated[
    CrossEntropySpec | FocalSpec | MSESpec,
    Field(discriminator="name"),
    BeforeValidator(_short_form),
]
