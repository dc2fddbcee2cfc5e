"""Evaluation of an anomaly detector (``train.task: anomaly``, docs/anomaly.md).

The model's anomaly scores (``mse``, and ``kl`` for a VAE:
:func:`heptagon.models.autoencoder.anomaly_scores`) are computed for every entry of a
sample; the classes outside the run's ``train.background`` are the signals it never saw.
For each score and each held-out class present, :func:`anomaly_metrics` gives the AUC
against the background (bootstrap error) and the signal efficiency at a fixed background
rate, ``rate = eps_B x 40 MHz`` (:mod:`heptagon.physics.rates`): the trigger's figure of
merit. :func:`evaluate_anomaly_sample` writes the sample's scores
(``predictions_<sample>.parquet``: ``score_<name>``, ``label``, ``weight``, observers) and
the ROC plot of the model's own score, and returns the metrics and that score's ROC of
all held-out classes together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from numpy.typing import NDArray

from heptagon.artifacts.metrics import (
    AnomalyMetrics,
    AnomalySignal,
    Count,
    Measured,
    SignalAtRate,
)
from heptagon.data.loader import Batch
from heptagon.errors import ConfigError, DataError
from heptagon.evaluate.plots import plot_roc
from heptagon.io import atomic_path
from heptagon.models.autoencoder import ReconstructionModel, anomaly_scores
from heptagon.physics.rates import LHC_BUNCH_CROSSING_HZ, efficiency_at_rate
from heptagon.physics.roc import Roc, roc_curve
from heptagon.physics.stats import bootstrap, finite_or_none, spread

__all__ = [
    "DEFAULT_RATE_HZ",
    "AnomalyScores",
    "anomaly_metrics",
    "evaluate_anomaly_sample",
    "score_batches",
]

#: the default fixed background rate: 1 kHz, an anomaly trigger's share of L1's ~100 kHz
DEFAULT_RATE_HZ = 1.0e3


@dataclass
class AnomalyScores:
    """An anomaly detector's scores on one sample: score name -> ``(n,)``, with the class
    indices, weights and observers of the entries."""

    name: str
    scores: dict[str, NDArray[np.float64]]
    labels: NDArray[np.int64]
    weights: NDArray[np.float64]
    observers: dict[str, NDArray[np.generic]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.weights)

    def save(self, path: str | Path) -> None:
        """Write as Parquet: ``score_<name>``, ``label``, ``weight`` and the observers."""
        cols: dict[str, NDArray[np.generic]] = {f"score_{k}": v for k, v in self.scores.items()}
        cols |= {"label": self.labels, "weight": self.weights, **self.observers}
        table = pa.table({k: np.asarray(v) for k, v in cols.items()})
        with atomic_path(path) as tmp:
            pq.write_table(table.replace_schema_metadata({"sample": self.name}), tmp)


def score_batches(model: ReconstructionModel, batches: Iterable[Batch], name: str) -> AnomalyScores:
    """Every score of ``model`` (in eval mode) on the labelled ``batches``."""
    dev = next(model.parameters()).device
    model.eval()
    scores: dict[str, list[NDArray[np.float64]]] = {}
    labels, weights = [], []
    observers: dict[str, list[NDArray[np.generic]]] = {}
    for batch in batches:
        assert batch.label is not None, "evaluation needs labels"
        x = batch.to(dev).tensors()[model.input_names[0]]
        with torch.inference_mode():
            for k, v in anomaly_scores(model(x).float(), x.float()).items():
                scores.setdefault(k, []).append(v.double().cpu().numpy())
        labels.append(batch.label.numpy().astype(np.int64))
        weights.append(batch.weight.numpy().astype(np.float64))
        for k, o in batch.observers.items():
            observers.setdefault(k, []).append(np.asarray(o))
    if not labels:
        return AnomalyScores(name, {}, np.zeros(0, np.int64), np.zeros(0))
    return AnomalyScores(
        name,
        {k: np.concatenate(v) for k, v in scores.items()},
        np.concatenate(labels),
        np.concatenate(weights),
        {k: np.concatenate(v) for k, v in observers.items()},
    )


def _signal(
    score: NDArray[np.float64],
    is_sig: NDArray[np.bool_],
    w: NDArray[np.float64],
    rate_hz: float,
    reference_hz: float,
    n_boot: int,
    seed: int,
) -> AnomalySignal:
    """One held-out class (``is_sig``) against the background (the rest)."""
    area = roc_curve(score, is_sig, w).auc
    boot = bootstrap(lambda i: roc_curve(score[i], is_sig[i], w[i]).auc, is_sig,
                     n_boot=n_boot, seed=seed)  # fmt: skip
    wp = efficiency_at_rate(score, is_sig, w, rate_hz=rate_hz, reference_hz=reference_hz)
    return AnomalySignal(
        n_signal=Count(raw=int(is_sig.sum()), weighted=float(w[is_sig].sum())),
        auc=Measured(value=area, err=finite_or_none(float(spread(boot)))),
        eff_at_rate=SignalAtRate(
            requested_rate_hz=wp.requested_rate_hz, rate_hz=wp.rate_hz, reached=wp.reached,
            threshold=wp.threshold, background_eff=wp.background_eff,
            signal_eff=Measured(value=wp.signal_eff, err=wp.signal_eff_err),
        ),
    )  # fmt: skip


def anomaly_metrics(
    pred: AnomalyScores,
    class_names: Sequence[str],
    background: Sequence[str],
    score: str,
    *,
    rate_hz: float = DEFAULT_RATE_HZ,
    reference_hz: float = LHC_BUNCH_CROSSING_HZ,
    n_boot: int = 100,
    seed: int = 0,
) -> AnomalyMetrics:
    """The :class:`AnomalyMetrics` of ``pred``: the classes of ``class_names`` outside
    ``background`` are the signals; ``score`` is the model's own (its combined AUC is
    ``auc``). Raises :class:`DataError` when the sample has no background and
    :class:`ConfigError` for a rate outside ``(0, reference_hz]``."""
    if not 0 < rate_hz <= reference_hz:
        raise ConfigError(f"must be in (0, {reference_hz:g}] Hz, got {rate_hz:g}", "rate_hz")
    bkg_idx = [class_names.index(c) for c in background]
    is_bkg = np.isin(pred.labels, bkg_idx)
    w = pred.weights
    if not w[is_bkg].sum() > 0:
        raise DataError(f"sample '{pred.name}' has no background ({', '.join(background)})")
    held_out = [c for c in class_names if c not in background]
    present = [c for c in held_out if w[pred.labels == class_names.index(c)].sum() > 0]
    per_score: dict[str, dict[str, AnomalySignal]] = {}
    for name, values in pred.scores.items():
        per_score[name] = {}
        for c in present:
            keep = is_bkg | (pred.labels == class_names.index(c))
            is_sig = pred.labels[keep] == class_names.index(c)
            per_score[name][c] = _signal(
                values[keep], is_sig, w[keep], rate_hz, reference_hz, n_boot, seed
            )
    combined = Measured(value=None, err=None)
    if present:
        s = pred.scores[score]
        boot = bootstrap(lambda i: roc_curve(s[i], ~is_bkg[i], w[i]).auc, is_bkg,
                         n_boot=n_boot, seed=seed)  # fmt: skip
        combined = Measured(
            value=roc_curve(s, ~is_bkg, w).auc, err=finite_or_none(float(spread(boot)))
        )
    return AnomalyMetrics(
        score=score,
        background=list(background),
        n_background=Count(raw=int(is_bkg.sum()), weighted=float(w[is_bkg].sum())),
        reference_rate_hz=reference_hz,
        auc=combined,
        scores=per_score,
        missing_classes=[c for c in held_out if c not in present],
    )


def evaluate_anomaly_sample(
    model: ReconstructionModel,
    batches: Iterable[Batch],
    *,
    name: str,
    class_names: Sequence[str],
    background: Sequence[str],
    eval_dir: Path,
    plot_dir: Path,
    rate_hz: float = DEFAULT_RATE_HZ,
    n_boot: int = 100,
    seed: int = 0,
) -> tuple[AnomalyMetrics, Roc | None, list[Path]]:
    """Score one sample, write ``predictions_<name>.parquet`` and the ROC plot of the
    model's score (one curve per held-out class present); return the metrics, that
    score's ROC of all held-out classes together (None without any) and the plots."""
    pred = score_batches(model, batches, name)
    if len(pred) == 0:
        raise DataError(f"no entries to evaluate in sample '{name}'")
    metrics = anomaly_metrics(
        pred, class_names, background, model.score, rate_hz=rate_hz, n_boot=n_boot, seed=seed
    )
    pred.save(eval_dir / f"predictions_{name}.parquet")
    s = pred.scores[model.score]
    is_bkg = np.isin(pred.labels, [class_names.index(c) for c in background])
    rocs = {}
    for c in metrics.scores[model.score]:
        keep = is_bkg | (pred.labels == class_names.index(c))
        is_sig = pred.labels[keep] == class_names.index(c)
        rocs[f"{c} ({model.score})"] = roc_curve(s[keep], is_sig, pred.weights[keep])
    plots = plot_roc(rocs, plot_dir / f"{name}_anomaly_roc") if rocs else []
    combined = roc_curve(s, ~is_bkg, pred.weights) if rocs else None
    return metrics, combined, plots
