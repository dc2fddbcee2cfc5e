"""ParT's training path: the pair embedding's fused Linear + BatchNorm
(:func:`heptagon.models.part._linear_batch_norm`) is the function of the modules it replaces
in training: outputs, gradients, running statistics, and a whole training step's loss and
gradients equal the module path's within float32 tolerance, at no less accuracy."""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from models_helpers import DIMS, inputs_for, make_batch, pad
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

from heptagon.models import build_model
from heptagon.models.part import PairEmbedding, ParticleTransformer, _linear_batch_norm

Layer = Callable[[Tensor, nn.Linear, nn.BatchNorm1d], Tensor]
ROOT = Path(__file__).resolve().parents[2]


def modules(x: Tensor, linear: nn.Linear, norm: nn.BatchNorm1d) -> Tensor:
    return norm(linear(x))


def layer_pair(n_in: int, n_out: int, momentum: float | None) -> tuple[nn.Linear, nn.BatchNorm1d]:
    """A Linear and a BatchNorm in training, with non-trivial affine parameters and
    running statistics."""
    torch.manual_seed(0)
    linear, norm = nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out, momentum=momentum)
    with torch.no_grad():
        norm.weight.add_(0.3 * torch.randn(n_out))
        norm.bias.add_(0.3 * torch.randn(n_out))
        norm.running_mean.add_(torch.randn(n_out))
        norm.running_var.add_(torch.rand(n_out))
        norm.num_batches_tracked.fill_(3)
    return linear.train(), norm.train()


def run_layer(
    layer: Layer,
    linear: nn.Linear,
    norm: nn.BatchNorm1d,
    x0: Tensor,
    upstream: Tensor,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Tensor]:
    """Output, gradients and buffers of ``gelu(layer(x))`` for a copy of the layer pair."""
    linear, norm = copy.deepcopy(linear).to(dtype), copy.deepcopy(norm).to(dtype)
    x = x0.to(dtype).clone().requires_grad_(True)
    out = F.gelu(layer(x, linear, norm))
    (out * upstream.to(dtype)).sum().backward()
    grads = {
        "x": x.grad,
        "weight": linear.weight.grad,
        "bias": linear.bias.grad,
        "gamma": norm.weight.grad,
        "beta": norm.bias.grad,
    }
    result = {"out": out.detach(), **{k: g for k, g in grads.items() if g is not None}}
    result.update(dict(norm.named_buffers()))
    return {k: v.double() for k, v in result.items()}


@pytest.mark.parametrize(("n_in", "n_out", "momentum"), [(4, 16, 0.1), (16, 16, None)])
def test_fused_layer_equals_linear_and_batch_norm(
    n_in: int, n_out: int, momentum: float | None
) -> None:
    linear, norm = layer_pair(n_in, n_out, momentum)
    g = torch.Generator().manual_seed(1)
    x0 = F.gelu(1.5 * torch.randn(3000, n_in, generator=g) + 0.3)
    upstream = torch.randn(3000, n_out, generator=g)
    expected = run_layer(modules, linear, norm, x0, upstream)
    fused = run_layer(_linear_batch_norm, linear, norm, x0, upstream)
    assert set(fused) == set(expected)
    for key, value in expected.items():
        # the Linear's bias gradient is float noise around 0: on the weight gradient's scale
        scale = float(expected["weight" if key == "bias" else key].abs().max())
        torch.testing.assert_close(fused[key], value, rtol=0, atol=2e-5 * scale, msg=key)
    # the Linear's bias cancels in BatchNorm: its gradient is exactly zero, not noise
    assert torch.count_nonzero(fused["bias"]) == 0
    assert fused["num_batches_tracked"].item() == 4


@pytest.mark.parametrize("shift", [0.3, 4.0])
def test_fused_layer_as_accurate_as_batch_norm(shift: float) -> None:
    """Against float64, the fused layer's float32 error is within 2x that of the modules,
    also for inputs far from zero mean (where a variance from raw moments loses digits)."""
    linear, norm = layer_pair(32, 32, 0.1)
    g = torch.Generator().manual_seed(2)
    x0 = F.gelu(0.3 * torch.randn(20000, 32, generator=g) + shift)
    upstream = torch.randn(20000, 32, generator=g)
    truth = run_layer(modules, linear, norm, x0, upstream, torch.float64)
    errors = {}
    for name, layer in (("modules", modules), ("fused", _linear_batch_norm)):
        result = run_layer(layer, linear, norm, x0, upstream)
        errors[name] = {
            key: float((result[key] - truth[key]).abs().max() / truth[key].abs().max())
            for key in ("out", "x", "weight", "gamma", "beta")
        }
    for key, error in errors["fused"].items():
        assert error <= max(2 * errors["modules"][key], 1e-6), (key, errors)


def randomised_part(name: str) -> ParticleTransformer:
    torch.manual_seed(0)
    model = build_model(name, DIMS, 2)
    assert isinstance(model, ParticleTransformer)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.train()


def module_path(self: PairEmbedding, fts: Tensor) -> Tensor:
    """The pair embedding in training before the fused layers: the modules."""
    return self.embed(fts)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["part-lite", "part"])
def test_training_step_equals_module_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loss, every parameter's gradient and every buffer after one training forward equal
    those of the module path (dropout masks drawn from the same seed)."""
    fused = randomised_part(name)
    reference = copy.deepcopy(fused)
    batch = pad(make_batch(8, 20, seed=5), 3)
    labels = torch.arange(8) % 2

    def step(model: ParticleTransformer) -> Tensor:
        torch.manual_seed(7)
        loss = F.cross_entropy(model(*inputs_for(model, batch)), labels)
        loss.backward()
        return loss.detach()

    loss = step(fused)
    with monkeypatch.context() as patch:
        patch.setattr(PairEmbedding, "_train_embed", module_path)
        expected_loss = step(reference)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-6)
    expected = dict(reference.named_parameters())
    for key, p in fused.named_parameters():
        want = expected[key].grad
        assert p.grad is not None, key
        assert want is not None, key
        # float32 sums over all pairs, whose ln m^2 has outliers (clamped massless pairs):
        # 1e-3 of the tensor's largest gradient; the pair layers' biases have none
        # (BatchNorm cancels them: 0 here, float noise there), so at least 2e-5
        atol = max(1e-3 * float(want.abs().max()), 2e-5)
        torch.testing.assert_close(p.grad, want, rtol=1e-4, atol=atol, msg=key)
    buffers = dict(reference.named_buffers())
    for key, b in fused.named_buffers():
        torch.testing.assert_close(b, buffers[key], rtol=1e-5, atol=1e-6, msg=key)


def test_training_runs_batch_norm_only_on_narrow_tensors() -> None:
    """The fused layers replace the BatchNorms of the wide pair layers: left are the
    particle embedding's input norm, the pair features' norm and the last (per-head) pair
    layer's; evaluation still runs every BatchNorm module."""
    model = randomised_part("part-lite")
    inputs = inputs_for(model, make_batch(4, 16, seed=4))

    def batch_norm_calls() -> int:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(*inputs)
        calls = {event.key: event.count for event in prof.key_averages()}
        return calls.get("aten::native_batch_norm", 0) + calls.get(
            "aten::_native_batch_norm_legit", 0
        )

    assert batch_norm_calls() == 3
    model.eval()
    assert batch_norm_calls() == 5


def test_benchmark_times_both_paths_on_the_same_model() -> None:
    """benchmarks/train_speed.py's ``fused_pair`` part (tiny jets): both paths run, their
    losses agree, and the rates and limit fractions are consistent."""
    sys.path.insert(0, str(ROOT / "benchmarks"))  # for its ``_common``
    spec = importlib.util.spec_from_file_location(
        "train_speed", ROOT / "benchmarks" / "train_speed.py"
    )
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.fused_pair(4, reps=2, steps=1, limit=100.0)
    assert result["max_abs_loss_diff"] < 1e-5
    for key in ("fused", "modules"):
        rates = result[key]["all_jets_per_s"]
        assert len(rates) == 2
        assert min(rates) > 0
        fraction = result["gflop_per_jet"] * result[key]["jets_per_s"]["median"] / 100.0
        assert result[key]["limit_fraction"] == pytest.approx(fraction)
    ratio = result["fused"]["jets_per_s"]["best"] / result["modules"]["jets_per_s"]["best"]
    assert result["speed_up"]["best"] == pytest.approx(ratio)
