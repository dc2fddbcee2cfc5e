"""Small 1D CNN over the leading N constituents, in the style of L1-trigger (FPGA, hls4ml)
jet taggers: two Conv1d layers along the constituent axis, flatten, one hidden dense layer.

Constituents are sorted real-first (by variable ``sort_by``, descending, or in input order
when None) and the first ``n_constituents`` slots are kept; jets with fewer real
constituents are filled with zeros, exactly as if they had been zero-padded, so the output
never depends on padding. No BatchNorm (folds poorly into fixed-point firmware).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import sort_real_first
from heptagon.models.registry import register

__all__ = ["CNN1D"]


@register("cnn1d")
class CNN1D(TorchModel):
    """``forward(pf_features, pf_mask) -> (B, num_classes)``.

    Options: ``n_constituents``, ``channels`` (two conv widths), ``kernel_size`` (odd;
    "same" padding), ``hidden`` (dense width), ``sort_by``.
    """

    required_inputs = ("pf_features", "pf_mask")

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        n_constituents: int = 16,
        channels: Sequence[int] = (16, 16),
        kernel_size: int = 3,
        hidden: int = 32,
        sort_by: int | None = None,
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs("cnn1d", input_dims, self.required_inputs)
        self.num_classes = num_classes
        in_dim = input_dims["pf_features"]
        check_option(n_constituents >= 1, "n_constituents", f"must be >= 1, got {n_constituents}")
        check_option(len(channels) == 2 and min(channels) >= 1, "channels", "needs two widths >= 1")
        check_option(kernel_size % 2 == 1, "kernel_size", f"must be odd, got {kernel_size}")
        check_option(
            sort_by is None or 0 <= sort_by < in_dim,
            "sort_by",
            f"must index a variable of 'pf_features', got {sort_by}",
        )
        self.n_constituents = n_constituents
        self.sort_by = sort_by
        pad = kernel_size // 2
        self.net = nn.Sequential(
            nn.Conv1d(in_dim, channels[0], kernel_size, padding=pad),
            nn.ReLU(),
            nn.Conv1d(channels[0], channels[1], kernel_size, padding=pad),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels[1] * n_constituents, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, pf_features: Tensor, pf_mask: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` from ``(B, C, P)`` features and the mask."""
        # n_constituents zero slots guarantee enough slots even for P < n_constituents
        batch, n_vars = pf_features.shape[:2]
        fill = pf_features.new_zeros(batch, n_vars, self.n_constituents)
        x = torch.cat([pf_features * pf_mask, fill], dim=2)
        mask = torch.cat([pf_mask, fill[:, :1]], dim=2)
        x = sort_real_first(x, mask, self.sort_by)[:, :, : self.n_constituents]
        return cast(Tensor, self.net(x))
