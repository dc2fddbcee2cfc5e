"""Particle Transformer (Qu, Li, Qian 2022, arXiv:2202.03772), in the layout of
weaver-core's ``ParticleTransformer``.

Architecture (defaults, ``part``): particle embedding (input BatchNorm, then LayerNorm,
linear, GELU to 128, 512, 128); pair features ln kT, ln z, ln dR, ln m^2 of every pair of
real particles, embedded by BatchNorm and pointwise layers 64-64-64-8 (BatchNorm, GELU
between; the last layer has no activation) into one attention bias per head; 8
particle-attention blocks with 8 heads (NormFormer style: LayerNorms around attention and
the 4x feed-forward, per-head scale, residual scale) and 2 class-attention blocks (CaiT),
a final LayerNorm and a linear output. 2.14M parameters for JetClass inputs (17 features,
10 classes). ``part-lite``: embedding 64-256-64, 4 blocks with 4 heads, 1 class-attention
block, pair embedding 32-32-4.

Masking: padded particles are excluded as keys (additive bias of -1e4, finite, so a jet
with no real particle gives finite scores instead of NaN, in PyTorch and ONNX Runtime alike;
the class token is always a valid key). BatchNorm statistics are taken over the packed real
particles and real pairs only. Pair features are computed once per unordered pair
(i <= j) and mirrored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heptagon.models.base import TorchModel, check_option, resolve_inputs
from heptagon.models.layers import (
    Dropout,
    NarrowLinear,
    dense_head,
    pack,
    real_index,
    trim_padding,
    unpack,
)
from heptagon.models.registry import register

__all__ = ["AttentionBlock", "PairEmbedding", "ParticleTransformer", "pair_features"]

#: Attention bias of padded keys: exp(-1e4) is exactly 0 in float16/32, and finite sums
#: never turn into NaN (unlike -inf on a row without any real key).
_PADDED_KEY_BIAS = -1.0e4


def pair_features(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """``(N, 4)`` features ln kT, ln z, ln dR, ln m^2 of pairs of ``(N, 4)`` four-vectors
    (px, py, pz, E); kT = min(pT) dR, z = min(pT) / (pT_a + pT_b), dR in (rapidity, phi).
    Arguments of the logarithms are clamped to ``eps``."""
    px_a, py_a, pz_a, e_a = a.unbind(1)
    px_b, py_b, pz_b, e_b = b.unbind(1)
    pt_a = torch.sqrt(px_a * px_a + py_a * py_a)
    pt_b = torch.sqrt(px_b * px_b + py_b * py_b)
    rap_a = 0.5 * (torch.log((e_a + pz_a).clamp(min=eps)) - torch.log((e_a - pz_a).clamp(min=eps)))
    rap_b = 0.5 * (torch.log((e_b + pz_b).clamp(min=eps)) - torch.log((e_b - pz_b).clamp(min=eps)))
    dphi = torch.atan2(px_a * py_b - py_a * px_b, px_a * px_b + py_a * py_b)
    delta = torch.sqrt((rap_a - rap_b) ** 2 + dphi * dphi)
    pt_min = torch.minimum(pt_a, pt_b)
    s = a + b
    m2 = s[:, 3] ** 2 - s[:, 0] ** 2 - s[:, 1] ** 2 - s[:, 2] ** 2
    return torch.stack(
        [
            torch.log((pt_min * delta).clamp(min=eps)),
            torch.log((pt_min / (pt_a + pt_b).clamp(min=eps)).clamp(min=eps)),
            torch.log(delta.clamp(min=eps)),
            torch.log(m2.clamp(min=eps)),
        ],
        dim=1,
    )


class PairEmbedding(nn.Module):
    """Pairwise attention biases ``(B, heads, P, P)`` from ``(B, 4, P)`` four-vectors.

    Only pairs of real particles with i <= j go through the network (as packed rows, so
    BatchNorm sees real pairs only); (j, i) mirrors (i, j); pairs with a padded particle get
    0 here and are masked as keys by the caller.
    """

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm1d(4)]
        in_dim = 4
        for dim in dims:
            linear = NarrowLinear if in_dim == 4 else nn.Linear  # 4 features, ~10^5 pairs
            layers += [linear(in_dim, dim), nn.BatchNorm1d(dim), nn.GELU()]
            in_dim = dim
        self.embed = nn.Sequential(*layers[:-1])  # pre-activation biases
        self.heads = dims[-1]

    def forward(self, vectors: Tensor, real: Tensor) -> Tensor:
        """``vectors``: ``(B, 4, P)``; ``real``: ``(B, P)`` boolean mask."""
        n = real.shape[1]
        with torch.no_grad():
            position = torch.arange(n, device=real.device)
            upper = position.unsqueeze(1) <= position.unsqueeze(0)
            pairs = real.unsqueeze(2) & real.unsqueeze(1) & upper
            flat = torch.nonzero(pairs.reshape(-1)).squeeze(1)  # b * P * P + i * P + j
            jet, i, j = flat // (n * n), flat // n % n, flat % n
            rows = vectors.transpose(1, 2).reshape(-1, 4)
            first, second = rows.index_select(0, jet * n + i), rows.index_select(0, jet * n + j)
            fts = pair_features(first, second)
            off_diagonal = torch.nonzero(i != j).squeeze(1)
            # (j, i) for the off-diagonal pairs: b * P * P + j * P + i
            mirrored = (flat - i * n - j + j * n + i).index_select(0, off_diagonal)
            target = torch.cat([flat, mirrored])
        bias = self.embed(fts)
        bias = torch.cat([bias, bias.index_select(0, off_diagonal)])
        dense = bias.new_zeros(real.shape[0] * n * n, self.heads).index_copy(0, target, bias)
        return dense.view(real.shape[0], n, n, self.heads).permute(0, 3, 1, 2)


class AttentionBlock(nn.Module):
    """NormFormer-style transformer block; particle attention or class attention."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_ratio: int,
        dropout: float,
        attn_dropout: float,
        activation_dropout: float,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.pre_attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.post_attn_norm = nn.LayerNorm(dim)
        self.c_attn = nn.Parameter(torch.ones(heads))
        self.pre_fc_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_ratio * dim)
        self.post_fc_norm = nn.LayerNorm(ffn_ratio * dim)
        self.fc2 = nn.Linear(ffn_ratio * dim, dim)
        self.w_resid = nn.Parameter(torch.ones(dim))
        self.attn_dropout = Dropout(attn_dropout)
        self.dropout = Dropout(dropout)
        self.act_dropout = Dropout(activation_dropout)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        """Multi-head attention of ``q`` ``(B, Lq, dim)`` over ``k, v`` ``(B, L, dim)`` with
        an additive ``bias`` ``(B * heads, Lq or 1, L)``; then the per-head scale (folded
        into the output projection), projection, LayerNorm and dropout.

        In evaluation (validation, ``evaluate``, ``predict``, ONNX export) this is
        ``scaled_dot_product_attention`` with the bias as its float mask: PyTorch's fused
        CPU kernel, one pass instead of logits, softmax and weights as separate
        ``(B, heads, Lq, L)`` tensors (~5x faster at 128 particles). In training it is
        written out (one ``baddbmm`` adds the bias to the logits): the fused CPU kernel
        takes neither a bias that needs a gradient (the pair embedding's) nor attention
        dropout, and SDPA's fallback for them is slower than these few calls. Both are
        the same function (the tests compare them).
        """
        batch, length, dim = q.shape
        head_dim = dim // self.heads

        def heads(t: Tensor) -> Tensor:
            return t.reshape(batch, t.shape[1], self.heads, head_dim).transpose(1, 2)

        if self.training:
            flat_q, flat_k, flat_v = (heads(t).reshape(-1, t.shape[1], head_dim) for t in (q, k, v))
            logits = torch.baddbmm(bias, flat_q, flat_k.transpose(1, 2), alpha=head_dim**-0.5)
            weights = self.attn_dropout(logits.softmax(dim=-1))
            a = torch.bmm(weights, flat_v).view(batch, self.heads, length, head_dim)
        else:
            mask = bias.view(batch, self.heads, bias.shape[1], bias.shape[2])
            a = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask)
        a = a.transpose(1, 2).reshape(batch, length, dim)
        scale = self.c_attn.unsqueeze(1).expand(self.heads, head_dim).reshape(1, dim)
        a = F.linear(a, self.out.weight * scale, self.out.bias)
        return cast(Tensor, self.dropout(self.post_attn_norm(a)))

    def _feed_forward(self, x: Tensor) -> Tensor:
        h = self.act_dropout(F.gelu(self.fc1(self.pre_fc_norm(x))))
        return cast(Tensor, self.dropout(self.fc2(self.post_fc_norm(h))) + self.w_resid * x)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        """Particle attention: ``x`` ``(B, P, dim)``, ``bias`` ``(B * heads, P, P)``."""
        q, k, v = self.qkv(self.pre_attn_norm(x)).chunk(3, dim=2)
        return self._feed_forward(x + self._attend(q, k, v, bias))

    def attend_class(self, cls: Tensor, x: Tensor, bias: Tensor) -> Tensor:
        """Class attention: token ``cls`` ``(B, 1, dim)`` attends to itself and ``x``;
        ``bias`` ``(B * heads, 1, 1 + P)``."""
        u = self.pre_attn_norm(torch.cat([cls, x], dim=1))
        dim = cls.shape[2]
        q = F.linear(u[:, :1], self.qkv.weight[:dim], self.qkv.bias[:dim])
        k, v = F.linear(u, self.qkv.weight[dim:], self.qkv.bias[dim:]).chunk(2, dim=2)
        return self._feed_forward(cls + self._attend(q, k, v, bias))


@register(
    "part-lite",
    embed_dims=(64, 256, 64),
    pair_embed_dims=(32, 32),
    num_heads=4,
    num_layers=4,
    num_cls_layers=1,
)
@register("part")
class ParticleTransformer(TorchModel):
    """ParT; ``forward(pf_features, pf_vectors, pf_mask) -> (B, num_classes)``.

    ``pf_vectors`` are (px, py, pz, E) for the pair features. Options: ``embed_dims``,
    ``pair_embed_dims`` (the per-head output layer is added), ``num_heads``, ``num_layers``,
    ``num_cls_layers``, ``ffn_ratio``, ``dropout``, ``attn_dropout``,
    ``activation_dropout`` (particle blocks; class blocks use none), ``fc_params``
    ((width, dropout) of hidden dense layers before the output), ``use_jet_features``
    (the flat group ``jet_features``, e.g. the BDT's soft-drop mass and N-subjettiness
    ratios, joins the class token after the final LayerNorm, before the dense head; then
    ``forward(pf_features, pf_vectors, pf_mask, jet_features)``). Invariant under particle
    permutations and padding.
    """

    required_inputs = ("pf_features", "pf_vectors", "pf_mask")

    def __init__(
        self,
        input_dims: Mapping[str, int],
        num_classes: int,
        *,
        embed_dims: Sequence[int] = (128, 512, 128),
        pair_embed_dims: Sequence[int] = (64, 64, 64),
        num_heads: int = 8,
        num_layers: int = 8,
        num_cls_layers: int = 2,
        ffn_ratio: int = 4,
        dropout: float = 0.1,
        attn_dropout: float = 0.1,
        activation_dropout: float = 0.1,
        fc_params: Sequence[tuple[int, float]] = (),
        use_jet_features: bool = False,
    ) -> None:
        super().__init__()
        self.input_names = resolve_inputs("part", input_dims, self.required_inputs)
        if use_jet_features:
            self.input_names += resolve_inputs("part", input_dims, ("jet_features",))
        self.num_classes = num_classes
        check_option(
            len(embed_dims) > 0 and min(embed_dims) >= 1, "embed_dims", "needs positive widths"
        )
        dim = embed_dims[-1]
        check_option(
            num_heads >= 1 and dim % num_heads == 0,
            "num_heads",
            f"must divide the embedding width {dim}, got {num_heads}",
        )
        check_option(num_cls_layers >= 1, "num_cls_layers", "needs at least one block")
        check_option(min(pair_embed_dims, default=1) >= 1, "pair_embed_dims", "needs widths >= 1")
        in_dim = input_dims["pf_features"]
        embed: list[nn.Module] = [nn.BatchNorm1d(in_dim)]
        for width in embed_dims:
            embed += [nn.LayerNorm(in_dim), nn.Linear(in_dim, width), nn.GELU()]
            in_dim = width
        self.embed = nn.Sequential(*embed)
        self.pair_embed = PairEmbedding([*pair_embed_dims, num_heads])
        self.blocks = nn.ModuleList(
            AttentionBlock(dim, num_heads, ffn_ratio, dropout, attn_dropout, activation_dropout)
            for _ in range(num_layers)
        )
        self.cls_blocks = nn.ModuleList(
            AttentionBlock(dim, num_heads, ffn_ratio, 0.0, 0.0, 0.0) for _ in range(num_cls_layers)
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.norm = nn.LayerNorm(dim)
        in_dim += input_dims["jet_features"] if use_jet_features else 0
        self.fc = dense_head(in_dim, fc_params, num_classes)

    def forward(
        self, pf_features: Tensor, pf_vectors: Tensor, pf_mask: Tensor, *groups: Tensor
    ) -> Tensor:
        """Logits ``(B, num_classes)`` from ``(B, C, P)`` features, ``(B, 4, P)`` four-vectors
        and the ``(B, 1, P)`` mask (then the ``(B, n)`` jet features with
        ``use_jet_features``)."""
        if len(groups) != len(self.input_names) - 3:
            raise TypeError(f"ParT takes {', '.join(self.input_names)}")
        pf_mask, pf_features, pf_vectors = trim_padding(pf_mask, pf_features, pf_vectors)
        real = pf_mask[:, 0] > 0
        index = real_index(pf_mask)
        x = unpack(self.embed(pack(pf_features, index)), index, pf_mask)
        batch, n = real.shape
        key_bias = (~real).to(x.dtype).mul(_PADDED_KEY_BIAS).view(batch, 1, 1, n)
        heads = self.pair_embed.heads
        bias = (self.pair_embed(pf_vectors, real) + key_bias).reshape(-1, n, n)
        for block in self.blocks:
            x = block(x, bias)
        cls_bias = torch.cat([key_bias.new_zeros(batch, 1, 1, 1), key_bias], dim=3)
        cls_bias = cls_bias.expand(-1, heads, -1, -1).reshape(-1, 1, n + 1)
        cls = self.cls_token.expand(batch, -1, -1)
        for block in self.cls_blocks:
            cls = cast(AttentionBlock, block).attend_class(cls, x, cls_bias)
        pooled = self.norm(cls.squeeze(1))
        return cast(Tensor, self.fc(torch.cat([pooled, *groups], dim=1) if groups else pooled))
