"""Scores of a trained model on a sample: the one place evaluation runs a model.

Returns :class:`Predictions` (probabilities, labels, weights and the observers needed for
efficiency maps and mass sculpting), for torch models and fit/predict models (the BDT)
alike, in the order the data stage yields the entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from numpy.typing import NDArray
from torch import nn

from heptagon.data.loader import Batch
from heptagon.io import atomic_path
from heptagon.models.base import FitPredictModel

__all__ = ["EVAL_OBSERVERS", "Predictions", "predict_batches"]

#: observers evaluation reads when the files have them: maps vs (pT, eta), m_SD sculpting
EVAL_OBSERVERS = ("jet_pt", "jet_eta", "jet_sdmass")


@dataclass
class Predictions:
    """A model's outputs on one sample. ``probs``: ``(n, n_classes)`` softmax probabilities
    (regression: ``(n, 1)`` predictions); ``labels``: class indices (regression: targets)."""

    name: str
    class_names: list[str]
    probs: NDArray[np.float64]
    labels: NDArray[np.generic]
    weights: NDArray[np.float64]
    observers: dict[str, NDArray[np.generic]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.weights)

    def save(self, path: str | Path) -> None:
        """Write as Parquet: ``prob_<class>``, ``label``, ``weight`` and the observers."""
        cols: dict[str, NDArray[np.generic]] = {
            f"prob_{c}": self.probs[:, i] for i, c in enumerate(self.class_names)
        }
        cols.update(label=self.labels, weight=self.weights, **self.observers)
        table = pa.table({k: np.asarray(v) for k, v in cols.items()})
        table = table.replace_schema_metadata({"sample": self.name})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)

    @classmethod
    def load(cls, path: str | Path, class_names: list[str]) -> Predictions:
        """Read what :meth:`save` wrote."""
        table = pq.read_table(path)
        cols = {name: table[name].to_numpy() for name in table.column_names}
        meta = table.schema.metadata or {}
        return cls(
            name=meta.get(b"sample", b"").decode(),
            class_names=class_names,
            probs=np.stack([cols.pop(f"prob_{c}") for c in class_names], axis=1),
            labels=cols.pop("label"),
            weights=cols.pop("weight"),
            observers=cols,
        )


def _torch_outputs(
    model: nn.Module, batch: Batch, device: torch.device, regression: bool
) -> NDArray[np.float64]:
    tensors = batch.to(device).tensors()
    with torch.inference_mode():
        names = cast(tuple[str, ...], model.input_names)
        out = model(*(tensors[name] for name in names))
        out = out if regression else torch.softmax(out.float(), dim=1)
    return out.double().cpu().numpy()


def _fit_predict_outputs(
    model: FitPredictModel, batch: Batch, regression: bool
) -> NDArray[np.float64]:
    tensors = batch.tensors()
    logits = model.predict({n: tensors[n].numpy() for n in model.input_names}).astype(np.float64)
    if regression:
        return logits
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def predict_batches(
    model: nn.Module | FitPredictModel,
    batches: Iterable[Batch],
    *,
    name: str,
    class_names: list[str],
    regression: bool = False,
    device: torch.device | None = None,
) -> Predictions:
    """Run ``model`` over ``batches`` and collect its outputs with labels, weights and
    observers."""
    outs, labels, weights = [], [], []
    observers: dict[str, list[NDArray[np.generic]]] = {}
    if isinstance(model, nn.Module):
        dev = device or next(model.parameters()).device
        model.eval()
    for batch in batches:
        if isinstance(model, nn.Module):
            outs.append(_torch_outputs(model, batch, dev, regression))
        else:
            outs.append(_fit_predict_outputs(model, batch, regression))
        assert batch.label is not None, "evaluation needs labels"
        label = batch.label.numpy()
        labels.append(label[:, 0] if regression else label)  # (n, 1) targets -> the target
        weights.append(batch.weight.numpy().astype(np.float64))
        for k, v in batch.observers.items():
            observers.setdefault(k, []).append(np.asarray(v))
    n_out = 1 if regression else len(class_names)
    return Predictions(
        name=name,
        class_names=class_names,
        probs=np.concatenate(outs) if outs else np.zeros((0, n_out)),
        labels=np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64),
        weights=np.concatenate(weights) if weights else np.zeros(0),
        observers={k: np.concatenate(v) for k, v in observers.items()},
    )
