"""FPGA-style emulation with hls4ml: convert a small dense or 1D-CNN model and run the
bit-accurate C++ emulation of its firmware (compiled with g++; no vendor tools).

The converted network is the model's ``net`` stack (``nn.Sequential`` of ``Linear``,
``Conv1d``, ``ReLU``, ``Flatten``) in PyTorch layout (``(N, C, L)`` for a CNN); it ends at
the logits (a trigger decision takes their argmax, so the softmax table is left out).
Every layer gets explicit ``ap_fixed`` types: a model quantised with
:func:`~heptagon.apps.trigger.compression.quantize_model` keeps its own, so its emulation
reproduces the torch fixed-point forward pass; a float model gets ``default``.

:func:`resource_estimate` counts multiplications and bit operations from the weights and
types: estimates, not synthesis results (no Vivado / Vitis here).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import nn

from heptagon.apps.trigger.compression import (
    FixedPoint,
    LayerPrecision,
    dequantize,
    prunable_layers,
)
from heptagon.errors import ConfigError, ModelError

__all__ = [
    "DEFAULT_PRECISION",
    "LayerResources",
    "compiler_available",
    "convert",
    "emulate",
    "resource_estimate",
]

#: types of a float model's layers (and of its input) in the emulation
DEFAULT_PRECISION = LayerPrecision.uniform(16, 6)


def compiler_available() -> bool:
    """Whether ``g++`` (needed to compile the emulation) is on the PATH."""
    return shutil.which("g++") is not None


def _precisions(net: nn.Module, default: LayerPrecision) -> dict[str, LayerPrecision]:
    return {name: getattr(m, "precision", default) for name, m in prunable_layers(net)}


def _hls_name(name: str, known: dict[str, Any]) -> str:
    for candidate in (name.replace(".", "_"), "_" + name.replace(".", "_")):
        if candidate in known:
            return candidate
    raise ModelError(f"hls4ml has no layer for torch module '{name}' (it has {sorted(known)})")


def convert(
    net: nn.Module,
    input_shape: tuple[int, ...],
    output_dir: str | Path,
    *,
    default: LayerPrecision = DEFAULT_PRECISION,
    reuse_factor: int = 1,
) -> Any:
    """Convert ``net`` (one jet's ``input_shape``, no batch axis) with hls4ml (Vitis
    backend, ``io_parallel``, latency strategy) into ``output_dir`` and compile its C++
    emulation. Returns the compiled ``hls4ml`` model (see :func:`emulate`).

    Raises :class:`ConfigError` when ``g++`` is missing and :class:`ModelError` for a
    layer hls4ml cannot place.
    """
    if not compiler_available():
        raise ConfigError("the hls4ml emulation needs g++ on the PATH", key="compiler")
    try:
        import hls4ml
    except ImportError:
        raise ConfigError(
            "the emulation needs hls4ml: pip install 'heptagon[trigger]'", key="hls4ml"
        ) from None

    precisions = _precisions(net, default)
    plain = dequantize(net).eval()
    first = next(iter(precisions.values()), default)
    with contextlib.redirect_stdout(io.StringIO()):  # hls4ml prints its topology
        config = hls4ml.utils.config_from_pytorch_model(
            plain,
            input_shape,
            granularity="name",
            backend="Vitis",
            default_precision=default.result.hls(),
            default_reuse_factor=reuse_factor,
        )
        layers = config["LayerName"]
        inputs = [k for k in layers if k.startswith("input")]
        layers[inputs[0]]["Precision"]["result"] = (first.input or default.result).hls()
        result = {}
        for name, p in precisions.items():
            key = _hls_name(name, layers)
            layers[key]["Precision"].update(
                weight=p.weight.hls(), bias=p.bias.hls(), result=p.result.hls()
            )
            result[key] = p.result.hls()
        # an activation keeps its input's type (ReLU of a fixed-point value is exact)
        keys = list(layers)
        for before, key in itertools.pairwise(keys):
            if key not in result and before in result and "table" in layers[key]["Precision"]:
                layers[key]["Precision"]["result"] = result[before]
                result[key] = result[before]
        model = hls4ml.converters.convert_from_pytorch_model(
            plain,
            hls_config=config,
            output_dir=str(output_dir),
            backend="Vitis",
            io_type="io_parallel",
        )
        model.compile()
    return model


def emulate(model: Any, x: NDArray[np.floating]) -> NDArray[np.float32]:
    """Outputs ``(n, outputs)`` of the compiled emulation for inputs ``(n, *input_shape)``."""
    out = model.predict(np.ascontiguousarray(x, dtype=np.float32))
    return np.asarray(out, dtype=np.float32).reshape(len(x), -1)


@dataclass(frozen=True)
class LayerResources:
    """Estimated cost of one layer per inference: multiplications by non-zero weights,
    and bit operations ``m n ((1 - f_p) b_a b_w + b_a + b_w + log2 n)`` (Baskin et al.,
    as used in hls4ml's quantisation studies) with ``n`` inputs and ``m`` outputs per
    output position, ``f_p`` the pruned fraction, ``b_a`` / ``b_w`` the input / weight bits."""

    name: str
    multiplications: int
    bit_operations: float
    weight_bits: int
    input_bits: int


def resource_estimate(
    net: nn.Module, input_shape: tuple[int, ...], *, float_bits: int = 32
) -> list[LayerResources]:
    """:class:`LayerResources` of every dense / conv layer of ``net`` for one jet of
    ``input_shape``. Layers without a fixed-point type count as ``float_bits`` wide."""
    out = []
    length = input_shape[-1] if len(input_shape) == 2 else 1
    previous: FixedPoint | None = None
    for name, module in prunable_layers(net):
        p: LayerPrecision | None = getattr(module, "precision", None)
        b_w = p.weight.total_bits if p else float_bits
        src = (p.input if p and p.input else previous) if p else None
        b_a = src.total_bits if src else float_bits
        w = module.weight.detach()
        nonzero = int((w != 0).sum())
        if isinstance(module, nn.Conv1d):
            k, pad = module.kernel_size[0], module.padding
            if isinstance(pad, str):
                raise ModelError(f"layer '{name}': give Conv1d's padding as a number")
            length = (length + 2 * pad[0] - k) // module.stride[0] + 1
            positions, n_in, m = length, module.in_channels * k, module.out_channels
        else:
            positions, n_in, m = 1, module.in_features, module.out_features
        f_p = 1.0 - nonzero / w.numel()
        bops = positions * m * n_in * ((1 - f_p) * b_a * b_w + b_a + b_w + math.log2(n_in))
        out.append(LayerResources(name, nonzero * positions, bops, b_w, b_a))
        previous = p.result if p else None
    return out
