"""Dense network on flat high-level features (``jet_features``), e.g. the hls4ml L1 jet
tagging benchmark's 16 features -> 64-32-32 -> 5 classes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import dense_stack
from heptagon.models.registry import register

__all__ = ["MLP"]


@register("mlp")
class MLP(TorchModel):
    """``forward(jet_features) -> (B, num_classes)``.

    Options: ``hidden`` (widths), ``dropout``, ``batch_norm`` (after each hidden linear).
    """

    required_inputs = ("jet_features",)

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        hidden: Sequence[int] = (64, 32, 32),
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs("mlp", input_dims, self.required_inputs)
        self.num_classes = num_classes
        check_option(min(hidden, default=1) >= 1, "hidden", "needs widths >= 1")
        check_option(0.0 <= dropout < 1.0, "dropout", f"must be in [0, 1), got {dropout}")
        in_dim = input_dims["jet_features"]
        self.net = nn.Sequential(
            *dense_stack(in_dim, hidden, dropout, batch_norm),
            nn.Linear(([in_dim, *hidden])[-1], num_classes),
        )

    def forward(self, jet_features: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` from ``(B, n_vars)`` features."""
        return cast(Tensor, self.net(jet_features))
