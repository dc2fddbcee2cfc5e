"""hls4ml conversion and bit-accurate emulation (compiled with g++), resource estimates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from heptagon.apps.trigger.compression import FixedPoint, LayerPrecision, quantize_model
from heptagon.apps.trigger.hls import compiler_available, convert, emulate, resource_estimate
from heptagon.apps.trigger.loop import fit
from heptagon.models import build_model

needs_gpp = pytest.mark.skipif(
    not compiler_available(), reason="g++ is not on the PATH: the hls4ml emulation cannot compile"
)


def _data(n: int, shape: tuple[int, ...], classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=gen)
    return x, x.reshape(n, -1)[:, :classes].argmax(1)


@needs_gpp
def test_emulation_of_a_qat_mlp_is_bit_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x, y = _data(300, (16,), 5)
    model = build_model("mlp", {"jet_features": 16}, 5, hidden=(8,))
    q = quantize_model(model, LayerPrecision.uniform(8, 3), input_type=FixedPoint(10, 4))
    fit(q, [x], y, epochs=3)
    hls_model = convert(q.net, (16,), tmp_path / "mlp")
    out = emulate(hls_model, x.numpy())
    with torch.no_grad():
        ref = q(x).numpy()
    assert out.shape == (300, 5)
    np.testing.assert_array_equal(out, ref)  # the torch fixed-point pass is the firmware's
    assert (out != 0).any()


@needs_gpp
@pytest.mark.slow
def test_emulation_of_cnn1d_float_and_qat(tmp_path: Path) -> None:
    torch.manual_seed(0)
    shape = (4, 10)
    x, y = _data(200, shape, 3)
    model = build_model(
        "cnn1d", {"pf_features": 4, "pf_mask": 1}, 3, n_constituents=10, channels=(8, 8), hidden=16
    )
    mask = torch.ones(len(x), 1, 10)
    fit(model, [x, mask], y, epochs=3)
    with torch.no_grad():
        ref = model.net(x).numpy()
    out = emulate(convert(model.net, shape, tmp_path / "float"), x.numpy())
    assert np.abs(out - ref).max() < 0.05  # ap_fixed<16,6> against float
    assert (out.argmax(1) == ref.argmax(1)).mean() > 0.95
    q = quantize_model(model, LayerPrecision.uniform(10, 4), input_type=FixedPoint(10, 4))
    with torch.no_grad():
        ref_q = q.net(x).numpy()
    np.testing.assert_array_equal(
        emulate(convert(q.net, shape, tmp_path / "qat"), x.numpy()), ref_q
    )


def test_resource_estimate_counts_pruned_multiplications() -> None:
    net = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(15, 4))
    with torch.no_grad():
        net[3].weight[:, :5] = 0.0  # 20 of 60 weights pruned
    q = quantize_model(net, LayerPrecision.uniform(6, 2), input_type=FixedPoint(8, 3))
    conv, dense = resource_estimate(q, (2, 5))
    assert conv.multiplications == 2 * 3 * 3 * 5  # every weight, at 5 positions
    assert (conv.weight_bits, conv.input_bits) == (6, 8)
    assert conv.bit_operations == pytest.approx(5 * 3 * 6 * (8 * 6 + 8 + 6 + np.log2(6)))
    assert dense.multiplications == 40
    assert dense.input_bits == 6  # the conv's result type
    f_p = 20 / 60
    assert dense.bit_operations == pytest.approx(4 * 15 * ((1 - f_p) * 36 + 12 + np.log2(15)))
    float_conv, _ = resource_estimate(net, (2, 5))
    assert float_conv.bit_operations > conv.bit_operations
