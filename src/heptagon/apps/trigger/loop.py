"""A compact training loop for the small trigger models, on tensors held in memory.

``heptagon.train`` trains from files through a data config; the trigger studies need
what it does not express (pruning masks kept through fine-tuning, fixed-point forward
passes, an extra penalty such as EWC's, replayed old examples), on a few thousand jets
already in memory. Models take their inputs positionally: ``model(*inputs)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn

from heptagon.physics.metrics import accuracy, macro_auc

__all__ = ["Scores", "fit", "predict_proba", "score"]


def fit(
    model: nn.Module,
    inputs: Sequence[Tensor],
    labels: Tensor,
    *,
    epochs: int,
    lr: float = 3e-3,
    batch_size: int = 256,
    penalty: Callable[[nn.Module], Tensor] | None = None,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` in place with Adam on cross entropy (+ ``penalty(model)``).

    ``inputs``: tensors with the jets along dimension 0; ``labels``: integer classes.
    Returns the mean training loss of each epoch.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    n = len(labels)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model(*(x[idx] for x in inputs)), labels[idx])
            if penalty is not None:
                loss = loss + penalty(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
    model.eval()
    return losses


def predict_proba(
    model: nn.Module, inputs: Sequence[Tensor], batch_size: int = 4096
) -> NDArray[np.float32]:
    """Softmax probabilities ``(n, classes)`` of the model in eval mode."""
    model.eval()
    with torch.no_grad():
        out = [
            torch.softmax(model(*(x[i : i + batch_size] for x in inputs)), dim=1)
            for i in range(0, len(inputs[0]), batch_size)
        ]
    return torch.cat(out).numpy()


@dataclass(frozen=True)
class Scores:
    """Accuracy and macro one-vs-rest AUC of a classifier on one sample."""

    accuracy: float
    auc: float


def score(probs: NDArray[np.floating], labels: NDArray[np.integer]) -> Scores:
    """:class:`Scores` of probabilities ``(n, classes)`` against integer labels."""
    return Scores(accuracy(probs.argmax(1), labels), macro_auc(probs, labels))
