"""ParT-AK4: the Particle Transformer (:mod:`heptagon.models.part`) on particles and
secondary vertices as tokens of one sequence, as CMS's ParticleTransformer-AK4 flavour
tagger (docs/flavour.md).

Each token's features are its group's, zero-padded into one layout: a particle is
``[pf_features, 0..., 0]``, an SV ``[0..., sv_features, 1]`` (the last channel says the
token is an SV; an SV slot of zero energy counts as padding). The four-vectors of both
(``pf_vectors``, ``sv_vectors``: px, py, pz, E) give ParT's pair features for every pair
of real tokens: particle-particle, particle-SV and SV-SV (ln kT, ln z, ln dR, ln m^2,
:func:`~heptagon.models.part.pair_features`).
The network itself is :class:`~heptagon.models.part.ParticleTransformer`, built on that
token layout, so its attention, masking and ONNX export are ParT's. Without the SV groups
the model is a plain ParT on the particles.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from heptagon.errors import ConfigError
from heptagon.models.base import TorchModel, resolve_inputs
from heptagon.models.masks import check_mask
from heptagon.models.part import ParticleTransformer
from heptagon.models.registry import register

__all__ = ["ParticleTransformerAK4"]


@register(
    "part-ak4-lite",
    embed_dims=(64, 256, 64),
    pair_embed_dims=(32, 32),
    num_heads=4,
    num_layers=4,
    num_cls_layers=1,
)
@register("part-ak4")
class ParticleTransformerAK4(TorchModel):
    """``forward(pf_features, pf_vectors, pf_mask[, sv_features, sv_vectors, sv_mask])``
    -> ``(B, num_classes)``; the SV tokens are used when all three SV groups are given.

    Options: those of :class:`~heptagon.models.part.ParticleTransformer`, same defaults
    (``part-ak4-lite``: those of ``part-lite``). Invariant under permutations of the
    particles and of the SVs, and under padding of either.
    """

    required_inputs = ("pf_features", "pf_vectors", "pf_mask")
    optional_inputs = ("sv_features", "sv_vectors", "sv_mask")

    def __init__(self, input_dims: Mapping[str, int], num_classes: int, **options: Any) -> None:
        super().__init__()
        with_sv = all(g in input_dims for g in self.optional_inputs)
        self.input_names = resolve_inputs(
            "part-ak4",
            input_dims,
            self.required_inputs + (self.optional_inputs if with_sv else ()),
        )
        if with_sv and input_dims["sv_vectors"] != 4:
            raise ConfigError(
                f"model 'part-ak4': input group 'sv_vectors' has {input_dims['sv_vectors']} "
                "variables, expected 4 (px, py, pz, E)",
                key="inputs.sv_vectors",
            )
        self.num_classes = num_classes
        self.n_pf = input_dims["pf_features"]
        self.n_sv = input_dims["sv_features"] if with_sv else 0
        width = self.n_pf + (self.n_sv + 1 if with_sv else 0)
        self.part = ParticleTransformer(
            {"pf_features": width, "pf_vectors": 4, "pf_mask": 1}, num_classes, **options
        )

    # The registry (option names and defaults, ``heptagon models``) reads a builder's
    # keyword-only parameters: ParT-AK4's are ParT's, passed on unchanged.
    __init__.__signature__ = inspect.signature(ParticleTransformer.__init__)  # type: ignore[attr-defined]

    def forward(
        self,
        pf_features: Tensor,
        pf_vectors: Tensor,
        pf_mask: Tensor,
        sv_features: Tensor | None = None,
        sv_vectors: Tensor | None = None,
        sv_mask: Tensor | None = None,
    ) -> Tensor:
        """Logits ``(B, num_classes)`` from ``(B, C, P)`` features, ``(B, 4, P)``
        four-vectors and ``(B, 1, P)`` masks of the particles (and of the SVs)."""
        check_mask("part-ak4", "pf_mask", pf_mask, pf_features=pf_features, pf_vectors=pf_vectors)
        if self.n_sv == 0:
            return cast(Tensor, self.part(pf_features, pf_vectors, pf_mask))
        if sv_features is None or sv_vectors is None or sv_mask is None:
            raise TypeError("this ParT-AK4 was built with secondary vertices: pass sv_*")
        check_mask("part-ak4", "sv_mask", sv_mask, sv_features=sv_features, sv_vectors=sv_vectors)
        particles = F.pad(pf_features, (0, 0, 0, self.n_sv + 1))
        vertices = torch.cat([F.pad(sv_features, (0, 0, self.n_pf, 0)), sv_mask], dim=1)
        return cast(
            Tensor,
            self.part(
                torch.cat([particles, vertices], dim=2),
                torch.cat([pf_vectors, sv_vectors], dim=2),
                torch.cat([pf_mask, sv_mask], dim=2),
            ),
        )
