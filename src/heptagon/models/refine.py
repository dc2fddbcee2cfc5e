"""The ``refine`` model family: a residual network that maps FastSim values of per-jet
quantities (tagger discriminators, jet observables) to refined values that match
FullSim, given generator-level conditions (docs/refinement.md).

``y = T^-1(z + s f((z - m) / s, c'))``, ``z = T(x)``: ``T`` is the logit for bounded
quantities (values in [0, 1], clamped to ``[eps, 1 - eps]``) and the identity
otherwise, ``c'`` the standardised conditions (generator-level jet pT and eta, hadron
flavour), ``f`` a stack of ResNet blocks, ``m`` and ``s`` the latent standardisation
(:meth:`RefineNet.set_standardisation`, buffers saved with the weights). The skip
connection from input to output and a zero-initialised output layer make "no change"
the starting point: with zero weights the network is the identity (up to the clamp of
bounded values).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["LOGIT_EPS", "RefineNet", "ResBlock"]

#: bounded values are clamped to [LOGIT_EPS, 1 - LOGIT_EPS] before the logit
LOGIT_EPS = 1e-6


class ResBlock(nn.Module):
    """``h + W2 act(W1 act(h))`` (pre-activation residual block, constant width)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Sequential(
            nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width)
        )

    def forward(self, h: Tensor) -> Tensor:
        out: Tensor = h + self.inner(h)
        return out


class RefineNet(nn.Module):
    """Refines ``n_features`` values given ``n_conditions`` conditions.

    ``bounded[i]``: feature ``i`` lies in [0, 1] and is refined in logit space (and so
    stays in [0, 1]); ``width`` and ``blocks`` size the residual stack."""

    bounded: Tensor
    z_shift: Tensor
    z_scale: Tensor
    c_shift: Tensor
    c_scale: Tensor

    def __init__(
        self,
        n_features: int,
        n_conditions: int,
        bounded: Sequence[bool],
        width: int = 64,
        blocks: int = 2,
    ) -> None:
        super().__init__()
        if len(bounded) != n_features:
            raise ValueError(f"bounded has {len(bounded)} entries for {n_features} features")
        self.register_buffer("bounded", torch.tensor(list(bounded), dtype=torch.bool))
        self.register_buffer("z_shift", torch.zeros(n_features))
        self.register_buffer("z_scale", torch.ones(n_features))
        self.register_buffer("c_shift", torch.zeros(n_conditions))
        self.register_buffer("c_scale", torch.ones(n_conditions))
        self.embed = nn.Linear(n_features + n_conditions, width)
        self.blocks = nn.Sequential(*(ResBlock(width) for _ in range(blocks)))
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(width, n_features))
        out = self.head[1]
        assert isinstance(out, nn.Linear)
        nn.init.zeros_(out.weight)  # start from the identity
        nn.init.zeros_(out.bias)

    def set_standardisation(
        self, z_mean: Tensor, z_std: Tensor, c_mean: Tensor, c_std: Tensor
    ) -> None:
        """Standardise latent values and conditions by these means and spreads (a spread
        below 1e-6, a constant, counts as 1)."""
        for name, value in (
            ("z_shift", z_mean),
            ("z_scale", torch.where(z_std > 1e-6, z_std, torch.ones_like(z_std))),
            ("c_shift", c_mean),
            ("c_scale", torch.where(c_std > 1e-6, c_std, torch.ones_like(c_std))),
        ):
            getattr(self, name).copy_(value)

    def standardised(self, z: Tensor) -> Tensor:
        """Latent values in standard units, ``(z - m) / s``."""
        return (z - self.z_shift) / self.z_scale

    def to_latent(self, x: Tensor) -> Tensor:
        """``T(x)``: the logit of bounded features, others unchanged."""
        clamped = x.clamp(LOGIT_EPS, 1 - LOGIT_EPS)
        return torch.where(self.bounded, torch.logit(clamped), x)

    def from_latent(self, z: Tensor) -> Tensor:
        """``T^-1(z)``."""
        return torch.where(self.bounded, torch.sigmoid(z), z)

    def forward_latent(self, x: Tensor, conditions: Tensor) -> Tensor:
        """The refined values in latent space, ``T(x) + f(T(x), c)``."""
        z = self.to_latent(x)
        c = (conditions - self.c_shift) / self.c_scale
        h = self.blocks(self.embed(torch.cat([self.standardised(z), c], dim=1)))
        out: Tensor = z + self.z_scale * self.head(h)
        return out

    def forward(self, x: Tensor, conditions: Tensor) -> Tensor:
        """The refined values, (n, n_features), row ``i`` from row ``i`` of the inputs."""
        return self.from_latent(self.forward_latent(x, conditions))
