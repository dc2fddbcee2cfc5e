"""Particle Flow Network / Deep Sets (Komiske, Metodiev, Thaler 2019, arXiv:1810.05165):
``F(sum_i Phi(x_i))`` over the real particles.

Defaults follow the JetClass PFN of Qu, Li, Qian 2022 (86.1k parameters for 17 features,
10 classes): Phi = F = (128, 128, 128) with ReLU, no BatchNorm. ``use_bn`` adds an input
BatchNorm and BatchNorm in Phi (statistics over real particles only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import dense_stack, masked_sum, pack, real_index
from heptagon.models.registry import register

__all__ = ["ParticleFlowNetwork"]


@register("pfn")
class ParticleFlowNetwork(TorchModel):
    """PFN; ``forward(pf_features, pf_mask) -> (B, num_classes)``.

    Options: ``phi_sizes``, ``f_sizes`` (hidden widths), ``use_bn``. Invariant under
    particle permutations and padding.
    """

    required_inputs = ("pf_features", "pf_mask")

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        phi_sizes: Sequence[int] = (128, 128, 128),
        f_sizes: Sequence[int] = (128, 128, 128),
        use_bn: bool = False,
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs("pfn", input_dims, self.required_inputs)
        self.num_classes = num_classes
        check_option(len(phi_sizes) > 0 and min(phi_sizes) >= 1, "phi_sizes", "needs widths >= 1")
        check_option(min(f_sizes, default=1) >= 1, "f_sizes", "needs widths >= 1")
        in_dim = input_dims["pf_features"]
        phi = dense_stack(in_dim, phi_sizes, batch_norm=use_bn)
        self.phi = nn.Sequential(nn.BatchNorm1d(in_dim), *phi) if use_bn else phi
        self.f = nn.Sequential(
            *dense_stack(phi_sizes[-1], f_sizes),
            nn.Linear(([phi_sizes[-1], *f_sizes])[-1], num_classes),
        )

    def forward(self, pf_features: Tensor, pf_mask: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` from ``(B, C, P)`` features and the mask."""
        index = real_index(pf_mask)
        return cast(Tensor, self.f(masked_sum(self.phi(pack(pf_features, index)), index, pf_mask)))
