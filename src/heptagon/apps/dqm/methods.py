"""The certification methods.

Histogram methods give, per sample (an LS, or a run's summed histograms), one error per
monitored histogram (and one for the rate, a Poisson pull squared of the event count
against the reference rate); a fitted :class:`HistogramMethod` turns them into a score
and names the histograms that drove it. Per bin:

- ``chi2``: Pearson's two-sample chi2 terms against the reference (the good fit runs
  summed); ``beta_binomial``: AutoDQM's pulls squared from the beta-binomial
  probability of the observed count given the reference;
- ``pca``, ``autoencoder`` and ``conv_autoencoder``: the squared residuals of the
  reconstructed unit-area histograms, standardised bin by bin over the good LS (PCA with
  ``pca_components``, kept as its mean and principal axes; heptagon's registered dense
  ``autoencoder`` over the whole vector;
  :class:`~heptagon.apps.dqm.conv_autoencoder.HistogramConvAE`, a small convolutional
  autoencoder per histogram, Conv1d for the 1D histograms and Conv2d for the occupancy
  maps, with the rate reconstructed by its mean over the good LS).

A histogram's error is the classical one, chi2 / ndf or the mean over bins, when
``top_bins`` is None, else the mean of its ``top_bins`` largest bin terms.

For every method the score of a sample is its largest error over the histograms, each
divided by that histogram's typical error on good samples (:class:`Calibration`).

:func:`threshold_of` is the rule of the JetMET study: the highest score seen on the good
training samples (``quantile`` 1), or a lower quantile. Supervised, on tabular summaries:
:func:`rank_features` (a small MLP and the first-order gradients of its loss w.r.t. the
inputs) and :func:`fit_classifiers` (KNN, Gaussian naive Bayes, SVM from scikit-learn).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import special
from sklearn.decomposition import PCA
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch import nn

from heptagon.apps.dqm.conv_autoencoder import HistogramConvAE
from heptagon.apps.dqm.observables import (
    HISTOGRAMS,
    histogram_shapes,
    histogram_slices,
    histogram_vectors,
)
from heptagon.errors import ConfigError
from heptagon.models.registry import build_model
from heptagon.train.tasks import TensorTask, fit_in_memory

__all__ = [
    "CLASSIFIERS",
    "ERROR_NAMES",
    "HISTOGRAM_METHODS",
    "Calibration",
    "HistogramMethod",
    "Samples",
    "build_network",
    "classifier_scores",
    "fit_classifiers",
    "fit_histogram_method",
    "rank_features",
    "threshold_of",
]

HISTOGRAM_METHODS: tuple[str, ...] = (
    "chi2",
    "beta_binomial",
    "pca",
    "autoencoder",
    "conv_autoencoder",
)
CLASSIFIERS: tuple[str, ...] = ("knn", "gnb", "svm")
#: the error names: every monitored histogram, then the rate
ERROR_NAMES: tuple[str, ...] = (*HISTOGRAMS, "rate")


@dataclass(frozen=True)
class Samples:
    """Histogram counts ``(n, *bins)`` of n samples (LS or runs), with their events and
    integrated luminosity (in expected events at the nominal rate)."""

    counts: dict[str, np.ndarray]
    n_events: np.ndarray
    lumi: np.ndarray

    @property
    def rate(self) -> np.ndarray:
        return np.asarray(self.n_events / np.maximum(self.lumi, 1e-12))

    def vectors(self) -> np.ndarray:
        return histogram_vectors(self.counts, self.rate)

    def __len__(self) -> int:
        return len(self.n_events)


def threshold_of(scores: np.ndarray, quantile: float = 1.0) -> float:
    """The flagging threshold: the ``quantile`` of the good training samples' scores
    (1.0: the highest one, the JetMET rule). A sample is bad if its score exceeds it."""
    if not 0 < quantile <= 1:
        raise ConfigError(f"must be in (0, 1], got {quantile}", key="quantile")
    return float(np.quantile(np.asarray(scores, dtype=float), quantile))


def _reduce(
    contrib: np.ndarray, used: np.ndarray, top_bins: int | None, ndf_offset: int
) -> np.ndarray:
    """A histogram's error from its per-bin contributions ``(n, bins)`` over the ``used``
    bins: their sum over ``used - ndf_offset`` (``top_bins`` None), else the mean of the
    ``top_bins`` largest (a localised fault, a dead cell among 576, is not averaged away)."""
    if top_bins is None:
        return np.asarray(
            np.where(used, contrib, 0).sum(axis=1) / np.maximum(used.sum(axis=1) - ndf_offset, 1)
        )
    k = min(top_bins, contrib.shape[1])
    top = -np.sort(-np.where(used, contrib, 0.0), axis=1)[:, :k]
    return np.asarray(top.sum(axis=1) / np.clip(used.sum(axis=1), 1, k))


def _rate_error(s: Samples, ref_rate: float) -> np.ndarray:
    """The event count against the reference rate times the luminosity: a Poisson pull^2."""
    expected = ref_rate * s.lumi
    return np.asarray((s.n_events - expected) ** 2 / np.maximum(expected, 1e-12))


def _chi2_errors(
    s: Samples, ref: dict[str, np.ndarray], ref_rate: float, top_bins: int | None
) -> np.ndarray:
    """Pearson's chi2 of two histograms with unknown common shape, bin by bin
    ``(M n_i - N m_i)^2 / (M N (n_i + m_i))`` over filled bins; with ``top_bins`` None the
    error is chi2 / ndf (ndf = filled bins - 1)."""
    out = []
    for name in HISTOGRAMS:
        n = s.counts[name].reshape(len(s), -1).astype(float)
        m = ref[name].reshape(-1).astype(float)
        big_n = n.sum(axis=1, keepdims=True)
        big_m = m.sum()
        pooled = n + m
        used = pooled > 0
        term = (big_m * n - big_n * m) ** 2 / np.where(used, pooled, 1.0)
        term /= np.maximum(big_m * big_n, 1e-12)
        out.append(_reduce(term, used, top_bins, 1))
    out.append(_rate_error(s, ref_rate))
    return np.stack(out, axis=1)


def _betabinom_logpmf(k: np.ndarray, n: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(
        special.gammaln(n + 1)
        - special.gammaln(k + 1)
        - special.gammaln(n - k + 1)
        + special.betaln(k + a, n - k + b)
        - special.betaln(a, b)
    )


def _beta_binomial_errors(
    s: Samples, ref: dict[str, np.ndarray], ref_rate: float, top_bins: int | None
) -> np.ndarray:
    """AutoDQM's beta-binomial comparison: the count ``k`` of a bin among ``N`` entries is
    beta-binomial with ``a = m + 1``, ``b = M - m + 1`` given the reference's ``m`` of
    ``M``; the bin's squared pull is ``2 ln(P(mode) / P(k))`` (a likelihood ratio); with
    ``top_bins`` None the error is the mean over the filled bins."""
    out = []
    for name in HISTOGRAMS:
        k = s.counts[name].reshape(len(s), -1).astype(float)
        m = ref[name].reshape(-1).astype(float)
        big_n = np.broadcast_to(k.sum(axis=1, keepdims=True), k.shape)
        a, b = m + 1, m.sum() - m + 1
        mode = np.clip(np.floor((big_n + 1) * (a - 1) / (a + b - 2)), 0, big_n)
        top = np.maximum(
            _betabinom_logpmf(mode, big_n, a, b),
            _betabinom_logpmf(np.minimum(mode + 1, big_n), big_n, a, b),
        )
        pull2 = np.maximum(2 * (top - _betabinom_logpmf(k, big_n, a, b)), 0.0)
        out.append(_reduce(pull2, (k + m) > 0, top_bins, 0))
    out.append(_rate_error(s, ref_rate))
    return np.stack(out, axis=1)


def _residual_errors(sq: np.ndarray, top_bins: int | None) -> np.ndarray:
    """Per-histogram errors from squared standardised residuals ``(n, n_bins + 1)``."""
    used = np.ones(sq.shape, dtype=bool)
    return np.stack(
        [_reduce(sq[:, sl], used[:, sl], top_bins, 0) for sl in histogram_slices().values()],
        axis=1,
    )


@dataclass(frozen=True)
class Calibration:
    """Thresholds of a histogram method at one level (LS or run), from good samples.

    ``typical``: the mean error of each histogram (and the rate) on the good samples; a
    sample's score is its largest error over typical, so one histogram far off is enough;
    ``threshold``: the score threshold (:func:`threshold_of` the good samples' scores).
    """

    typical: np.ndarray
    threshold: float

    def score(self, errors: np.ndarray) -> np.ndarray:
        """Scores ``(n,)`` of errors ``(n, len(ERROR_NAMES))``."""
        return np.asarray(np.max(errors / self.typical, axis=1))

    def drivers(self, errors: np.ndarray, top: int = 3) -> list[list[tuple[str, float]]]:
        """Per sample: the ``top`` histograms with the largest error over typical."""
        ratio = errors / self.typical
        order = np.argsort(-ratio, axis=1)[:, :top]
        return [[(ERROR_NAMES[j], float(ratio[i, j])) for j in row] for i, row in enumerate(order)]


@dataclass
class HistogramMethod:
    """A fitted histogram method: the reference (chi2, beta-binomial) or the bin-wise
    standardisation and the model (PCA, either autoencoder). ``errors(samples)`` gives
    ``(n, len(ERROR_NAMES))``; :meth:`calibrate` turns good samples' errors into thresholds.

    PCA is kept as plain arrays: ``pca_mean`` ``(width,)`` and the principal axes
    ``pca_axes`` ``(components, width)`` (a reconstruction is the projection on them)."""

    name: str
    ref: dict[str, np.ndarray] = field(default_factory=dict)
    ref_rate: float = 1.0
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    pca_mean: np.ndarray | None = None
    pca_axes: np.ndarray | None = None
    net: nn.Module | None = None
    top_bins: int | None = None

    def errors(self, s: Samples) -> np.ndarray:
        if self.name == "chi2":
            return _chi2_errors(s, self.ref, self.ref_rate, self.top_bins)
        if self.name == "beta_binomial":
            return _beta_binomial_errors(s, self.ref, self.ref_rate, self.top_bins)
        assert self.mean is not None
        assert self.std is not None
        z = (s.vectors() - self.mean) / self.std
        if self.pca_axes is not None:
            assert self.pca_mean is not None
            recon = (z - self.pca_mean) @ self.pca_axes.T @ self.pca_axes + self.pca_mean
        else:
            assert self.net is not None
            with torch.no_grad():
                recon = self.net(torch.as_tensor(z, dtype=torch.float32)).double().numpy()
        return _residual_errors((z - recon) ** 2, self.top_bins)

    def calibrate(self, good_errors: np.ndarray, quantile: float = 1.0) -> Calibration:
        """Thresholds from the errors of good (held-out) samples at one level."""
        typical = np.maximum(good_errors.mean(axis=0), 1e-12)
        scores = np.max(good_errors / typical, axis=1)
        return Calibration(typical, threshold_of(scores, quantile))


def fit_histogram_method(
    name: str,
    good: Samples,
    *,
    top_bins: int | None = None,
    pca_components: int = 10,
    ae_hidden: Sequence[int] = (128, 32),
    ae_latent: int = 8,
    ae_epochs: int = 30,
    ae_lr: float = 1e-3,
    conv_channels: int = 8,
    conv_latent: int = 4,
    batch_size: int = 64,
    seed: int = 0,
) -> HistogramMethod:
    """Fit method ``name`` on good samples (then calibrate it at each level).

    ``ae_hidden`` and ``ae_latent`` shape the dense autoencoder; ``conv_channels`` and
    ``conv_latent`` (per histogram) the convolutional one; both train for ``ae_epochs``
    with learning rate ``ae_lr``."""
    if name not in HISTOGRAM_METHODS:
        known = ", ".join(HISTOGRAM_METHODS)
        raise ConfigError(f"unknown method '{name}' (known: {known})", key="methods")
    ref = {k: v.sum(axis=0) for k, v in good.counts.items()}
    ref_rate = float(good.n_events.sum() / good.lumi.sum())
    method = HistogramMethod(name, ref=ref, ref_rate=ref_rate, top_bins=top_bins)
    if name in ("chi2", "beta_binomial"):
        return method
    x = good.vectors()
    method.mean = x.mean(axis=0)
    std = x.std(axis=0)
    method.std = np.maximum(std, 0.1 * np.median(std[std > 0]))
    z = (x - method.mean) / method.std
    if name == "pca":
        pca = PCA(n_components=min(pca_components, *z.shape), random_state=seed).fit(z)
        method.pca_mean, method.pca_axes = pca.mean_, pca.components_
        return method
    torch.manual_seed(seed)
    net = build_network(
        name,
        z.shape[1],
        ae_hidden=ae_hidden,
        ae_latent=ae_latent,
        conv_channels=conv_channels,
        conv_latent=conv_latent,
    )
    method.net = _train_reconstruction(net, z, ae_epochs, ae_lr, batch_size, seed)
    return method


def build_network(
    name: str,
    width: int,
    *,
    ae_hidden: Sequence[int],
    ae_latent: int,
    conv_channels: int,
    conv_latent: int,
) -> nn.Module:
    """The untrained network of method ``name`` (``autoencoder`` or ``conv_autoencoder``)
    for standardised vectors of ``width`` entries: what :func:`fit_histogram_method`
    trains, and what a saved model's weights are loaded into."""
    if name == "autoencoder":
        net = build_model(
            "autoencoder", {"jet_features": width}, width, hidden=tuple(ae_hidden), latent=ae_latent
        )
    elif name == "conv_autoencoder":
        net = HistogramConvAE(histogram_shapes(), channels=conv_channels, latent=conv_latent)
    else:
        raise ConfigError(f"method '{name}' has no network", key="methods")
    assert isinstance(net, nn.Module)
    return net


@contextmanager
def _one_thread() -> Iterator[None]:
    """Train the small networks on one thread (faster than two contending ones)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_reconstruction(
    net: nn.Module, z: np.ndarray, epochs: int, lr: float, batch_size: int, seed: int
) -> nn.Module:
    """Train ``net`` (either autoencoder) to reconstruct the standardised histograms ``z``
    (heptagon's trainer: Adam, shuffled mini-batches, one thread); the loss weights each
    histogram equally (the score's weighting)."""
    weight = torch.zeros(z.shape[1])
    slices = histogram_slices()
    for sl in slices.values():
        weight[sl] = 1.0 / ((sl.stop - sl.start) * len(slices))
    x = torch.as_tensor(z, dtype=torch.float32)

    def loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((recon - target).pow(2) * weight).sum(dim=1).mean()

    task = TensorTask([x], x, loss, batch_size=batch_size, seed=seed)
    with _one_thread():
        fit_in_memory(net, task, epochs=epochs, lr=lr)
    return net


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x - mean) / std, mean, std


def rank_features(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    epochs: int = 200,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[tuple[str, float]]:
    """Rank features by the mean absolute gradient of a classifier's loss with respect to
    each (standardised) input: a small MLP (heptagon's ``mlp``) is trained good vs bad on
    ``x`` (full batch; AdamW, weight decay 1e-4 on its weight matrices), then ``|dL/dx|``
    is averaged over the samples. Most important first, importances normalised to sum to 1."""
    torch.manual_seed(seed)
    z, _, _ = _standardise(np.asarray(x, dtype=float))
    xt = torch.as_tensor(z, dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    net = build_model("mlp", {"jet_features": xt.shape[1]}, 2, hidden=(32, 16))
    assert isinstance(net, nn.Module)
    task = TensorTask([xt], yt, nn.functional.cross_entropy, batch_size=len(yt), seed=seed)
    with _one_thread():
        fit_in_memory(net, task, epochs=epochs, lr=lr, weight_decay=1e-4)
    xg = xt.clone().requires_grad_(True)
    per_sample = nn.CrossEntropyLoss(reduction="sum")(net(xg), yt)
    (grad,) = torch.autograd.grad(per_sample, xg)
    importance = grad.abs().mean(dim=0).numpy()
    importance = importance / max(float(importance.sum()), 1e-12)
    order = np.argsort(-importance)
    return [(names[i], float(importance[i])) for i in order]


def fit_classifiers(
    x: np.ndarray, y: np.ndarray, *, n_neighbors: int = 5, seed: int = 0
) -> dict[str, Pipeline]:
    """KNN, Gaussian naive Bayes and an RBF SVM (each after standard scaling) fitted on the
    selected features ``x`` with labels ``y`` (1 = bad)."""
    k = min(n_neighbors, len(x))
    return {
        "knn": make_pipeline(StandardScaler(), KNeighborsClassifier(k)).fit(x, y),
        "gnb": make_pipeline(StandardScaler(), GaussianNB()).fit(x, y),
        "svm": make_pipeline(StandardScaler(), SVC(random_state=seed)).fit(x, y),
    }


def classifier_scores(models: dict[str, Pipeline], x: np.ndarray) -> dict[str, np.ndarray]:
    """Badness scores per classifier: P(bad) for KNN and GNB, the SVM decision function."""
    out = {}
    for name, model in models.items():
        if name == "svm":
            out[name] = np.asarray(model.decision_function(x), dtype=float)
        else:
            out[name] = np.asarray(model.predict_proba(x)[:, 1], dtype=float)
    return out
