"""Dense autoencoder on flat features (``jet_features``) for anomaly detection: trained to
reconstruct its input; the per-sample reconstruction error is the anomaly score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import dense_stack
from heptagon.models.registry import register

__all__ = ["AutoEncoder"]


@register("autoencoder")
class AutoEncoder(TorchModel):
    """``forward(jet_features) -> (B, n_vars)`` reconstruction (not logits).

    The encoder has widths ``hidden`` then ``latent``; the decoder mirrors it. ReLU between
    layers, linear latent and output. ``num_classes`` is not used: the output has the
    input's width (it is recorded as ``num_classes`` = n_vars for uniformity).
    """

    required_inputs = ("jet_features",)

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
        self.num_classes = n_vars
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
        return cast(Tensor, (self(jet_features) - jet_features).pow(2).mean(dim=1))
