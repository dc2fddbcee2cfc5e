"""ParticleNet: dynamic graph CNN (EdgeConv) on particle clouds (Qu & Gouskos 2020,
arXiv:1902.08570), in the layout of weaver-core's ``ParticleNet``.

Architecture (defaults, ``particlenet``): input BatchNorm; three EdgeConv blocks with
k = 16 and channels (64, 64, 64), (128, 128, 128), (256, 256, 256), each a shortcut plus
three (linear, BatchNorm, ReLU) layers on the edge features ``[x_i, x_j - x_i]`` averaged
over the k neighbours; the first block finds neighbours in ``pf_points`` (deta, dphi), the
later ones in the previous block's features; mean over the real particles; fc 256 with
dropout 0.1; a linear output. ``particlenet-lite``: k = 7, (32, 32, 32), (64, 64, 64),
fc 128. ``use_fusion`` adds weaver-core's fusion block (a linear layer on the concatenated
block outputs); the published parameter counts (366k for top tagging, 370k for JetClass
inputs, 26k for the lite model) are those without it, hence the default ``False``.

Secondary vertices (ParticleNet-AK4, weaver-core's ``ParticleNetTagger``): given
``sv_points``, ``sv_features`` and ``sv_mask`` as well, particles and SVs are two point
clouds in one graph (when all three are there; otherwise they are ignored, as any group a
model does not use): each group's features are embedded to ``embed_dim`` channels
(BatchNorm, linear, BatchNorm, ReLU; on the packed real rows), the two clouds are
concatenated (points in the same (deta, dphi) space) and the EdgeConv blocks run on the
joint cloud, whose nodes find neighbours among particles and SVs alike. Without the SV
groups nothing changes (same parameters, same results).

Jet-level inputs (``use_jet_features``): the flat group ``jet_features`` (e.g. soft-drop
mass and N-subjettiness ratios, as the BDT's; then required) is concatenated with the
pooled particle features before the dense head, as CMS taggers add global jet inputs to
their constituent networks. Without the option nothing changes.

Implementation (same parameters, less work than weaver-core):

- every per-particle layer runs on the packed real particles (see :mod:`.layers`);
- the first edge layer is linear in ``[x_i, x_j - x_i]``, so it equals
  ``(W_a - W_b) x_i + W_b x_j``: both terms are computed once per particle and only the
  second is gathered for the k neighbours (k-fold fewer FLOPs in that layer);
- kNN is one batched distance matmul and a ``topk``; padded particles and the particle
  itself are excluded. A particle with fewer than k real neighbours (small jets) takes
  itself (edge feature ``[x_i, 0]``) in the missing slots, so the result depends only on
  the real particles, never on the amount of padding;
- edges live as ``(n_real * k, channels)`` rows: each layer is one GEMM and BatchNorm1d
  (same statistics as weaver-core's BatchNorm2d over the edges of real particles).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import dense_head, masked_mean, pack, real_index, trim_padding, unpack
from heptagon.models.masks import check_mask
from heptagon.models.registry import register

__all__ = ["EdgeConvBlock", "ParticleNet", "knn"]


def knn(coords: Tensor, real: Tensor, k: int) -> Tensor:
    """Indices ``(B, P, k)`` of each particle's k nearest real neighbours in ``coords``.

    ``coords`` is ``(B, P, D)``, ``real`` a ``(B, P)`` boolean mask. The particle itself and
    padded particles are never neighbours; slots left without a real neighbour (fewer than
    k others in the jet) hold the particle's own index. Rows of padded particles are
    meaningless. Not differentiable (indices only).

    Distances are computed in float64 and exact ties (e.g. an ECAL and an HCAL tower at the
    same cell centre) go to the lower index, so PyTorch and an ONNX export pick the same
    neighbours: the choice is a discontinuity, float32 rounding would flip near-ties.
    """
    with torch.no_grad():
        n = coords.shape[1]
        c = coords.double()
        sq = (c * c).sum(-1)
        dist = torch.baddbmm(sq.unsqueeze(2) + sq.unsqueeze(1), c, c.transpose(1, 2), alpha=-2.0)
        position = torch.arange(n, device=coords.device)
        # far above float64 rounding of the distances, far below any real gap between them
        dist = dist + position.to(dist.dtype) * _TIE_BREAK
        excluded = (position.unsqueeze(1) == position.unsqueeze(0)).unsqueeze(0)
        dist = dist.masked_fill(excluded | ~real.unsqueeze(1), float("inf"))
        # k columns "at infinity" so that topk is defined for jets with fewer than k slots
        dist = torch.cat([dist, dist.new_full((dist.shape[0], n, k), float("inf"))], dim=2)
        values, index = dist.topk(k, dim=2, largest=False, sorted=False)
        return torch.where(torch.isinf(values), position.view(1, -1, 1), index)


#: added to the squared distance of slot j, times j: orders exact ties by index
_TIE_BREAK = 1e-12


class EdgeConvBlock(nn.Module):
    """EdgeConv on packed particles: ``relu(shortcut(x) + mean_k mlp([x_i, x_j - x_i]))``.

    ``edge_in`` is the first edge layer, weight ``(channels[0], 2 * in_dim)``: its first
    ``in_dim`` columns act on ``x_i``, the others on ``x_j - x_i``.
    """

    def __init__(self, k: int, in_dim: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.k = k
        self.in_dim = in_dim
        self.edge_in = nn.Linear(2 * in_dim, channels[0], bias=False)
        self.edge_in_bn = nn.BatchNorm1d(channels[0])
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(channels):
            layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        self.edge_mlp = nn.Sequential(*layers)
        self.shortcut = (
            None
            if in_dim == channels[-1]
            else nn.Sequential(
                nn.Linear(in_dim, channels[-1], bias=False), nn.BatchNorm1d(channels[-1])
            )
        )

    def forward(self, x: Tensor, neighbours: Tensor) -> Tensor:
        """``x``: ``(N, in_dim)`` packed particles; ``neighbours``: ``(N, k)`` row indices."""
        w_centre, w_diff = torch.split(self.edge_in.weight, self.in_dim, dim=1)
        centre = F.linear(x, w_centre - w_diff)
        other = F.linear(x, w_diff)
        h = other.index_select(0, neighbours.reshape(-1)).view(-1, self.k, other.shape[1])
        h = (h + centre.unsqueeze(1)).view(-1, other.shape[1])
        h = self.edge_mlp(F.relu(self.edge_in_bn(h), inplace=True))
        h = h.view(-1, self.k, h.shape[1]).mean(dim=1)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu(h + shortcut)


@register(
    "particlenet-lite",
    conv_params=((7, (32, 32, 32)), (7, (64, 64, 64))),
    fc_params=((128, 0.1),),
)
@register("particlenet")
class ParticleNet(TorchModel):
    """ParticleNet; ``forward(pf_points, pf_features, pf_mask[, sv_points, sv_features,
    sv_mask][, jet_features]) -> (B, num_classes)``: the groups of ``input_names``, in
    that order.

    Options: ``conv_params`` ((k, channels) per EdgeConv block), ``fc_params``
    ((width, dropout) per hidden dense layer), ``use_fusion``, ``use_fts_bn`` (input
    BatchNorm over the real particles), ``embed_dim`` (the common width of particles and
    SVs, with the SV groups; module docstring), ``use_jet_features`` (the flat group
    ``jet_features`` joins the pooled features before the head). Invariant under particle
    permutations and padding.
    """

    required_inputs = ("pf_points", "pf_features", "pf_mask")
    optional_inputs = ("sv_points", "sv_features", "sv_mask")

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        conv_params: Sequence[tuple[int, Sequence[int]]] = (
            (16, (64, 64, 64)),
            (16, (128, 128, 128)),
            (16, (256, 256, 256)),
        ),
        fc_params: Sequence[tuple[int, float]] = ((256, 0.1),),
        use_fusion: bool = False,
        use_fts_bn: bool = True,
        embed_dim: int = 32,
        use_jet_features: bool = False,
    ) -> None:
        super().__init__()
        # the SV cloud when all its groups are there (otherwise they are ignored)
        with_sv = all(g in input_dims for g in self.optional_inputs)
        self.input_names = resolve_inputs(
            "particlenet",
            input_dims,
            self.required_inputs + (self.optional_inputs if with_sv else ()),
        )
        if use_jet_features:
            self.input_names += resolve_inputs("particlenet", input_dims, ("jet_features",))
        check_option(embed_dim >= 1, "embed_dim", f"must be >= 1, got {embed_dim}")
        self.num_classes = num_classes
        check_option(len(conv_params) > 0, "conv_params", "needs at least one EdgeConv block")
        for k, channels in conv_params:
            check_option(
                k >= 1 and len(channels) > 0 and min(channels) >= 1,
                "conv_params",
                f"each block is (k >= 1, non-empty positive channels), got ({k}, {channels})",
            )
        for width, drop in fc_params:
            check_option(
                width >= 1 and 0.0 <= drop < 1.0,
                "fc_params",
                f"each layer is (width >= 1, 0 <= dropout < 1), got ({width}, {drop})",
            )
        in_dim = input_dims["pf_features"]
        self.bn_fts = nn.BatchNorm1d(in_dim) if use_fts_bn and not with_sv else None
        self.pf_embed: nn.Sequential | None = None
        self.sv_embed: nn.Sequential | None = None
        if with_sv:
            self.pf_embed = _embedding(in_dim, embed_dim, use_fts_bn)
            self.sv_embed = _embedding(input_dims["sv_features"], embed_dim, use_fts_bn)
            in_dim = embed_dim
        self.edge_convs = nn.ModuleList()
        for k, channels in conv_params:
            self.edge_convs.append(EdgeConvBlock(k, in_dim, channels))
            in_dim = channels[-1]
        self.fusion: nn.Sequential | None = None
        if use_fusion:
            fused = sum(channels[-1] for _, channels in conv_params)
            in_dim = min(max(fused // 128 * 128, 128), 1024)
            self.fusion = nn.Sequential(
                nn.Linear(fused, in_dim, bias=False), nn.BatchNorm1d(in_dim), nn.ReLU()
            )
        in_dim += input_dims["jet_features"] if use_jet_features else 0
        self.fc = dense_head(in_dim, fc_params, num_classes)

    def forward(
        self, pf_points: Tensor, pf_features: Tensor, pf_mask: Tensor, *groups: Tensor
    ) -> Tensor:
        """Logits ``(B, num_classes)`` from ``(B, D, P)`` points, ``(B, C, P)`` features and
        the ``(B, 1, P)`` mask, then the other groups of ``input_names`` in that order (the
        same three for the SVs; the ``(B, n)`` jet features)."""
        if len(groups) != len(self.input_names) - 3:
            raise TypeError(f"ParticleNet takes {', '.join(self.input_names)}")
        extra = dict(zip(self.input_names[3:], groups, strict=True))
        sv_points, sv_features, sv_mask = (extra.get(g) for g in self.optional_inputs)
        jet_features = extra.get("jet_features")
        check_mask("particlenet", "pf_mask", pf_mask, pf_points=pf_points, pf_features=pf_features)
        pf_mask, pf_points, pf_features = trim_padding(pf_mask, pf_points, pf_features)
        if self.pf_embed is None or self.sv_embed is None:
            index = real_index(pf_mask)
            x = pack(pf_features, index)
            if self.bn_fts is not None:
                x = self.bn_fts(x)
            return self._graph(x, pf_points, pf_mask, index, jet_features)
        if sv_points is None or sv_features is None or sv_mask is None:
            raise TypeError("this ParticleNet was built with secondary vertices: pass sv_*")
        check_mask("particlenet", "sv_mask", sv_mask, sv_points=sv_points, sv_features=sv_features)
        sv_mask, sv_points, sv_features = trim_padding(sv_mask, sv_points, sv_features)
        dense = []
        for embed, features, mask in (
            (self.pf_embed, pf_features, pf_mask),
            (self.sv_embed, sv_features, sv_mask),
        ):
            rows = real_index(mask)
            dense.append(unpack(embed(pack(features, rows)), rows, mask))
        mask = torch.cat([pf_mask, sv_mask], dim=2)
        index = real_index(mask)
        x = pack(torch.cat(dense, dim=1).transpose(1, 2), index)
        points = torch.cat([pf_points, sv_points], dim=2)
        return self._graph(x, points, mask, index, jet_features)

    def _graph(
        self, x: Tensor, points: Tensor, mask: Tensor, index: Tensor, jet: Tensor | None
    ) -> Tensor:
        """The EdgeConv blocks, pooling and head on packed rows ``x`` of the real nodes
        ``index`` of ``mask``, the first kNN in ``points``; ``jet`` (the jet features, or
        None) joins the pooled features before the head."""
        real = mask[:, 0] > 0
        n_slots = mask.shape[2]
        # packed row of every real node, by flat slot index (valid for real slots only)
        row = torch.cumsum(real.reshape(-1).long(), dim=0) - 1
        jet_start = index - index % n_slots
        coords = points.transpose(1, 2)
        outputs = []
        for i, module in enumerate(self.edge_convs):
            block = cast(EdgeConvBlock, module)
            if i > 0:
                coords = unpack(x.detach(), index, mask)
            slots = knn(coords, real, block.k).reshape(-1, block.k).index_select(0, index)
            neighbours = row.index_select(0, (slots + jet_start.unsqueeze(1)).reshape(-1))
            x = block(x, neighbours.view(-1, block.k))
            outputs.append(x)
        if self.fusion is not None:
            x = self.fusion(torch.cat(outputs, dim=1))
        pooled = masked_mean(x, index, mask)
        if jet is not None:
            pooled = torch.cat([pooled, jet], dim=1)
        return cast(Tensor, self.fc(pooled))


class _SparseBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` on packed rows that may be fewer than two in a training batch (a
    batch with one real SV): those are normalised with the running statistics, which
    they leave unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] < 2:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


def _embedding(in_dim: int, width: int, input_bn: bool) -> nn.Sequential:
    """Per-node embedding of one point cloud: [BatchNorm], linear, BatchNorm, ReLU."""
    layers: list[nn.Module] = [_SparseBatchNorm(in_dim)] if input_bn else []
    layers += [nn.Linear(in_dim, width, bias=False), _SparseBatchNorm(width), nn.ReLU()]
    return nn.Sequential(*layers)
