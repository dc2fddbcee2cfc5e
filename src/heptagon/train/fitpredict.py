"""Training of fit/predict models (the BDT) through the same entry as the torch models.

The train and validation splits are read whole into numpy (padded to each group's
``length``, so jagged groups have a fixed shape), the model's ``fit`` gets the validation
split as its evaluation set (for its own early stopping), and the run dir gets the saved
model (``checkpoints/best.json``) and one ``history.jsonl`` record with the same keys as
a torch run (``step`` and ``epoch`` are 1; ``lr`` is null).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from heptagon.data.loader import JetDataset
from heptagon.errors import ConfigError
from heptagon.models import FitPredictModel
from heptagon.train.experiment import ExperimentConfig
from heptagon.train.rundir import RunDir, RunSummary
from heptagon.train.validation import Outputs, val_metrics

__all__ = ["fit_model", "read_split"]


def read_split(dataset: JetDataset) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every entry of ``dataset`` as ``(inputs by model input name, labels, weights)``."""
    inputs: dict[str, list[np.ndarray]] = {}
    labels, weights = [], []
    for batch in dataset:
        assert batch.label is not None  # training data has labels (experiment check)
        for name, tensor in batch.tensors().items():
            inputs.setdefault(name, []).append(tensor.numpy())
        labels.append(batch.label.numpy())
        weights.append(batch.weight.numpy())
    if not labels:
        raise ConfigError(f"the {dataset.transform.split_name} split has no entries", "split")
    joined = {name: np.concatenate(parts) for name, parts in inputs.items()}
    return joined, np.concatenate(labels), np.concatenate(weights)


def fit_model(
    model: FitPredictModel,
    config: ExperimentConfig,
    train_data: JetDataset,
    val_data: JetDataset,
    run: RunDir,
) -> RunSummary:
    """Fit ``model`` on the train split with the validation split as evaluation set (both
    read whole, in file order)."""
    start = time.perf_counter()
    (x, y, w), (vx, vy, vw) = read_split(train_data), read_split(val_data)
    fit_start = time.perf_counter()
    model.fit(x, y, w, eval_inputs=vx, eval_labels=vy, eval_weights=vw)
    fit_s = time.perf_counter() - fit_start
    loss = config.train.loss.build()
    train_loss = float(
        loss(torch.from_numpy(model.predict(x)), torch.from_numpy(y), torch.from_numpy(w))
    )
    metrics = val_metrics(
        Outputs(model.predict(vx), vy, vw), loss, config.train.task == "classification"
    )
    record = {
        "epoch": 1,
        "step": 1,
        "jets_seen": len(y),
        "train_loss": train_loss,
        "val_loss": metrics.loss,
        "val_accuracy": metrics.accuracy,
        "val_auc": metrics.auc,
        "lr": None,
        "jets_per_s": len(y) / fit_s if fit_s > 0 else None,
        "wall_s": time.perf_counter() - start,
    }
    model.save(run.checkpoints / "best.json")
    run.write_history([record])
    return RunSummary(run.root, model, 1, 1, metrics.loss, False, [record])
