"""``heptagon ddt``: build a run's DDT map (:mod:`heptagon.physics.ddt`) and apply it.

:func:`make_ddt` scores the run's training and validation splits with its best model and
fills the map of the background's ``(1 - x)`` score quantile in bins of rho and pT from
their background jets (never the test split, which stays for evaluation); it writes
``RUN/ddt.json``. ``evaluate`` then adds the DDT cut's numbers (``ddt`` in each sample's
metrics), ``export`` embeds the map in the ONNX metadata and ``predict`` writes
``ddt_score``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from heptagon.data.loader import JetDataset
from heptagon.errors import ConfigError, DataError
from heptagon.evaluate.analysis import signal_class
from heptagon.evaluate.inference import Predictions, predict_batches
from heptagon.physics.ddt import DDT_FILE, DDT_OBSERVERS, DDTMap, build_ddt_map, ddt_metrics
from heptagon.train.rundir import load_run

__all__ = ["apply_ddt", "make_ddt"]


def _observables(pred: Predictions, where: str | Path) -> tuple[np.ndarray, np.ndarray]:
    missing = [name for name in DDT_OBSERVERS if name not in pred.observers]
    if missing:
        raise DataError(f"the DDT needs the branches {missing}", where, missing[0])
    return pred.observers["jet_sdmass"], pred.observers["jet_pt"]


def make_ddt(
    run_dir: str | Path,
    efficiency: float,
    *,
    splits: Sequence[Literal["train", "val", "test"]] = ("train", "val"),
    rho_bins: int = 10,
    pt_bins: int = 2,
    batch_size: int = 1024,
) -> DDTMap:
    """Build the DDT map of a binary classifier's run for background efficiency
    ``efficiency`` on the background of ``splits``; write it to ``RUN/ddt.json``."""
    if not 0 < efficiency < 1:
        raise ConfigError(f"must be in (0, 1), got {efficiency}", "--efficiency")
    loaded = load_run(run_dir)
    class_names = list(loaded.class_names)
    if loaded.info.task != "classification" or len(class_names) != 2:
        raise ConfigError("the DDT needs a binary classifier", "run")
    signal = signal_class(class_names)
    cfg = loaded.config
    observers = [*cfg.data.observers, *(o for o in DDT_OBSERVERS if o not in cfg.data.observers)]
    config = cfg.data.model_copy(update={"observers": observers})
    model = loaded.model
    if isinstance(model, torch.nn.Module):
        model.to("cpu")
    parts = []
    for split in splits:
        dataset = JetDataset(
            list(cfg.files), config, loaded.preprocess, split=split,
            split_fractions=cfg.split.fractions, batch_size=batch_size,
            buffer_size=max(batch_size, 10_000), shuffle=False, seed=cfg.train.seed,
        )  # fmt: skip
        parts.append(predict_batches(model, dataset, name=split, class_names=class_names))
    probs = np.concatenate([p.probs for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    weights = np.concatenate([p.weights for p in parts])
    observables = [_observables(p, run_dir) for p in parts]
    mass = np.concatenate([m for m, _ in observables])
    pt = np.concatenate([p for _, p in observables])
    bkg = labels != signal
    ddt = build_ddt_map(
        probs[bkg, signal],
        mass[bkg],
        pt[bkg],
        weights[bkg],
        efficiency=efficiency,
        score_name=class_names[signal],
        rho_bins=rho_bins,
        pt_bins=pt_bins,
    )
    ddt.save(loaded.root / DDT_FILE)
    return ddt


def apply_ddt(ddt: DDTMap, pred: Predictions) -> dict[str, float | None]:
    """The DDT cut's numbers on a binary classifier's predictions (see
    :func:`heptagon.physics.ddt.ddt_metrics`)."""
    signal = pred.class_names.index(ddt.score)
    mass, pt = _observables(pred, pred.name)
    scores = ddt(pred.probs[:, signal], mass, pt)
    return {"efficiency": ddt.efficiency} | ddt_metrics(
        scores, pred.labels == signal, mass, pred.weights
    )
