"""Building blocks shared by the model families.

Jagged models compute per-particle layers on the *packed* real particles: the rows of a
``(n_real, channels)`` matrix gathered once per batch with :func:`real_index` and
:func:`pack`. Padding therefore costs nothing in those layers, and BatchNorm statistics are
taken over real particles only, so padding changes neither the output nor, in training,
the batch statistics. :func:`unpack` scatters rows back to a zero-padded
``(batch, n_particles, channels)`` tensor where a dense layout is needed (kNN, attention,
pooling). All of it exports to ONNX (NonZero, Gather, ScatterND) with dynamic axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Dropout",
    "NarrowLinear",
    "dense_head",
    "dense_stack",
    "dropout",
    "masked_mean",
    "masked_sum",
    "pack",
    "real_index",
    "sort_real_first",
    "trim_padding",
    "unpack",
]


def real_index(mask: Tensor) -> Tensor:
    """Flat indices ``b * n_particles + p`` of the real particles of a ``(B, 1, P)`` mask."""
    return torch.nonzero(mask.reshape(-1) > 0).squeeze(1)


def pack(x: Tensor, index: Tensor) -> Tensor:
    """Rows ``(n_real, C)`` of the real particles of a channels-first ``(B, C, P)`` group."""
    return x.transpose(1, 2).reshape(-1, x.shape[1]).index_select(0, index)


def unpack(rows: Tensor, index: Tensor, mask: Tensor) -> Tensor:
    """Scatter packed ``(n_real, C)`` rows to ``(B, P, C)``, zeros at the padded slots."""
    dense = rows.new_zeros(mask.shape[0] * mask.shape[2], rows.shape[1])
    return dense.index_copy(0, index, rows).view(mask.shape[0], mask.shape[2], -1)


def masked_sum(rows: Tensor, index: Tensor, mask: Tensor) -> Tensor:
    """Per-jet sum ``(B, C)`` of packed rows."""
    return unpack(rows, index, mask).sum(1)


def masked_mean(rows: Tensor, index: Tensor, mask: Tensor) -> Tensor:
    """Per-jet mean ``(B, C)`` of packed rows; zeros for a jet without real particles."""
    counts = mask.sum(dim=(1, 2)).clamp(min=1.0).unsqueeze(1)
    return masked_sum(rows, index, mask) / counts


def trim_padding(mask: Tensor, *groups: Tensor) -> tuple[Tensor, ...]:
    """Drop the slots that are padding in every jet: returns ``(mask, *groups)`` with as many
    slots as the batch's longest jet (at least one), real particles first, in their order.

    A pure speed-up for dense layers (attention, LSTM, kNN): outputs never depend on
    padding. It is skipped while tracing for export, where the number of slots must stay a
    dynamic axis rather than become a constant.
    """
    if torch.jit.is_tracing():
        return (mask, *groups)
    longest = max(int(mask.sum(dim=2).max()), 1)
    if longest == mask.shape[2]:
        return (mask, *groups)
    order = torch.argsort((mask[:, 0] <= 0).to(torch.uint8), dim=1, stable=True)[:, :longest]
    order = order.unsqueeze(1)
    return tuple(g.gather(2, order.expand(-1, g.shape[1], -1)) for g in (mask, *groups))


def sort_real_first(x: Tensor, mask: Tensor, key: int | None) -> Tensor:
    """Reorder the particles of ``x`` ``(B, C, P)``: real ones first, padding last.

    Real particles are sorted by variable ``key`` of ``x``, descending, or keep their order
    when ``key`` is None. The relative order of real particles never depends on padding.
    """
    real = mask[:, 0] > 0
    if key is None:
        position = torch.arange(x.shape[2], device=x.device, dtype=x.dtype)
        score = (-position).unsqueeze(0).expand_as(real)
    else:
        score = x[:, key]
    order = torch.argsort(score.masked_fill(~real, float("-inf")), dim=1, descending=True)
    return x.gather(2, order.unsqueeze(1).expand_as(x))


def dense_stack(
    in_dim: int,
    dims: Sequence[int],
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> nn.Sequential:
    """Linear -> [BatchNorm1d] -> ReLU -> [Dropout] for each width in ``dims``."""
    layers: list[nn.Module] = []
    for dim in dims:
        layers.append(nn.Linear(in_dim, dim, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(dim))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = dim
    return nn.Sequential(*layers)


def dense_head(in_dim: int, fc_params: Sequence[tuple[int, float]], out_dim: int) -> nn.Sequential:
    """Linear -> ReLU -> Dropout for each ``(width, dropout)`` of ``fc_params``, then a
    Linear to ``out_dim``: the dense head of ParticleNet and ParT (weaver-core's layout)."""
    layers: list[nn.Module] = []
    for width, drop in fc_params:
        layers += [nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(drop)]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


#: Below this many elements the mask is drawn by torch (the NumPy set-up costs ~20 us).
_FAST_DROPOUT_MIN = 1 << 16


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout`` with a faster mask for large float32 tensors on the CPU.

    torch's CPU ``bernoulli_`` costs ~7 ns per element on this project's reference CPU,
    more than the attention matmuls of ParT it follows. Here each element gets 16 random
    bits from NumPy's PCG64 (~0.7 ns), seeded by a draw from torch's generator (so
    ``torch.manual_seed`` reproduces the masks), and is dropped when they fall below
    ``round(p * 2**16)``: the drop probability is ``p`` to within ``2**-17``. Kept
    elements are scaled by ``1 / (1 - p)``, as in ``F.dropout``; the gradient is the same
    mask. Elsewhere (CUDA, other dtypes, small tensors, ``p`` of 0 or 1) this is
    ``F.dropout``.
    """
    if (
        not training
        or not 0.0 < p < 1.0
        or x.device.type != "cpu"
        or x.dtype != torch.float32
        or x.numel() < _FAST_DROPOUT_MIN
    ):
        return F.dropout(x, p, training)
    n = x.numel()
    seed = int(torch.randint(0, 2**62, (1,)).item())
    bits = np.random.PCG64(seed).random_raw((n + 3) // 4).view(np.uint16)[:n]
    mask = np.empty(n, np.float32)
    np.multiply(bits >= round(p * 65536), np.float32(1.0 / (1.0 - p)), out=mask)
    return x * torch.from_numpy(mask).view(x.shape)


class Dropout(nn.Module):
    """``nn.Dropout`` through :func:`dropout` (the same state dict: none)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _NarrowLinearFunction(torch.autograd.Function):
    """``x @ weight.T + bias`` for 2-D ``x``, the weight gradient computed as
    ``(x.T @ grad).T``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return torch.addmm(bias, x, weight.t())

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        return (
            grad @ weight if need_x else None,
            torch.mm(x.t(), grad).t() if need_w else None,
            grad.sum(0) if need_b else None,
        )


class NarrowLinear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) for inputs of few features and very
    many rows, such as ParT's 4 pair features of ~500k pairs per batch.

    Autograd computes such a layer's weight gradient as ``grad.T @ x``, an ``out x rows x
    in`` product that MKL runs ~8x slower on the CPU than the equal ``(x.T @ grad).T`` used
    here in training (the forward is ``addmm`` either way). Elsewhere (evaluation, ONNX
    export, CUDA, inputs that are not 2-D) this is ``nn.Linear``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.bias is not None and x.dim() == 2 and x.device.type == "cpu":
            return cast(Tensor, _NarrowLinearFunction.apply(x, self.weight, self.bias))
        return super().forward(x)
