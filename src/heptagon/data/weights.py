"""Per-entry weights: precomputed branches, or flat reweighting in two variables.

Flat reweighting fills, per class, a 2D histogram ``H_c`` of the two ``reweight_vars``
on the training sample (entries outside the bins are left out with
``reweight_discard_under_overflow``, weaver's default, else they go to the edge bins;
with ``reweight_basewgt`` each entry counts with that weight), floored at
``max(H_c) / reweight_threshold`` in non-empty bins. An entry of class ``c`` in bin ``b``
gets ``w = k_c / H_c[b]``, with ``k_c`` chosen so that on the sample the class's weights
sum to ``N * class_weight_c / sum(class_weights)`` (``N`` the histogrammed entries, or
their base weights): each class is flat in the two variables (up to the floor), the
classes' totals are in the ratio of ``class_weights``, and the mean weight is 1. Classes
not in ``reweight_classes``, bins empty in the sample and (when discarded) entries outside
the bins get weight 0, as in weaver.

weaver's own tables (``reweight_hists`` in an ``*.auto.yaml``) are used unchanged through
:meth:`FlatReweight.from_hists`: an entry then gets exactly weaver's ``_build_weights``
value. weaver computes its tables differently (a percentile ``reweight_threshold``, weights
at most 1, classes equalised to 0.9 of the smallest, used to *sample* entries); heptagon's
weights multiply the loss, so only their ratios matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from heptagon.data.config import Weights

__all__ = ["FlatReweight", "inside_bins"]


def _bin(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin index of each value; values outside the edges go to the edge bins."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


def inside_bins(spec: Weights, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether each entry counts in the reweighting: within both variables' outer edges
    (inclusive, as weaver), or every entry without ``reweight_discard_under_overflow``."""
    if not spec.reweight_discard_under_overflow:
        return np.ones(len(x), dtype=bool)
    (edges_x, edges_y) = spec.reweight_vars.values()
    return (x >= min(edges_x)) & (x <= max(edges_x)) & (y >= min(edges_y)) & (y <= max(edges_y))


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
        base: np.ndarray | None = None,
    ) -> FlatReweight:
        """Fill the table from a sample: values ``x``, ``y``, class indices ``label`` into
        ``label_values`` (the data config's ``labels.value``), base weights ``base`` (the
        values of ``reweight_basewgt``; None: one each)."""
        classes, bins = _classes(spec, label_values), _bins(spec)
        class_weights = np.asarray(spec.class_weights or [1.0] * len(classes), dtype=np.float64)
        counted = inside_bins(spec, x, y)
        base = np.ones(len(x)) if base is None else np.asarray(base, dtype=np.float64)
        bx, by = _bin(bins[0], x), _bin(bins[1], y)
        shape = (len(bins[0]) - 1, len(bins[1]) - 1)
        table = np.zeros((len(classes), *shape))
        n_counted = base[counted].sum()
        for row, (c, cw) in enumerate(zip(classes, class_weights, strict=True)):
            sel = (label == c) & counted
            hist = np.zeros(shape)
            np.add.at(hist, (bx[sel], by[sel]), base[sel])
            filled = hist > 0
            if not filled.any():
                continue
            floored = np.maximum(hist, hist.max() / spec.reweight_threshold)
            inverse = np.where(filled, 1.0 / floored, 0.0)
            total = (hist * inverse).sum()  # the class's sum of weights before scaling
            table[row] = inverse * (cw / class_weights.sum() * n_counted / total)
        return cls(_names(spec), bins, classes, table)

    @classmethod
    def from_hists(cls, spec: Weights, label_values: list[str]) -> FlatReweight:
        """weaver's tables (``spec.reweight_hists``, one per ``reweight_classes`` entry),
        unchanged."""
        assert spec.reweight_hists is not None
        classes = _classes(spec, label_values)
        table = np.asarray(
            [spec.reweight_hists[name] for name in spec.reweight_classes], dtype=np.float64
        )
        return cls(_names(spec), _bins(spec), classes, table)

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


def _classes(spec: Weights, label_values: list[str]) -> tuple[int, ...]:
    """The class indices of ``reweight_classes`` (all classes when empty)."""
    return tuple(label_values.index(n) for n in spec.reweight_classes or label_values)


def _bins(spec: Weights) -> tuple[np.ndarray, np.ndarray]:
    edges_x, edges_y = spec.reweight_vars.values()
    return np.asarray(edges_x, dtype=np.float64), np.asarray(edges_y, dtype=np.float64)


def _names(spec: Weights) -> tuple[str, str]:
    name_x, name_y = spec.reweight_vars
    return name_x, name_y
