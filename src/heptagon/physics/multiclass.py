"""Multi-class classifier helpers: the pairwise discriminant, the confusion matrix and
the macro one-vs-rest AUC."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from heptagon.physics.roc import auc
from heptagon.physics.stats import FloatArray, event_weights

__all__ = ["confusion_matrix", "macro_auc", "pairwise_discriminant", "present_classes"]


def pairwise_discriminant(probs: ArrayLike, signal: int, background: int) -> FloatArray:
    """``p_s / (p_s + p_b)`` for class columns ``signal`` and ``background`` of ``probs``
    (ParticleNet-MD style); 0.5 where both probabilities are 0 (neither is favoured)."""
    p = np.asarray(probs, dtype=np.float64)
    ps, pb = p[:, signal], p[:, background]
    total = ps + pb
    return np.divide(ps, total, out=np.full_like(ps, 0.5), where=total > 0)


def confusion_matrix(
    labels: ArrayLike,
    predicted: ArrayLike,
    n_classes: int,
    weights: ArrayLike | None = None,
    *,
    normalize: bool = False,
) -> FloatArray:
    """Weighted confusion matrix, rows = true class, columns = predicted class.

    With ``normalize`` each row is divided by its sum (the fraction of each true class
    predicted as each class); rows of classes without events stay 0.
    """
    t, p = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"labels {t.shape} and predicted {p.shape} must be 1D of equal length")
    if len(t) and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
        raise ValueError(f"class indices must be in [0, {n_classes})")
    w = event_weights(weights, len(t))
    flat = np.bincount(t * n_classes + p, weights=w, minlength=n_classes**2)
    cm: FloatArray = flat.astype(np.float64).reshape(n_classes, n_classes)
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows != 0)
    return cm


def present_classes(
    labels: ArrayLike, n_classes: int, weights: ArrayLike | None = None
) -> list[int]:
    """The classes with entries of positive total weight: those a one-vs-rest curve can be
    computed for (a subset of a multi-class sample may lack some)."""
    t = np.asarray(labels)
    w = event_weights(weights, len(t))
    return [c for c in range(n_classes) if w[t == c].sum() > 0]


def macro_auc(probs: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Mean over the classes present (:func:`present_classes`) of the one-vs-rest AUC of
    each class's probability."""
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    present = present_classes(t, p.shape[1], weights)
    return float(np.mean([auc(p[:, c], t == c, weights) for c in present]))
