"""DeepJet-style tagger (CMS, arXiv:2008.10519): per-constituent 1x1 convolutions (a
pointwise embedding), then an LSTM over the constituents in a chosen order, for the
particle flow candidates (optionally split into charged and neutral ones, each with its
own branch, as DeepJet's ``cpf`` / ``npf``) and optionally the secondary vertices; dense
layers on the concatenated LSTM summaries and, optionally, the global jet features.

Constituents are sorted real-first (by variable ``sort_by`` of the group, descending, or in
input order when None); the LSTM's summary is its hidden state after the last *real*
constituent, so padding never reaches the output (a group without any real constituent
gives zeros). A hand-declared mask that does not fit its group is a
:class:`~heptagon.errors.ConfigError` naming it (:func:`~heptagon.models.masks.check_mask`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import dense_stack, sort_real_first, trim_padding
from heptagon.models.masks import check_mask
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
    """``forward(pf_features, pf_mask[, sv_features, sv_mask][, jet_features])`` ->
    ``(B, num_classes)``: the groups of ``input_names``, in that order.

    The secondary-vertex branch is built when ``input_dims`` has ``sv_features`` and
    ``sv_mask``; with ``use_jet_features`` the global features (the flat group
    ``jet_features``, then required) join the LSTM summaries before the dense layers.
    Options: ``pf_conv``, ``sv_conv``,
    ``npf_conv`` (1x1 conv widths), ``pf_lstm``, ``sv_lstm``, ``npf_lstm`` (hidden sizes),
    ``pf_sort_by``, ``sv_sort_by`` (variable index to sort by, descending; None keeps the
    input order), ``use_jet_features``, ``charge_index`` (a variable of ``pf_features``
    that is 0 exactly for neutral candidates, e.g. the unstandardised charge: with it the
    charged candidates go through the ``pf`` branch and the neutral ones through their
    own ``npf`` branch, as DeepJet's cpf / npf; None: one branch for all), ``fc`` (dense
    widths), ``dropout``.
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
        npf_conv: Sequence[int] = (32, 16, 4),
        pf_lstm: int = 150,
        sv_lstm: int = 50,
        npf_lstm: int = 50,
        pf_sort_by: int | None = None,
        sv_sort_by: int | None = None,
        charge_index: int | None = None,
        use_jet_features: bool = False,
        fc: Sequence[int] = (200, 100, 100),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs(
            "deepjet", input_dims, self.required_inputs, self.optional_inputs
        )
        if "sv_features" in self.input_names or "sv_mask" in self.input_names:
            resolve_inputs("deepjet", input_dims, self.optional_inputs)  # both or neither
        if use_jet_features:
            self.input_names += resolve_inputs("deepjet", input_dims, ("jet_features",))
        self.num_classes = num_classes
        check_option(min(pf_lstm, sv_lstm, npf_lstm) >= 1, "pf_lstm", "LSTM sizes must be >= 1")
        check_option(0.0 <= dropout < 1.0, "dropout", f"must be in [0, 1), got {dropout}")
        sort_keys = (
            ("pf_sort_by", pf_sort_by, "pf_features"),
            ("sv_sort_by", sv_sort_by, "sv_features"),
            ("charge_index", charge_index, "pf_features"),
        )
        for option, key, group in sort_keys:
            check_option(
                key is None or group not in input_dims or 0 <= key < input_dims[group],
                option,
                f"must index a variable of '{group}', got {key}",
            )
        self.charge_index = charge_index
        n_global = input_dims["jet_features"] if use_jet_features else 0
        self.pf = ConstituentLSTM(input_dims["pf_features"], pf_conv, pf_lstm, dropout, pf_sort_by)
        self.sv = (
            ConstituentLSTM(input_dims["sv_features"], sv_conv, sv_lstm, dropout, sv_sort_by)
            if "sv_features" in self.input_names
            else None
        )
        self.npf = (
            ConstituentLSTM(input_dims["pf_features"], npf_conv, npf_lstm, dropout, pf_sort_by)
            if charge_index is not None
            else None
        )
        in_dim = pf_lstm + (sv_lstm if self.sv is not None else 0)
        in_dim += npf_lstm if self.npf is not None else 0
        in_dim += n_global
        self.fc = nn.Sequential(
            *dense_stack(in_dim, fc, dropout), nn.Linear(([in_dim, *fc])[-1], num_classes)
        )

    def forward(self, *inputs: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` from the groups of ``input_names``, in that order."""
        if len(inputs) != len(self.input_names):
            raise TypeError(f"DeepJet takes {', '.join(self.input_names)}: {len(inputs)} given")
        x = dict(zip(self.input_names, inputs, strict=True))
        pf, pf_mask = x["pf_features"], x["pf_mask"]
        check_mask("deepjet", "pf_mask", pf_mask, pf_features=pf)
        if self.npf is not None and self.charge_index is not None:
            charged = (pf[:, self.charge_index : self.charge_index + 1] != 0).to(pf_mask.dtype)
            parts = [self.pf(pf, pf_mask * charged), self.npf(pf, pf_mask * (1 - charged))]
        else:
            parts = [self.pf(pf, pf_mask)]
        if self.sv is not None:
            check_mask("deepjet", "sv_mask", x["sv_mask"], sv_features=x["sv_features"])
            parts.insert(1, self.sv(x["sv_features"], x["sv_mask"]))
        if "jet_features" in x:
            parts.append(x["jet_features"])
        return cast(Tensor, self.fc(torch.cat(parts, dim=1)))
