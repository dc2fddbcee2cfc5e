"""Model compression for trigger firmware: fixed-point quantisation-aware training,
magnitude pruning and post-training int8 quantisation of an ONNX export.

Fixed point follows hls4ml's ``ap_fixed<W,I,AP_RND,AP_SAT>``: ``W`` bits in total, ``I`` of
them integer bits including the sign, so values are multiples of ``2**-(W-I)`` in
``[-2**(I-1), 2**(I-1) - 2**-(W-I)]``, rounded to the nearest step (halves up) and
saturated at the ends. In training the rounding passes gradients straight through.

A quantised layer (:class:`FixedPointLinear`, :class:`FixedPointConv1d`) rounds its
weights and bias to their types, computes exactly (float32 holds the products of
narrow fixed-point numbers), then rounds the result to the layer's result type, which is
what hls4ml's emulation does with a wide accumulator. ReLU keeps values on the grid.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import prune

from heptagon.errors import ConfigError

__all__ = [
    "FixedPoint",
    "FixedPointConv1d",
    "FixedPointLinear",
    "LayerPrecision",
    "dequantize",
    "finalize_pruning",
    "prunable_layers",
    "prune_magnitude",
    "quantize_int8",
    "quantize_model",
    "sparsity",
]


@dataclass(frozen=True)
class FixedPoint:
    """A signed fixed-point type ``ap_fixed<total_bits, integer_bits>`` (round, saturate)."""

    total_bits: int
    integer_bits: int

    def __post_init__(self) -> None:
        if not 2 <= self.total_bits <= 32 or self.integer_bits > self.total_bits:
            raise ConfigError(
                f"ap_fixed<{self.total_bits},{self.integer_bits}> needs 2 <= W <= 32 and I <= W",
                key="precision",
            )

    @property
    def step(self) -> float:
        """The value of the least significant bit, ``2**-(W-I)``."""
        return 2.0 ** (self.integer_bits - self.total_bits)

    @property
    def low(self) -> float:
        """The most negative value, ``-2**(I-1)``."""
        return -(2.0 ** (self.integer_bits - 1))

    @property
    def high(self) -> float:
        """The largest value, ``2**(I-1) - step``."""
        return 2.0 ** (self.integer_bits - 1) - self.step

    def quantize(self, x: Tensor) -> Tensor:
        """``x`` rounded to the grid (halves up) and saturated; gradients pass straight
        through (the straight-through estimator)."""
        q = torch.clamp(torch.floor(x / self.step + 0.5) * self.step, self.low, self.high)
        return x + (q - x).detach()

    def hls(self) -> str:
        """The hls4ml / Vivado HLS type string."""
        return f"ap_fixed<{self.total_bits},{self.integer_bits},AP_RND,AP_SAT>"


@dataclass(frozen=True)
class LayerPrecision:
    """The fixed-point types of one layer: weights, bias, result (its output), and for the
    first layer of a model the type its input is rounded to (None: left as it comes)."""

    weight: FixedPoint
    bias: FixedPoint
    result: FixedPoint
    input: FixedPoint | None = field(default=None)

    @classmethod
    def uniform(cls, total_bits: int, integer_bits: int) -> LayerPrecision:
        """Weights, bias and result all ``ap_fixed<total_bits, integer_bits>``."""
        t = FixedPoint(total_bits, integer_bits)
        return cls(weight=t, bias=t, result=t)


class FixedPointLinear(nn.Linear):
    """``nn.Linear`` computed in fixed point (see the module docstring)."""

    precision: LayerPrecision

    def forward(self, x: Tensor) -> Tensor:
        """Rounded input (first layer only), weights and bias; rounded result."""
        p = self.precision
        if p.input is not None:
            x = p.input.quantize(x)
        bias = None if self.bias is None else p.bias.quantize(self.bias)
        return p.result.quantize(F.linear(x, p.weight.quantize(self.weight), bias))


class FixedPointConv1d(nn.Conv1d):
    """``nn.Conv1d`` computed in fixed point (see the module docstring)."""

    precision: LayerPrecision

    def forward(self, x: Tensor) -> Tensor:
        """Rounded input (first layer only), weights and bias; rounded result."""
        p = self.precision
        if p.input is not None:
            x = p.input.quantize(x)
        bias = None if self.bias is None else p.bias.quantize(self.bias)
        return p.result.quantize(self._conv_forward(x, p.weight.quantize(self.weight), bias))


_QUANTISED: dict[type, type[nn.Linear] | type[nn.Conv1d]] = {
    nn.Linear: FixedPointLinear,
    nn.Conv1d: FixedPointConv1d,
}


def prunable_layers(model: nn.Module) -> Iterator[tuple[str, nn.Linear | nn.Conv1d]]:
    """The model's dense and 1D-convolution layers (quantised or not), in order."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            yield name, module


def quantize_model(
    model: nn.Module,
    precision: LayerPrecision,
    *,
    per_layer: Mapping[str, LayerPrecision] | None = None,
    input_type: FixedPoint | None = None,
) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` / ``nn.Conv1d`` layers compute in fixed point.

    ``precision`` applies to every layer not named in ``per_layer`` (module names as in
    ``named_modules``); ``input_type`` rounds the input of the first layer. Weights are
    copied, not rounded, so training goes on in float with rounded forward passes (QAT).
    Pruning masks of the original carry over.
    """
    per_layer = dict(per_layer or {})
    layers = [name for name, _ in prunable_layers(model)]
    unknown = set(per_layer) - set(layers)
    if unknown:
        raise ConfigError(
            f"no dense/conv layer named {sorted(unknown)}; layers: {layers}", key="per_layer"
        )
    out = copy.deepcopy(model)
    for i, (name, module) in enumerate(list(prunable_layers(out))):
        p = per_layer.get(name, precision)
        if i == 0 and input_type is not None:
            p = LayerPrecision(p.weight, p.bias, p.result, input_type)
        module.__class__ = _QUANTISED.get(type(module), type(module))
        module.precision = p  # type: ignore[assignment]
    return out


def dequantize(model: nn.Module) -> nn.Module:
    """A plain float copy of a quantised model with its weights and biases rounded to their
    fixed-point types (pruning made permanent): what a converter such as hls4ml reads. The
    rounding of inputs and results is left to the converter's types."""
    out = copy.deepcopy(model)
    finalize_pruning(out)
    with torch.no_grad():
        for _, module in prunable_layers(out):
            p = getattr(module, "precision", None)
            if p is None:
                continue
            module.weight.copy_(p.weight.quantize(module.weight))
            if module.bias is not None:
                module.bias.copy_(p.bias.quantize(module.bias))
            module.__class__ = nn.Linear if isinstance(module, nn.Linear) else nn.Conv1d
            del module.precision
    return out


def sparsity(model: nn.Module) -> float:
    """The fraction of zero weights over the dense / conv layers (biases excluded)."""
    zeros = total = 0
    for _, module in prunable_layers(model):
        w = module.weight
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / max(total, 1)


def prune_magnitude(
    model: nn.Module,
    target: float,
    finetune: Callable[[nn.Module], object],
    *,
    steps: int = 3,
) -> nn.Module:
    """Iterative magnitude pruning, in place: in ``steps`` equal steps of the kept fraction
    (geometric schedule), remove the smallest-magnitude weights of every dense / conv layer
    (``torch.nn.utils.prune``, L1 per layer) and call ``finetune(model)`` after each. After
    the last step every layer has exactly ``round(target * n)`` of its ``n`` weights pruned.

    The masks stay on the model (``weight = weight_orig * weight_mask``), so fine-tuning
    cannot revive a pruned weight; :func:`finalize_pruning` makes them permanent.
    Returns the model.
    """
    if not 0.0 <= target < 1.0:
        raise ConfigError(f"must be in [0, 1), got {target}", key="sparsity")
    if steps < 1:
        raise ConfigError(f"must be >= 1, got {steps}", key="steps")
    for k in range(1, steps + 1):
        for _, module in prunable_layers(model):
            n = module.weight.numel()
            before = round(n * (1.0 - (1.0 - target) ** ((k - 1) / steps)))
            after = round(n * (1.0 - (1.0 - target) ** (k / steps)))
            # an integer ``amount`` counts weights among those still unpruned
            prune.l1_unstructured(module, "weight", amount=after - before)
        finetune(model)
    return model


def finalize_pruning(model: nn.Module) -> nn.Module:
    """Fold pruning masks into the weights (in place); a no-op for unpruned layers."""
    for _, module in prunable_layers(model):
        if prune.is_pruned(module):
            prune.remove(module, "weight")
    return model


def quantize_int8(onnx_model: bytes) -> bytes:
    """Post-training int8 quantisation of an ONNX model with ONNX Runtime's tools: its
    pre-processing (ONNX shape inference, graph optimisation), then the dynamic quantiser
    (int8 weights, activations quantised per batch at run time).

    ONNX Runtime's symbolic shape inference is skipped: it cannot complete on the exports'
    data-dependent shapes (ParticleNet's kNN) nor on ``ai.onnx.ml`` tree ensembles (the
    BDT), and the dynamic quantiser needs only the weights' shapes."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = (Path(tmp) / f"{n}.onnx" for n in ("fp32", "pre", "int8"))
        src.write_bytes(onnx_model)
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        # the quantiser warns on the root logger, with the tensor's type dump, for every
        # tensor it leaves in float (integer indices, kNN distances ...): not news
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(pre, dst, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        return dst.read_bytes()
