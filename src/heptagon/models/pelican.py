"""PELICAN: a permutation-equivariant, Lorentz-invariant aggregator network (Bogatskiy et
al. 2022, arXiv:2211.00454).

The jet enters only through the matrix of pairwise Minkowski products of its constituents'
four-momenta, ``d_ij = <p_i, p_j> = E_i E_j - p_i . p_j`` (``d_ii = m_i^2``), so the score
is invariant under any Lorentz transformation of all four-momenta at once (rotations,
boosts, P and T). Every layer maps an ``(N, N, C)`` array of pair channels to another with
the general permutation-equivariant linear map of rank-2 arrays, so the score is also
invariant under permutations of the constituents:

- input: ``C_in`` channels ``f_a(d_ij) = sign(d) ((1 + |d|)^a - 1) / a``, one learnable
  power ``a`` per channel (a -> 0 is ``ln(1 + |d|)``; computed as
  ``expm1(a ln(1 + |d|)) / a`` with :func:`expm1`, without cancellation for small ``a``
  or ``d``);
- ``num_layers`` blocks, each a per-pair "message" layer (dense + LeakyReLU + LayerNorm)
  followed by the 2->2 aggregation: a learned linear combination, per output channel, of
  the 15 equivariant maps of an ``N x N`` array ``T`` -- ``T_ij``, ``T_ji``; the diagonal
  ``T_ii``, the row means ``mean_k T_ik`` and the column means ``mean_k T_ki``, each put
  on the diagonal, broadcast along rows and broadcast along columns (9 maps); the trace
  mean ``mean_k T_kk`` and the total mean ``mean_kl T_kl``, each on the diagonal and
  everywhere (4 maps) -- plus a bias on the diagonal and one everywhere;
- the 2->0 aggregation (trace mean and total mean of each channel) and a dense decoder.

Means run over the jet's real constituents only (``N`` of them, ``N^2`` pairs) and every
padded row and column is zeroed after each layer, so padding changes nothing. The maps are
applied to the small reduced tensors (``(B, N, C)`` and ``(B, C)``) before broadcasting,
never to a ``(B, N, N, 15 C)`` stack; identity and transpose are one dense layer to
``2 C`` channels, the second half transposed.

Inputs: ``pf_vectors`` ``(B, 4, P)`` as (px, py, pz, E) in GeV, divided by
``momentum_scale`` (10 GeV: products in units of 100 GeV^2), and ``pf_mask``. The scale
sets where the transforms turn from linear to logarithmic; 10 GeV keeps the products'
float32 rounding (~0.03 GeV^2 for a 500 GeV particle, whose mass^2 ``E^2 - |p|^2`` cancels)
in the linear part, where it stays small: with 1 GeV the rounding reached the score at
1e-3 and ONNX Runtime and PyTorch differed by 7e-5 on a trained model. The products come from
:func:`heptagon.models.lorentz.minkowski`, which has no float32 cancellation for nearly
collinear, nearly massless pairs.

Defaults (``pelican``) follow the paper's top-tagging depth (5 blocks; ~190k parameters
here at width 48). ``pelican-lite``: 3 blocks of 16 channels (~13k parameters), for a
2-core CPU. Differences from the paper: a LayerNorm over the channels of each message
instead of BatchNorm (per pair statistics: padding and the batch change nothing, and ONNX
Runtime matches PyTorch), plain means over the ``N`` real constituents instead of the
paper's learnable ``(N / N_avg)^alpha`` scaling of the sums, and no "beam" particles (they
fix the beam axis and give up the exact Lorentz symmetry). The pair arrays are dense
``(B, P, P, C)`` tensors over the batch's longest jet: the cost grows with the square of
the number of constituents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import trim_padding
from heptagon.models.lorentz import minkowski
from heptagon.models.registry import register

__all__ = ["PELICAN", "Aggregate2to2", "PowerEmbedding", "expm1"]

#: smallest learnable power of the input embedding (keeps ``/ a`` finite)
_MIN_POWER = 1.0e-3
#: slope of the LeakyReLU activations
_SLOPE = 0.01


class PowerEmbedding(nn.Module):
    """``channels`` learnable transforms ``sign(d) ((1 + |d|)^a - 1) / a`` of the products,
    the powers initialised log-spaced between 0.01 and 0.25 (from ``ln(1 + |d|)``-like to
    a fourth root) and kept in [0.001, 1] (up to ``|d|`` itself). No normalisation
    follows: it would remove the magnitude of ``d``, what the transforms are for."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.power = nn.Parameter(torch.logspace(-2.0, math.log10(0.25), channels))

    def forward(self, d: Tensor) -> Tensor:
        """``(B, P, P)`` products -> ``(B, P, P, channels)``."""
        a = self.power.clamp(_MIN_POWER, 1.0)
        log = torch.log1p(d.abs()).unsqueeze(3)
        return torch.sign(d).unsqueeze(3) * expm1(a * log) / a


def expm1(x: Tensor) -> Tensor:
    """``exp(x) - 1`` for ``x >= 0`` to float rounding, from operators that ONNX has
    (it has no Expm1): ``2 tanh(x/2) / (1 - tanh(x/2))`` below 1, where ``exp(x) - 1``
    would cancel, ``exp(x) - 1`` above (the small branch's input is capped, so that its
    unused values stay finite and pass no NaN gradient)."""
    half = torch.tanh(x.clamp(max=1.0) / 2)
    return torch.where(x < 1.0, 2 * half / (1 - half), torch.exp(x) - 1)


class Aggregate2to2(nn.Module):
    """The general permutation-equivariant linear map from ``(B, P, P, c_in)`` to
    ``(B, P, P, c_out)`` arrays (15 maps per channel pair, two biases), with means over
    the real constituents. See the module docstring for the maps."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.c_out = c_out
        self.pair = nn.Linear(c_in, 2 * c_out)  # T_ij and T_ji; its bias: the one everywhere
        self.rows = nn.Linear(3 * c_in, c_out, bias=False)  # diag/row/col of i, along j
        self.cols = nn.Linear(3 * c_in, c_out, bias=False)  # diag/row/col of j, along i
        self.diag = nn.Linear(5 * c_in, c_out)  # diag/row/col/trace/total on i == j; bias
        self.total = nn.Linear(2 * c_in, c_out, bias=False)  # trace/total everywhere

    def forward(self, t: Tensor, real: Tensor, counts: Tensor) -> Tensor:
        """``t``: ``(B, P, P, c_in)``, zero on padded rows and columns; ``real``: ``(B, P)``
        float, 1 for real constituents; ``counts``: ``(B, 1)`` their number (at least 1).
        Returns ``(B, P, P, c_out)``, zero on padded rows and columns."""
        n = counts.unsqueeze(2)  # (B, 1, 1)
        diagonal = torch.diagonal(t, dim1=1, dim2=2).transpose(1, 2)  # (B, P, c_in)
        row_mean = t.sum(dim=2) / n
        col_mean = t.sum(dim=1) / n
        trace_mean = diagonal.sum(dim=1) / counts
        total_mean = row_mean.sum(dim=1) / counts
        vectors = torch.cat([diagonal, row_mean, col_mean], dim=2)
        scalars = torch.cat([trace_mean, total_mean], dim=1)  # (B, 2 c_in)
        pair = self.pair(t)
        same, swapped = pair[..., : self.c_out], pair[..., self.c_out :]
        on_diagonal = self.diag(
            torch.cat([vectors, scalars.unsqueeze(1).expand(-1, t.shape[1], -1)], dim=2)
        )
        position = torch.arange(t.shape[1], device=t.device)
        eye = (position.unsqueeze(1) == position.unsqueeze(0)).to(t.dtype).unsqueeze(2)
        along_rows = self.rows(vectors) + self.total(scalars).unsqueeze(1)  # (B, P, c_out)
        out = (
            same
            + swapped.transpose(1, 2)
            + along_rows.unsqueeze(2)
            + self.cols(vectors).unsqueeze(1)
            + on_diagonal.unsqueeze(2) * eye
        )
        return out * _pair_mask(real)


class _Block(nn.Module):
    """Message (dense + LeakyReLU + LayerNorm per pair), then the 2->2 aggregation."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.message = nn.Linear(c_in, c_out)
        self.norm = nn.LayerNorm(c_out)
        self.aggregate = Aggregate2to2(c_out, c_out)

    def forward(self, t: Tensor, real: Tensor, counts: Tensor) -> Tensor:
        m = self.norm(F.leaky_relu(self.message(t), _SLOPE)) * _pair_mask(real)
        return self.aggregate(m, real, counts)


def _pair_mask(real: Tensor) -> Tensor:
    """``(B, P, P, 1)``: 1 where both constituents are real."""
    return (real.unsqueeze(2) * real.unsqueeze(1)).unsqueeze(3)


@register("pelican-lite", width=16, num_layers=3, embed_channels=8)
@register("pelican")
class PELICAN(TorchModel):
    """PELICAN; ``forward(pf_vectors, pf_mask) -> (B, num_classes)``.

    Options: ``width`` (channels of the pair arrays), ``num_layers`` (2->2 blocks),
    ``embed_channels`` (learnable transforms of the products), ``momentum_scale`` (GeV the
    four-momenta are divided by), ``dropout`` (decoder). Invariant under permutations of
    the constituents, padding, and Lorentz transformations of all four-momenta.
    """

    required_inputs = ("pf_vectors", "pf_mask")

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        width: int = 48,
        num_layers: int = 5,
        embed_channels: int = 16,
        momentum_scale: float = 10.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs("pelican", input_dims, self.required_inputs)
        self.num_classes = num_classes
        check_option(width >= 1, "width", f"must be >= 1, got {width}")
        check_option(num_layers >= 1, "num_layers", f"must be >= 1, got {num_layers}")
        check_option(embed_channels >= 1, "embed_channels", f"must be >= 1, got {embed_channels}")
        check_option(momentum_scale > 0, "momentum_scale", f"must be > 0, got {momentum_scale}")
        check_option(0.0 <= dropout < 1.0, "dropout", f"must be in [0, 1), got {dropout}")
        self.momentum_scale = momentum_scale
        self.embed = PowerEmbedding(embed_channels)
        self.blocks = nn.ModuleList(
            _Block(embed_channels if i == 0 else width, width) for i in range(num_layers)
        )
        self.decoder = nn.Sequential(
            nn.Linear(2 * width, width),
            nn.LeakyReLU(_SLOPE),
            nn.Dropout(dropout),
            nn.Linear(width, num_classes),
        )

    def forward(self, pf_vectors: Tensor, pf_mask: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` from ``(B, 4, P)`` four-momenta and the ``(B, 1, P)``
        mask."""
        pf_mask, vectors = trim_padding(pf_mask, pf_vectors)
        real = pf_mask[:, 0]  # (B, P)
        x = vectors.transpose(1, 2) * (real.unsqueeze(2) / self.momentum_scale)
        counts = real.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, 1)
        t = self.embed(minkowski(x, x)) * _pair_mask(real)
        for block in self.blocks:
            t = cast(_Block, block)(t, real, counts)
        diagonal = torch.diagonal(t, dim1=1, dim2=2).sum(dim=2) / counts
        total = t.sum(dim=(1, 2)) / counts.square()
        return cast(Tensor, self.decoder(torch.cat([diagonal, total], dim=1)))
