"""Dense autoencoders on flat features (``jet_features``) for anomaly detection: trained to
reconstruct their input (``train.task: anomaly``); a per-entry anomaly score says how
badly an entry is reconstructed.

- ``autoencoder`` (:class:`AutoEncoder`): ``forward(x)`` is the reconstruction
  ``(B, n_vars)``;
- ``vae`` (:class:`VariationalAutoEncoder`, Kingma & Welling, arXiv:1312.6114): the encoder
  gives a diagonal Gaussian posterior ``q(z|x) = N(mu, exp(logvar))`` over ``latent``
  dimensions; ``forward(x)`` is the reconstruction of a sample ``z`` (of ``mu`` in eval
  mode) followed by ``mu`` and ``logvar``: ``(B, n_vars + 2 latent)``.

This packing (reconstruction first, then the posterior's ``mu`` and ``logvar`` if any) is
what :func:`split_output`, the ``reconstruction`` loss and :func:`anomaly_scores` read, so
one loss and one scoring serve both. The scores (:data:`SCORES`):

- ``mse``: the mean over the inputs of the squared reconstruction error;
- ``kl``: the KL divergence of the posterior to the prior ``N(0, 1)``, summed over the
  latent dimensions (the VAE only; the CMS Level-1 AXOL1TL trigger scores from the latent
  space, which needs only the encoder in firmware).

:class:`AnomalyScore` wraps a model into ``x -> (B, 1)`` scores: what ``heptagon export``
writes to ONNX for an anomaly run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal, cast

import torch
from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import dense_stack
from heptagon.models.registry import register

__all__ = [
    "SCORES",
    "AnomalyScore",
    "AutoEncoder",
    "ReconstructionModel",
    "ScoreName",
    "VariationalAutoEncoder",
    "anomaly_scores",
    "kl_divergence",
    "split_output",
]

#: an anomaly score's name
ScoreName = Literal["mse", "kl"]
#: the anomaly scores, in the order they are reported
SCORES: tuple[ScoreName, ...] = ("mse", "kl")


def split_output(output: Tensor, n_vars: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(reconstruction, mu, logvar)`` of a packed model output; ``mu`` and ``logvar`` are
    None for a plain autoencoder (no columns after the reconstruction)."""
    recon = output[:, :n_vars]
    if output.shape[1] == n_vars:
        return recon, None, None
    mu, logvar = output[:, n_vars:].chunk(2, dim=1)
    return recon, mu, logvar


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, 1))`` per entry ``(B,)``, summed over the latent
    dimensions: ``-1/2 sum(1 + logvar - mu^2 - exp(logvar))`` (zero only for the prior)."""
    return -0.5 * (1.0 + logvar - mu.square() - logvar.exp()).sum(dim=1)


def anomaly_scores(output: Tensor, inputs: Tensor) -> dict[str, Tensor]:
    """The per-entry scores ``(B,)`` a packed ``output`` of ``inputs`` gives: ``mse``
    always, ``kl`` for a VAE."""
    recon, mu, logvar = split_output(output, inputs.shape[1])
    scores = {"mse": (recon - inputs).square().mean(dim=1)}
    if mu is not None and logvar is not None:
        scores["kl"] = kl_divergence(mu, logvar)
    return scores


class ReconstructionModel(TorchModel):
    """Base of the models trained with ``train.task: anomaly``: ``forward`` packs the
    reconstruction and, for a VAE, the posterior (see the module docstring); ``score`` is
    the model's anomaly score (the one ``export`` and the trigger route use)."""

    required_inputs = ("jet_features",)
    #: the scores this model can give
    scores: ClassVar[tuple[ScoreName, ...]] = ("mse",)
    score: ScoreName
    n_vars: int
    encoder: nn.Sequential
    decoder: nn.Sequential


@register("autoencoder")
class AutoEncoder(ReconstructionModel):
    """``forward(jet_features) -> (B, n_vars)`` reconstruction (not logits).

    The encoder has widths ``hidden`` then ``latent``; the decoder mirrors it. ReLU between
    layers, linear latent and output. ``num_classes`` is not used: the output has the
    input's width (it is recorded as ``num_classes`` = n_vars for uniformity).
    """

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        hidden: Sequence[int] = (32, 16),
        latent: int = 4,
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs("autoencoder", input_dims, self.required_inputs)
        check_option(min(hidden, default=1) >= 1, "hidden", "needs widths >= 1")
        check_option(latent >= 1, "latent", f"must be >= 1, got {latent}")
        n_vars = input_dims["jet_features"]
        self.num_classes = self.n_vars = n_vars
        self.score = "mse"
        self.encoder = nn.Sequential(
            *dense_stack(n_vars, hidden), nn.Linear(([n_vars, *hidden])[-1], latent)
        )
        widths = list(reversed(hidden))
        self.decoder = nn.Sequential(
            *dense_stack(latent, widths), nn.Linear(([latent, *widths])[-1], n_vars)
        )

    def forward(self, jet_features: Tensor) -> Tensor:
        """Reconstruction ``(B, n_vars)`` of ``(B, n_vars)`` features."""
        return cast(Tensor, self.decoder(self.encoder(jet_features)))

    def reconstruction_error(self, jet_features: Tensor) -> Tensor:
        """Per-sample mean squared reconstruction error ``(B,)``: the anomaly score."""
        return anomaly_scores(self(jet_features), jet_features)["mse"]


@register("vae")
class VariationalAutoEncoder(ReconstructionModel):
    """``forward(jet_features) -> (B, n_vars + 2 latent)``: the reconstruction, ``mu`` and
    ``logvar`` (see the module docstring).

    The encoder has widths ``hidden`` and ends in one linear layer of ``2 latent`` outputs
    (``mu`` then ``logvar``); the decoder mirrors the hidden widths. In training mode the
    decoder reads ``z = mu + exp(logvar / 2) eps`` (``eps ~ N(0, 1)``, the
    reparameterisation), in eval mode ``z = mu``. ``score``: the anomaly score quoted and
    exported, ``kl`` (default) or ``mse``. The loss's ``beta`` weights the KL term.
    ``num_classes`` is not used (it is recorded as the output's width).
    """

    scores: ClassVar[tuple[ScoreName, ...]] = ("mse", "kl")

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        hidden: Sequence[int] = (32, 16),
        latent: int = 3,
        score: ScoreName = "kl",
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs("vae", input_dims, self.required_inputs)
        check_option(min(hidden, default=1) >= 1, "hidden", "needs widths >= 1")
        check_option(latent >= 1, "latent", f"must be >= 1, got {latent}")
        check_option(score in self.scores, "score", f"must be one of {self.scores}, got {score!r}")
        n_vars = input_dims["jet_features"]
        self.n_vars = n_vars
        self.num_classes = n_vars + 2 * latent  # the output's width, as the autoencoder's
        self.latent, self.score = latent, score
        self.encoder = nn.Sequential(
            *dense_stack(n_vars, hidden), nn.Linear(([n_vars, *hidden])[-1], 2 * latent)
        )
        widths = list(reversed(hidden))
        self.decoder = nn.Sequential(
            *dense_stack(latent, widths), nn.Linear(([latent, *widths])[-1], n_vars)
        )

    def forward(self, jet_features: Tensor) -> Tensor:
        """``(B, n_vars + 2 latent)``: reconstruction, ``mu``, ``logvar``."""
        posterior = self.encoder(jet_features)
        mu, logvar = posterior[:, : self.latent], posterior[:, self.latent :]
        z = mu
        if self.training:
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return torch.cat([self.decoder(z), posterior], dim=1)


class AnomalyScore(nn.Module):
    """``x -> (B, 1)``: ``model``'s anomaly score ``score`` (default: the model's own), as
    one graph (the scoring exported to ONNX)."""

    def __init__(self, model: ReconstructionModel, score: ScoreName | None = None) -> None:
        super().__init__()
        self.model, self.score = model, score or model.score
        if self.score not in model.scores:
            raise ValueError(f"{type(model).__name__} has no score '{self.score}'")
        self.input_names = model.input_names

    def forward(self, jet_features: Tensor) -> Tensor:
        """The score of each entry, ``(B, 1)`` (as :func:`anomaly_scores`, with the output's
        layout fixed, so that a traced graph has no branch)."""
        out: Tensor = self.model(jet_features)
        n = self.model.n_vars
        if self.score == "mse":
            return (out[:, :n] - jet_features).square().mean(dim=1, keepdim=True)
        mu, logvar = out[:, n:].chunk(2, dim=1)
        return kl_divergence(mu, logvar)[:, None]
