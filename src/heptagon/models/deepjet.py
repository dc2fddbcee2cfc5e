"""DeepJet-style tagger (CMS, arXiv:2008.10519): per-constituent 1x1 convolutions (a
pointwise embedding), then an LSTM over the constituents in a chosen order, for the
particle flow candidates and optionally the secondary vertices; dense layers on the
concatenated LSTM summaries.

Constituents are sorted real-first (by variable ``sort_by`` of the group, descending, or in
input order when None); the LSTM's summary is its hidden state after the last *real*
constituent, so padding never reaches the output (a group without any real constituent
gives zeros).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import dense_stack, sort_real_first, trim_padding
from heptagon.models.registry import register

__all__ = ["ConstituentLSTM", "DeepJet"]


class ConstituentLSTM(nn.Module):
    """1x1 convolutions ``conv_dims`` (ReLU, dropout) then an LSTM; ``(B, C, P)`` ->
    ``(B, hidden)`` summary after the last real constituent."""

    def __init__(
        self,
        in_dim: int,
        conv_dims: Sequence[int],
        hidden: int,
        dropout: float,
        sort_by: int | None,
    ) -> None:
        super().__init__()
        self.sort_by = sort_by
        layers: list[nn.Module] = []
        for dim in conv_dims:
            layers += [nn.Conv1d(in_dim, dim, kernel_size=1), nn.ReLU(), nn.Dropout(dropout)]
            in_dim = dim
        self.embed = nn.Sequential(*layers)
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x``: ``(B, C, P)``; ``mask``: ``(B, 1, P)``."""
        mask, x = trim_padding(mask, x)
        x = sort_real_first(x, mask, self.sort_by)
        # explicit zero initial state: batch-size independent in ONNX
        state = x.new_zeros(1, x.shape[0], self.lstm.hidden_size)
        out, _ = self.lstm(self.embed(x).transpose(1, 2), (state, state))  # (B, P, hidden)
        count = mask.sum(dim=(1, 2)).long()
        last = (count - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[2])
        return cast(Tensor, out.gather(1, last).squeeze(1) * (count > 0).to(out.dtype).unsqueeze(1))


@register("deepjet")
class DeepJet(TorchModel):
    """``forward(pf_features, pf_mask[, sv_features, sv_mask]) -> (B, num_classes)``.

    The secondary-vertex branch is built when ``input_dims`` has ``sv_features`` and
    ``sv_mask``. Options: ``pf_conv``, ``sv_conv`` (1x1 conv widths), ``pf_lstm``,
    ``sv_lstm`` (hidden sizes), ``pf_sort_by``, ``sv_sort_by`` (variable index to sort by,
    descending; None keeps the input order), ``fc`` (dense widths), ``dropout``.
    """

    required_inputs = ("pf_features", "pf_mask")
    optional_inputs = ("sv_features", "sv_mask")

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        pf_conv: Sequence[int] = (64, 32, 32, 8),
        sv_conv: Sequence[int] = (64, 32, 32, 8),
        pf_lstm: int = 150,
        sv_lstm: int = 50,
        pf_sort_by: int | None = None,
        sv_sort_by: int | None = None,
        fc: Sequence[int] = (200, 100, 100),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs(
            "deepjet", input_dims, self.required_inputs, self.optional_inputs
        )
        if "sv_features" in self.input_names or "sv_mask" in self.input_names:
            resolve_inputs("deepjet", input_dims, self.optional_inputs)  # both or neither
        self.num_classes = num_classes
        check_option(pf_lstm >= 1 and sv_lstm >= 1, "pf_lstm", "LSTM sizes must be >= 1")
        check_option(0.0 <= dropout < 1.0, "dropout", f"must be in [0, 1), got {dropout}")
        sort_keys = (
            ("pf_sort_by", pf_sort_by, "pf_features"),
            ("sv_sort_by", sv_sort_by, "sv_features"),
        )
        for option, key, group in sort_keys:
            check_option(
                key is None or group not in input_dims or 0 <= key < input_dims[group],
                option,
                f"must index a variable of '{group}', got {key}",
            )
        self.pf = ConstituentLSTM(input_dims["pf_features"], pf_conv, pf_lstm, dropout, pf_sort_by)
        self.sv = (
            ConstituentLSTM(input_dims["sv_features"], sv_conv, sv_lstm, dropout, sv_sort_by)
            if "sv_features" in self.input_names
            else None
        )
        in_dim = pf_lstm + (sv_lstm if self.sv is not None else 0)
        self.fc = nn.Sequential(
            *dense_stack(in_dim, fc, dropout), nn.Linear(([in_dim, *fc])[-1], num_classes)
        )

    def forward(
        self,
        pf_features: Tensor,
        pf_mask: Tensor,
        sv_features: Tensor | None = None,
        sv_mask: Tensor | None = None,
    ) -> Tensor:
        """Logits ``(B, num_classes)``."""
        summary = self.pf(pf_features, pf_mask)
        if self.sv is not None:
            if sv_features is None or sv_mask is None:
                raise TypeError("this DeepJet was built with secondary vertices: pass sv_*")
            summary = torch.cat([summary, self.sv(sv_features, sv_mask)], dim=1)
        return cast(Tensor, self.fc(summary))
