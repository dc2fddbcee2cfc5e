"""LorentzNet: Lorentz-group-equivariant message passing on jet constituents (Gong et al.
2022, arXiv:2201.08187).

Every particle carries a four-momentum ``x_i`` and a vector of scalars ``h_i``. A Lorentz
group equivariant block (LGEB) computes, for every ordered pair of real particles
``i != j``, a message from Minkowski invariants only::

    m_ij = phi_e(h_i, h_j, psi(<x_i - x_j, x_i - x_j>), psi(<x_i, x_j>))
    h_i <- h_i + phi_h(h_i, sum_j sigmoid(phi_m(m_ij)) m_ij)
    x_i <- x_i + c * sum_j phi_x(m_ij) x_j                 (not in the last block)

with ``<a, b> = a_E b_E - a_x b_x - a_y b_y - a_z b_z`` and ``psi(a) = sign(a) ln(1 + |a|)``.
The jet score is a dense decoder on the mean of ``h`` over the real particles. Since the
messages see only Minkowski products and the momenta are updated by linear combinations
of momenta, the score is invariant under any Lorentz transformation ``Lambda`` of all
four-momenta at once (rotations, boosts, and the reflections P and T), and the updated
momenta are equivariant (``x -> Lambda x``).

Inputs: ``pf_vectors`` ``(B, 4, P)`` as (px, py, pz, E) in GeV, divided inside the model
by ``momentum_scale`` (GeV; a global scale commutes with every Lorentz transformation);
``pf_mask``; optionally ``pf_features``, extra per-particle scalars. The initial scalars
are two invariants of each particle, ``psi(m_i^2)`` and ``psi(<x_i, J>)`` with ``J`` the
jet four-momentum (the particle's energy in the jet rest frame times the jet mass), plus
``pf_features`` where given. The score is Lorentz invariant only if those extra features
are (particle identity, charge); kinematic features such as (deta, dphi) or log pT tie the
model to the lab frame. ``top_lorentznet.yaml`` gives four-momenta only.

Defaults (``lorentznet``) follow the paper's top-tagging network: 6 blocks of width 72,
``c = 1e-3``, dropout 0.2 in the decoder. ``lorentznet-lite``: 3 blocks of width 32, for
a 2-core CPU. Differences from the paper: a LayerNorm of the scalars after each block
instead of BatchNorm in the pair and particle layers (statistics per particle, so padding
and the batch change nothing; the summed messages of ~100 particles would otherwise grow
the scalars until float32 rounding differs visibly between PyTorch and ONNX Runtime), no
"beam" particles (they would fix the beam axis and break the symmetry this model keeps
exactly), and the first pair layer is split into per-particle terms (``W h_i + W' h_j``
computed once per particle, not per pair), which is the same function with fewer FLOPs.
Messages are dense ``(B, P, P, width)`` tensors over the batch's longest jet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import NarrowLinear, trim_padding
from heptagon.models.registry import register

__all__ = ["LorentzBlock", "LorentzNet", "minkowski", "psi"]

#: bound on each momentum-update coefficient ``phi_x(m_ij)`` (the paper's clamp)
_UPDATE_BOUND = 100.0


def minkowski(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise Minkowski products ``(B, P, Q)`` of ``(B, P, 4)`` and ``(B, Q, 4)``
    four-vectors in (px, py, pz, E) order.

    ``E_a E_b - p_a . p_b`` is computed as ``E_a (E_b - |p_b|) + |p_b| (E_a - |p_a|) +
    |p_a| |p_b| |n_a - n_b|^2 / 2`` with ``n = p / |p|``: the same number, without the
    cancellation that leaves only float32 rounding of the product of two nearly collinear,
    nearly massless particles (1 - cos of a 0.01 rad angle is 5e-5, near float32's
    resolution), so PyTorch and ONNX Runtime agree on it too.
    """
    e_a = a[..., 3]
    r_a = torch.sqrt(a[..., :3].square().sum(-1).clamp(min=_TINY))
    r_b = torch.sqrt(b[..., :3].square().sum(-1).clamp(min=_TINY))
    n_a, n_b = a[..., :3] / r_a.unsqueeze(-1), b[..., :3] / r_b.unsqueeze(-1)
    gap = (n_a.unsqueeze(2) - n_b.unsqueeze(1)).square().sum(-1)
    r_ab = r_a.unsqueeze(2) * r_b.unsqueeze(1)
    return (
        e_a.unsqueeze(2) * _excess(b).unsqueeze(1)
        + (r_b.unsqueeze(1) * _excess(a).unsqueeze(2))
        + 0.5 * r_ab * gap
    )


def _excess(v: Tensor) -> Tensor:
    """``E - |p|`` of ``(..., 4)`` four-vectors, computed in float64 and returned in
    ``v``'s dtype. For a nearly massless particle it is all rounding of ``|p|`` in float32,
    and PyTorch and ONNX Runtime round a float32 square root differently (by up to one
    unit in the last place, 5e-5 GeV at 500 GeV); in float64 both give the same float32
    result. Per particle, so the cost is negligible."""
    wide = v.double()
    return (wide[..., 3] - torch.sqrt(wide[..., :3].square().sum(-1).clamp(min=_TINY))).to(v.dtype)


#: floor of |p|^2 (GeV^2 / momentum_scale^2): padded slots have p = 0
_TINY = 1.0e-30


def psi(a: Tensor) -> Tensor:
    """``sign(a) ln(1 + |a|)``: compresses Minkowski products to O(1), odd and monotonic."""
    return torch.sign(a) * torch.log1p(torch.abs(a))


class LorentzBlock(nn.Module):
    """One Lorentz group equivariant block on dense ``(B, P, ...)`` particles."""

    def __init__(self, width: int, c_weight: float, update_momenta: bool) -> None:
        super().__init__()
        self.c_weight = c_weight
        # phi_e's first layer, split: h_i part, h_j part, the two invariants (bias in one)
        self.edge_i = nn.Linear(width, width, bias=False)
        self.edge_j = nn.Linear(width, width, bias=False)
        self.edge_invariants = NarrowLinear(2, width)
        self.edge_out = nn.Linear(width, width)
        self.gate = nn.Linear(width, 1)  # phi_m
        self.node = nn.Sequential(
            nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, width)
        )  # phi_h
        self.norm = nn.LayerNorm(width)
        self.momentum = (
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1, bias=False))
            if update_momenta
            else None
        )  # phi_x

    def forward(self, h: Tensor, x: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
        """``h``: ``(B, P, width)`` scalars; ``x``: ``(B, P, 4)`` momenta; ``pairs``:
        ``(B, P, P, 1)`` float, 1 for pairs of distinct real particles. Returns the
        updated ``(h, x)``."""
        dots = minkowski(x, x)
        squares = torch.diagonal(dots, dim1=1, dim2=2)
        norms = squares.unsqueeze(2) + squares.unsqueeze(1) - 2.0 * dots  # <x_i - x_j, same>
        invariants = psi(torch.stack([norms, dots], dim=3)).view(-1, 2)
        pre = (
            self.edge_i(h).unsqueeze(2)
            + self.edge_j(h).unsqueeze(1)
            + self.edge_invariants(invariants).view(*dots.shape, -1)
        )
        m = F.relu(self.edge_out(F.relu(pre)))
        weights = torch.sigmoid(self.gate(m)) * pairs  # (B, P, P, 1)
        # sum_j w_ij m_ij as one batched product, without a weighted copy of the messages
        aggregated = torch.matmul(weights.transpose(2, 3), m).squeeze(2)
        h = self.norm(h + self.node(torch.cat([h, aggregated], dim=2)))
        if self.momentum is not None:
            coefficient = self.momentum(m).clamp(-_UPDATE_BOUND, _UPDATE_BOUND) * pairs
            x = x + self.c_weight * torch.bmm(coefficient.squeeze(3), x)
        return h, x


@register("lorentznet-lite", width=32, num_layers=3)
@register("lorentznet")
class LorentzNet(TorchModel):
    """LorentzNet; ``forward(pf_vectors, pf_mask[, pf_features]) -> (B, num_classes)``.

    Options: ``width`` (scalars and messages), ``num_layers`` (blocks), ``c_weight`` (step
    of the momentum update), ``momentum_scale`` (GeV the four-momenta are divided by),
    ``dropout`` (decoder). Invariant under particle permutations, padding, and Lorentz
    transformations of all four-momenta (with ``pf_features`` held fixed).
    """

    required_inputs = ("pf_vectors", "pf_mask")
    optional_inputs = ("pf_features",)

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        width: int = 72,
        num_layers: int = 6,
        c_weight: float = 1.0e-3,
        momentum_scale: float = 10.0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs(
            "lorentznet", input_dims, self.required_inputs, self.optional_inputs
        )
        self.num_classes = num_classes
        check_option(width >= 1, "width", f"must be >= 1, got {width}")
        check_option(num_layers >= 1, "num_layers", f"must be >= 1, got {num_layers}")
        check_option(c_weight >= 0, "c_weight", f"must be >= 0, got {c_weight}")
        check_option(momentum_scale > 0, "momentum_scale", f"must be > 0, got {momentum_scale}")
        check_option(0.0 <= dropout < 1.0, "dropout", f"must be in [0, 1), got {dropout}")
        self.momentum_scale = momentum_scale
        n_scalars = 2 + input_dims.get("pf_features", 0) * ("pf_features" in self.input_names)
        self.embed = nn.Linear(n_scalars, width)
        self.blocks = nn.ModuleList(
            LorentzBlock(width, c_weight, update_momenta=i < num_layers - 1)
            for i in range(num_layers)
        )
        self.decoder = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, num_classes)
        )

    def forward(
        self, pf_vectors: Tensor, pf_mask: Tensor, pf_features: Tensor | None = None
    ) -> Tensor:
        """Logits ``(B, num_classes)`` from ``(B, 4, P)`` four-momenta, the ``(B, 1, P)``
        mask and optional ``(B, C, P)`` scalar features."""
        groups = (pf_vectors,) if pf_features is None else (pf_vectors, pf_features)
        pf_mask, *trimmed = trim_padding(pf_mask, *groups)
        real = pf_mask.transpose(1, 2)  # (B, P, 1)
        x = trimmed[0].transpose(1, 2) * (real / self.momentum_scale)
        jet = x.sum(dim=1, keepdim=True)
        scalars = [
            psi(torch.diagonal(minkowski(x, x), dim1=1, dim2=2)).unsqueeze(2),
            psi(minkowski(x, jet)),
        ]
        if pf_features is not None:
            scalars.append(trimmed[1].transpose(1, 2))
        h = self.embed(torch.cat(scalars, dim=2))
        position = torch.arange(x.shape[1], device=x.device)
        distinct = (position.unsqueeze(1) != position.unsqueeze(0)).to(x.dtype)
        pairs = (real * real.transpose(1, 2) * distinct).unsqueeze(3)
        for block in self.blocks:
            h, x = cast(LorentzBlock, block)(h, x, pairs)
        counts = real.sum(dim=1).clamp(min=1.0)
        return cast(Tensor, self.decoder((h * real).sum(dim=1) / counts))
