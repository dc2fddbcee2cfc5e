"""Validation: the model's outputs on the validation split -> loss, accuracy, AUC.

Metrics come from :mod:`heptagon.physics.metrics` and honour the event weights. The AUC is
binary (the second class's probability) for two classes and the macro one-vs-rest mean
otherwise; accuracy and AUC are ``None`` for a regression, or when a class has no weight
in the validation set (the AUC is undefined then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from heptagon.data.loader import Batch
from heptagon.errors import DataError
from heptagon.physics.metrics import accuracy, auc, macro_auc
from heptagon.train.distributed import Distributed

__all__ = ["Outputs", "ValMetrics", "collect_outputs", "val_metrics"]

#: ``forward(tensors) -> output``: runs a model on a batch's named tensors
Forward = Callable[[Mapping[str, Tensor]], Tensor]


@dataclass(frozen=True)
class Outputs:
    """Model outputs with their labels and weights (every rank's, concatenated)."""

    output: np.ndarray
    label: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class ValMetrics:
    """The validation numbers of one history record."""

    loss: float
    accuracy: float | None
    auc: float | None


@torch.no_grad()
def collect_outputs(
    forward: Forward, batches: Iterable[Batch], device: torch.device, dist: Distributed
) -> Outputs:
    """Run ``forward`` over ``batches`` and gather outputs, labels and weights."""
    outputs, labels, weights = [], [], []
    for batch in batches:
        assert batch.label is not None  # training data has labels (experiment check)
        moved = batch.to(device, non_blocking=True)
        outputs.append(forward(moved.tensors()).float().cpu().numpy())
        labels.append(batch.label.numpy())
        weights.append(batch.weight.numpy())
    if not outputs:
        raise DataError("the validation split has no entries on this process (too few files?)")
    gathered = dist.gather(
        {
            "output": np.concatenate(outputs),
            "label": np.concatenate(labels),
            "weight": np.concatenate(weights),
        }
    )
    return Outputs(gathered["output"], gathered["label"], gathered["weight"])


def val_metrics(
    outputs: Outputs, loss: Callable[[Tensor, Tensor, Tensor], Tensor], classification: bool
) -> ValMetrics:
    """Loss (the training loss, weighted) and, for a classification, accuracy and AUC."""
    out = torch.from_numpy(outputs.output)
    value = float(loss(out, torch.from_numpy(outputs.label), torch.from_numpy(outputs.weight)))
    if not classification:
        return ValMetrics(value, None, None)
    probs = torch.softmax(out.double(), dim=1).numpy()
    label, weight = outputs.label, outputs.weight
    acc = accuracy(probs.argmax(axis=1), label, weight) if weight.sum() > 0 else None
    n_classes = probs.shape[1]
    class_weight = np.bincount(label, weights=weight, minlength=n_classes)
    if np.any(class_weight <= 0):
        return ValMetrics(value, acc, None)
    if n_classes == 2:
        return ValMetrics(value, acc, auc(probs[:, 1], label == 1, weight))
    return ValMetrics(value, acc, macro_auc(probs, label, weight))
