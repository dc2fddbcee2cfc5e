"""Training and scoring of the small trigger models, on tensors held in memory.

The trigger studies train on a few thousand jets already in memory, with what a data
config does not express (pruning masks kept through fine-tuning, fixed-point forward
passes, an extra penalty such as EWC's, replayed old examples): :func:`fit` runs
heptagon's trainer on a :class:`~heptagon.train.tasks.TensorTask`
(:func:`~heptagon.train.tasks.fit_in_memory`). Models take their inputs positionally:
``model(*inputs)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn

from heptagon.logs import get_logger
from heptagon.physics.metrics import accuracy, macro_auc
from heptagon.train.tasks import TensorTask, fit_in_memory

__all__ = ["Scores", "fit", "predict_proba", "score", "split", "train_best"]


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


def split(n: int, seed: int = 0) -> dict[str, NDArray[np.intp]]:
    """Indices of a seeded 60/20/20 ``train`` / ``val`` / ``test`` split of ``n`` jets."""
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(0.6 * n), int(0.8 * n)
    return {"train": order[:a], "val": order[a:b], "test": order[b:]}


def train_best(
    model: nn.Module,
    inputs: Mapping[str, Sequence[Tensor]],
    labels: Mapping[str, Tensor],
    epochs: int,
    lr: float,
    *,
    stage: str = "train",
    history: list[dict[str, str | int | float]] | None = None,
) -> nn.Module:
    """Train epoch by epoch on ``inputs["train"]`` (epoch ``k`` shuffled with seed ``k``)
    and keep the weights of the best accuracy on ``inputs["val"]``. Logs one line per
    epoch and appends ``{stage, epoch, loss, val_accuracy}`` to ``history``."""
    log = get_logger("trigger")
    best, state = -1.0, None
    for epoch in range(epochs):
        loss = fit(model, inputs["train"], labels["train"], epochs=1, lr=lr, seed=epoch)[0]
        acc = score(predict_proba(model, inputs["val"]), labels["val"].numpy()).accuracy
        log.info(f"{stage} epoch {epoch + 1}/{epochs}: loss {loss:.4f}, val accuracy {acc:.4f}")
        if history is not None:
            history.append({"stage": stage, "epoch": epoch + 1, "loss": loss, "val_accuracy": acc})
        if acc > best:
            best, state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    if state is not None:
        model.load_state_dict(state)
    return model
