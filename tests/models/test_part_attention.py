"""ParT's attention: the fused ``scaled_dot_product_attention`` of evaluation gives the
scores of the previous, written-out implementation (kept here as the reference), and the
two paths of :meth:`AttentionBlock._attend` (training: written out; evaluation: SDPA) are
the same function, for particle and class attention alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import pytest
import torch
import torch.nn.functional as F
from models_helpers import DIMS, inputs_for, make_batch, pad
from torch import Tensor
from torch.profiler import ProfilerActivity, profile

from heptagon.models import build_model
from heptagon.models.part import AttentionBlock, ParticleTransformer


def reference_attend(self: AttentionBlock, q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """The attention of heptagon before SDPA (commit d762f5b), written out."""
    batch, length, dim = q.shape
    head_dim = dim // self.heads

    def heads(t: Tensor) -> Tensor:
        t = t.reshape(batch, t.shape[1], self.heads, head_dim).transpose(1, 2)
        return t.reshape(-1, t.shape[2], head_dim)

    logits = torch.baddbmm(bias, heads(q), heads(k).transpose(1, 2), alpha=head_dim**-0.5)
    weights = self.attn_dropout(logits.softmax(dim=-1))
    a = torch.bmm(weights, heads(v)).view(batch, self.heads, length, head_dim)
    a = a.transpose(1, 2).reshape(batch, length, dim)
    scale = self.c_attn.unsqueeze(1).expand(self.heads, head_dim).reshape(1, dim)
    a = F.linear(a, self.out.weight * scale, self.out.bias)
    return cast(Tensor, self.dropout(self.post_attn_norm(a)))


@contextmanager
def previous_attention(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(AttentionBlock, "_attend", reference_attend)
        yield


def randomised(name: str) -> ParticleTransformer:
    """A ParT with non-trivial per-head scales and normalisations (not their init)."""
    torch.manual_seed(0)
    model = build_model(name, DIMS, 2)
    assert isinstance(model, ParticleTransformer)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("name", ["part-lite", "part"])
def test_scores_unchanged_against_previous_attention(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = randomised(name)
    # padded slots beyond every jet, and a jet without particles (all keys masked)
    batch = pad(make_batch(6, 24, seed=3, empty_jet=True), 5)
    inputs = inputs_for(model, batch)
    with torch.no_grad():
        now = model(*inputs)
        with previous_attention(monkeypatch):
            before = model(*inputs)
    assert torch.isfinite(now).all()
    torch.testing.assert_close(now, before, rtol=1e-5, atol=1e-5)


def test_evaluation_runs_the_fused_kernel() -> None:
    model = randomised("part-lite")
    inputs = inputs_for(model, make_batch(4, 16, seed=4))
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(*inputs)
    calls = {event.key: event.count for event in prof.key_averages()}
    fused = calls.get("aten::_scaled_dot_product_flash_attention_for_cpu", 0)
    # 4 particle blocks + 1 class block, none on the written-out path
    assert fused == 5
    assert "aten::baddbmm" not in calls


@pytest.mark.parametrize("cls", [False, True])
def test_training_and_evaluation_paths_agree(cls: bool) -> None:
    torch.manual_seed(1)
    block = AttentionBlock(32, 4, 2, 0.0, 0.0, 0.0)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(3, 9, 32)
    token = torch.randn(3, 1, 32)
    keys = 10 if cls else 9
    bias = torch.randn(3 * 4, 1 if cls else 9, keys)
    bias[:, :, -2:] = -1.0e4  # two padded keys

    def run(training: bool) -> tuple[Tensor, Tensor]:
        block.train(training)
        inputs = x.clone().requires_grad_(True)
        out = block.attend_class(token, inputs, bias) if cls else block(inputs, bias)
        (grad,) = torch.autograd.grad(out.square().sum(), inputs)
        return out, grad

    trained, grad_trained = run(True)
    evaluated, grad_evaluated = run(False)
    torch.testing.assert_close(trained, evaluated, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_trained, grad_evaluated, rtol=1e-4, atol=1e-5)
