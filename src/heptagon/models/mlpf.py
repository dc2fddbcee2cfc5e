"""MLPF: machine-learned particle flow with LSH-binned graph layers (after Pata et al.,
Eur. Phys. J. C 81 (2021) 381, arXiv:2101.08578).

An event is a set of detector elements (tracks and calorimeter towers); the network maps
each element to at most one particle. The architecture:

1. a per-element **encoder** (MLP) of the element features, standardised by the
   buffers ``feature_mean`` and ``feature_std`` (identity until
   :meth:`MLPF.set_input_scaling` sets them from a training sample; they are part of the
   state dict and of an ONNX export);
2. ``n_layers`` **graph layers**, each: project the elements into a learned
   ``space_dim``-dimensional space; hash them by a fixed random rotation (angular LSH,
   Reformer style: the bucket is the argmax of ``[xR, -xR]`` over ``n_buckets / 2``
   rotated directions, ties broken by a second random projection); sort the elements by
   bucket and cut the sorted sequence into bins of ``bin_size`` elements; inside each bin
   a dense Gaussian-kernel adjacency ``A_ij = exp(-s |x_i - x_j|^2)`` (a learned ``s``;
   row-normalised, padding masked) passes messages ``A (W h)``, added to the element's
   state through an MLP with a residual connection and LayerNorm. The largest tensor is
   ``(batch, n_elements / bin_size, bin_size, bin_size)``: memory and time grow linearly
   with the number of elements (no ``N^2`` tensor).
3. **heads** on the encoder output and the last graph state, per element
   (:data:`OUTPUTS`): a particle / no-particle logit, class logits over the five particle
   classes, ``log(pT / pT_element)``, ``log(E / E_element)``, ``eta - eta_element``,
   ``sin`` and ``cos`` of ``phi - phi_element``, and charge logits (-1, 0, +1).

``graph="dense"`` replaces the binning by one Gaussian-kernel graph over all elements (an
``N^2`` adjacency): the contrast of the scaling benchmark.

Inputs (channels first, like the other models): ``el_features`` ``(batch, n_features,
n_elements)`` and ``el_mask`` ``(batch, 1, n_elements)``; ``n_elements`` must be a
multiple of ``bin_size`` (pad with masked elements). Output ``(batch, n_elements,
len(OUTPUTS))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import dense_stack
from heptagon.models.registry import register

__all__ = ["MLPF", "OUTPUTS", "LSHGraphLayer"]

#: the output channels, in order (``cls_*``: the five particle classes)
OUTPUTS = (
    "particle",
    "cls_charged_hadron",
    "cls_neutral_hadron",
    "cls_photon",
    "cls_electron",
    "cls_muon",
    "log_pt_ratio",
    "log_e_ratio",
    "deta",
    "sin_dphi",
    "cos_dphi",
    "charge_minus",
    "charge_zero",
    "charge_plus",
)


class LSHGraphLayer(nn.Module):
    """One graph layer: learned space, LSH binning into fixed-size bins, Gaussian-kernel
    message passing inside each bin (or over all elements when ``dense``)."""

    def __init__(
        self, width: int, space_dim: int, bin_size: int, n_buckets: int, dense: bool, seed: int
    ) -> None:
        super().__init__()
        self.bin_size = bin_size
        self.dense = dense
        self.space = nn.Linear(width, space_dim)
        self.message = nn.Linear(width, width)
        self.update = dense_stack(2 * width, (width,))
        self.norm = nn.LayerNorm(width)
        # kernel sharpness: typical distances start near 1, so the adjacency starts smooth
        # (an exp(-|x|^2) on raw projections starts as the identity and learns nothing)
        self.inv_scale = nn.Parameter(torch.tensor(1.0 / space_dim))
        gen = torch.Generator().manual_seed(seed)
        # fixed random rotations (not trained): part of the state dict, so exports agree
        self.register_buffer("rotation", torch.randn(space_dim, n_buckets // 2, generator=gen))
        self.register_buffer("tiebreak", torch.randn(space_dim, 1, generator=gen))

    def _messages(self, x: Tensor, h: Tensor, m: Tensor) -> Tensor:
        """Kernel-weighted messages within the last-but-one axis group (``x: (..., S, d)``,
        ``h: (..., S, w)``, ``m: (..., S, 1)``)."""
        sq = (x * x).sum(-1, keepdim=True)
        dist2 = (sq + sq.transpose(-1, -2) - 2 * x @ x.transpose(-1, -2)).clamp(min=0)
        adj = torch.exp(-dist2 * self.inv_scale.abs()) * m * m.transpose(-1, -2)
        adj = adj / (adj.sum(-1, keepdim=True) + 1e-6)
        out: Tensor = adj @ self.message(h)
        return out

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        """New states ``(B, N, width)`` from states ``h`` and the mask ``(B, N, 1)``."""
        x = self.space(h)
        if self.dense:
            msg = self._messages(x, h, mask)
        else:
            b, _, w = h.shape
            proj = x @ self.rotation
            bucket = torch.cat([proj, -proj], dim=-1).argmax(-1).to(x.dtype)
            # padding sorts last; the tie-break keeps the order deterministic
            key = bucket + torch.sigmoid(x @ self.tiebreak).squeeze(-1) + (1 - mask[..., 0]) * 1e4
            order = torch.argsort(key, dim=1)
            inverse = torch.argsort(order, dim=1)
            s = self.bin_size

            def binned(t: Tensor) -> Tensor:
                g = t.gather(1, order.unsqueeze(-1).expand(-1, -1, t.shape[-1]))
                return g.reshape(b, -1, s, t.shape[-1])

            msg_binned = self._messages(binned(x), binned(h), binned(mask))
            msg_sorted = msg_binned.reshape(b, -1, w)
            msg = msg_sorted.gather(1, inverse.unsqueeze(-1).expand(-1, -1, w))
        out: Tensor = self.norm(h + self.update(torch.cat([h, msg], dim=-1))) * mask
        return out


@register("mlpf")
class MLPF(TorchModel):
    """MLPF; ``forward(el_features, el_mask) -> (B, N, len(OUTPUTS))`` per-element outputs.

    Options: ``width`` (hidden size), ``n_layers`` (graph layers), ``space_dim`` (learned
    space), ``bin_size`` (elements per LSH bin), ``n_buckets`` (LSH buckets, even),
    ``graph`` ("lsh" or "dense"), ``seed`` (of the random rotations). ``num_classes`` is
    the number of target classes including "none" (6).
    """

    required_inputs = ("el_features", "el_mask")

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        width: int = 64,
        n_layers: int = 3,
        space_dim: int = 16,
        bin_size: int = 64,
        n_buckets: int = 16,
        graph: Literal["lsh", "dense"] = "lsh",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs("mlpf", input_dims, self.required_inputs)
        check_option(num_classes == 6, "num_classes", "MLPF predicts 6 classes (none + 5)")
        check_option(width >= 1 and n_layers >= 1, "width", "width and n_layers must be >= 1")
        check_option(bin_size >= 2, "bin_size", "must be >= 2")
        check_option(n_buckets >= 2 and n_buckets % 2 == 0, "n_buckets", "must be even, >= 2")
        check_option(graph in ("lsh", "dense"), "graph", "must be 'lsh' or 'dense'")
        self.num_classes = num_classes
        self.bin_size = bin_size
        in_dim = input_dims["el_features"]
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.encoder = nn.Sequential(*dense_stack(in_dim, (width, width)), nn.LayerNorm(width))
        self.layers = nn.ModuleList(
            LSHGraphLayer(width, space_dim, bin_size, n_buckets, graph == "dense", seed + i)
            for i in range(n_layers)
        )

        def head(n_out: int) -> nn.Sequential:
            return nn.Sequential(
                *dense_stack(2 * width + in_dim, (width,)), nn.Linear(width, n_out)
            )

        self.cls_head = head(6)
        self.reg_head = head(5)
        self.charge_head = head(3)

    feature_mean: Tensor
    feature_std: Tensor

    def set_input_scaling(self, mean: Tensor, std: Tensor) -> None:
        """Standardise the inputs by ``(x - mean) / std`` (per feature; a ``std`` of 0, a
        constant feature, counts as 1)."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def forward(self, el_features: Tensor, el_mask: Tensor) -> Tensor:
        """Per-element outputs ``(B, N, len(OUTPUTS))`` (zeros at padding)."""
        mask = el_mask.transpose(1, 2)
        x = (el_features.transpose(1, 2) - self.feature_mean) / self.feature_std * mask
        if not torch.jit.is_tracing() and x.shape[1] % self.bin_size:
            raise ValueError(
                f"{x.shape[1]} elements is not a multiple of bin_size {self.bin_size}: pad"
            )
        enc = self.encoder(x) * mask
        h = enc
        for layer in self.layers:
            h = layer(h, mask)
        z = torch.cat([x, enc, h], dim=-1)
        out = torch.cat([self.cls_head(z), self.reg_head(z), self.charge_head(z)], dim=-1)
        return out * mask
