"""Training and scoring of the small trigger models, on tensors held in memory.

The trigger studies train on a few thousand jets already in memory, with what a data
config does not express (pruning masks kept through fine-tuning, fixed-point forward
passes, an extra penalty such as EWC's, replayed old examples): :func:`fit` runs
heptagon's trainer on a :class:`~heptagon.train.tasks.TensorTask`
(:func:`~heptagon.train.tasks.fit_in_memory`). Models take their inputs positionally:
``model(*inputs)``.
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
from heptagon.train.tasks import TensorTask, fit_in_memory

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
    Returns the mean batch loss of each epoch; the model is left in eval mode.
    """
    task = TensorTask(
        inputs,
        labels,
        F.cross_entropy,
        batch_size=batch_size,
        seed=seed,
        penalty=None if penalty is None else lambda: penalty(model),
    )
    return fit_in_memory(model, task, epochs=epochs, lr=lr)


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
