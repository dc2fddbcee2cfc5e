"""Per-entry weights: precomputed branches, or flat reweighting in two variables.

Flat reweighting fills, per class, a 2D histogram ``H_c`` of the two ``reweight_vars``
(values outside the bins go to the edge bins) on the training sample, floored at
``max(H_c) / reweight_threshold`` in non-empty bins. An entry of class ``c`` in bin ``b``
gets ``w = k_c / H_c[b]``, with ``k_c`` chosen so that on the sample the class's weights
sum to ``N * class_weight_c / sum(class_weights)`` (``N`` the sample size): each class is
flat in the two variables (up to the floor), the classes' totals are in the ratio of
``class_weights``, and the mean weight is 1. Classes not in ``reweight_classes`` and bins
empty in the sample get weight 0 (as in weaver).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from heptagon.data.config import Weights

__all__ = ["FlatReweight"]


def _bin(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin index of each value; values outside the edges go to the edge bins."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


@dataclass(frozen=True)
class FlatReweight:
    """A flat-reweighting lookup table: ``table[class, x_bin, y_bin]``."""

    vars: tuple[str, str]
    bins: tuple[np.ndarray, np.ndarray]
    classes: tuple[int, ...]
    table: np.ndarray

    def __call__(self, x: np.ndarray, y: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Weights of entries with values ``x``, ``y`` and class indices ``label``."""
        lookup = np.full(max(self.classes) + 2, -1)  # the last slot: any class not listed
        lookup[list(self.classes)] = np.arange(len(self.classes))
        row = lookup[np.minimum(label, len(lookup) - 1)]
        w = self.table[np.maximum(row, 0), _bin(self.bins[0], x), _bin(self.bins[1], y)]
        return np.where(row >= 0, w, 0.0).astype(np.float32)

    @classmethod
    def build(
        cls,
        spec: Weights,
        label_values: list[str],
        x: np.ndarray,
        y: np.ndarray,
        label: np.ndarray,
    ) -> FlatReweight:
        """Fill the table from a sample: values ``x``, ``y``, class indices ``label`` into
        ``label_values`` (the data config's ``labels.value``)."""
        names = spec.reweight_classes or label_values
        classes = tuple(label_values.index(n) for n in names)
        class_weights = np.asarray(spec.class_weights or [1.0] * len(classes), dtype=np.float64)
        (name_x, edges_x), (name_y, edges_y) = spec.reweight_vars.items()
        bins = (np.asarray(edges_x, dtype=np.float64), np.asarray(edges_y, dtype=np.float64))
        bx, by = _bin(bins[0], x), _bin(bins[1], y)
        shape = (len(bins[0]) - 1, len(bins[1]) - 1)
        table = np.zeros((len(classes), *shape))
        for row, (c, cw) in enumerate(zip(classes, class_weights, strict=True)):
            sel = label == c
            hist = np.zeros(shape)
            np.add.at(hist, (bx[sel], by[sel]), 1.0)
            filled = hist > 0
            if not filled.any():
                continue
            floored = np.maximum(hist, hist.max() / spec.reweight_threshold)
            inverse = np.where(filled, 1.0 / floored, 0.0)
            total = (hist * inverse).sum()  # the class's sum of weights before scaling
            table[row] = inverse * (cw / class_weights.sum() * len(label) / total)
        return cls((name_x, name_y), bins, classes, table)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in ``preprocess.json``)."""
        return {
            "vars": list(self.vars),
            "bins": [b.tolist() for b in self.bins],
            "classes": list(self.classes),
            "table": self.table.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlatReweight:
        """Inverse of :meth:`to_dict`."""
        return cls(
            (data["vars"][0], data["vars"][1]),
            (np.asarray(data["bins"][0]), np.asarray(data["bins"][1])),
            tuple(data["classes"]),
            np.asarray(data["table"], dtype=np.float64),
        )
