"""The convolutional autoencoder of the DQM histograms (the ``conv_autoencoder`` method).

It reads the rows of :func:`~heptagon.apps.dqm.observables.histogram_vectors`, standardised
bin by bin, and gives back their reconstruction. Every histogram has its own small
network, so a histogram is reconstructed from itself alone: a 1D histogram through
``Conv1d`` layers, an occupancy map through ``Conv2d`` layers, each squeezed through a
dense bottleneck of ``latent`` numbers. The rate has no network: it is reconstructed by
its mean over the good LS (0 in standardised units), so its error is its squared
standardised deviation.

This network lives in the DQM app rather than in :mod:`heptagon.models`: it is built for
the layout of the monitored histograms, not for the jet inputs of the model registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from heptagon.errors import ModelError

__all__ = ["HistogramConvAE"]


class _ConvAE(nn.Module):
    """One histogram's autoencoder: two convolutions (kernel 5 in 1D, 3 x 3 in 2D; the
    second with stride 2), a dense bottleneck, a dense layer back, a transposed convolution
    (stride 2) and a last convolution; the output is cropped to the histogram's bins (odd
    sizes round up)."""

    def __init__(self, shape: tuple[int, ...], channels: int, latent: int) -> None:
        super().__init__()
        conv: type[nn.Conv1d | nn.Conv2d]
        deconv: type[nn.ConvTranspose1d | nn.ConvTranspose2d]
        if len(shape) == 1:
            conv, deconv, kernel = nn.Conv1d, nn.ConvTranspose1d, 5
        elif len(shape) == 2:
            conv, deconv, kernel = nn.Conv2d, nn.ConvTranspose2d, 3
        else:
            raise ModelError(f"histograms must be 1D or 2D, got shape {shape}")
        self.shape = shape
        half = tuple((n + 1) // 2 for n in shape)
        flat = 2 * channels * math.prod(half)
        pad = kernel // 2
        self.encoder = nn.Sequential(
            conv(1, channels, kernel, padding=pad),
            nn.ReLU(),
            conv(channels, 2 * channels, kernel, stride=2, padding=pad),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(flat, latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, flat),
            nn.ReLU(),
            nn.Unflatten(1, (2 * channels, *half)),
            deconv(2 * channels, channels, 4, stride=2, padding=1),
            nn.ReLU(),
            conv(channels, 1, kernel, padding=pad),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction ``(B, 1, *shape)`` of ``(B, 1, *shape)``."""
        out: Tensor = self.decoder(self.encoder(x))
        for dim, n in enumerate(self.shape, start=2):
            out = out.narrow(dim, 0, n)
        return out


class HistogramConvAE(nn.Module):
    """``forward(z) -> (B, width)``: the reconstruction of standardised histogram vectors.

    ``shapes``: the bins of each histogram, in the order of the vector
    (:func:`~heptagon.apps.dqm.observables.histogram_shapes`); the entries after the last
    histogram (the rate) are reconstructed as 0. Each histogram's network has ``channels``
    then ``2 * channels`` feature maps and a bottleneck of ``latent`` numbers.
    """

    def __init__(
        self, shapes: Mapping[str, tuple[int, ...]], *, channels: int = 8, latent: int = 4
    ) -> None:
        super().__init__()
        self.shapes = dict(shapes)
        self.nets = nn.ModuleDict(
            {name: _ConvAE(shape, channels, latent) for name, shape in self.shapes.items()}
        )

    def forward(self, z: Tensor) -> Tensor:
        """Reconstruction ``(B, width)`` of ``(B, width)`` standardised vectors."""
        parts, start = [], 0
        for name, shape in self.shapes.items():
            size = math.prod(shape)
            x = z[:, start : start + size].reshape(len(z), 1, *shape)
            parts.append(self.nets[name](x).reshape(len(z), size))
            start += size
        parts.append(torch.zeros_like(z[:, start:]))
        return torch.cat(parts, dim=1)
