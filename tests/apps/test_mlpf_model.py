"""The MLPF model: shapes, linear memory of the LSH layers, ONNX export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch.overrides import TorchFunctionMode

from heptagon.apps.mlpf.run import export_mlpf
from heptagon.models import build_model
from heptagon.models.mlpf import MLPF, OUTPUTS

N_FEATURES = 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(**options: Any) -> MLPF:
    model = build_model(
        "mlpf", {"el_features": N_FEATURES, "el_mask": 1}, 6, width=16, bin_size=16, **options
    )
    assert isinstance(model, MLPF)
    return model.eval()


def _inputs(batch: int, n: int, n_real: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, N_FEATURES, n, generator=gen)
    mask = torch.zeros(batch, 1, n)
    mask[:, :, :n_real] = 1
    return x * mask, mask


def test_shapes_and_padding() -> None:
    model = _model()
    x, mask = _inputs(2, 64, 50)
    with torch.no_grad():
        out = model(x, mask)
    assert out.shape == (2, 64, len(OUTPUTS))
    assert torch.all(out[:, 50:] == 0)
    # more padding does not change the real elements' outputs
    x2 = torch.nn.functional.pad(x, (0, 32))
    m2 = torch.nn.functional.pad(mask, (0, 32))
    with torch.no_grad():
        out2 = model(x2, m2)
    assert torch.allclose(out2[:, :50], out[:, :50], atol=1e-5)
    with pytest.raises(ValueError, match="multiple of bin_size"):
        model(x[..., :60], mask[..., :60])


def test_input_scaling() -> None:
    """Scaled inputs equal an unscaled model fed standardised inputs; std 0 counts as 1."""
    model = _model()
    x, mask = _inputs(1, 32, 32)
    mean = torch.linspace(-1, 1, N_FEATURES)
    std = torch.linspace(0, 2, N_FEATURES)
    with torch.no_grad():
        plain = model(x, mask)
        model.set_input_scaling(mean, std)
        scaled = model(x * torch.where(std > 0, std, 1)[:, None] + mean[:, None], mask)
    assert model.feature_std[0] == 1
    assert torch.allclose(scaled, plain, atol=1e-5)
    assert "feature_mean" in model.state_dict()


class _LargestTensor(TorchFunctionMode):
    """Records the largest number of elements of any tensor a torch function returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def _largest(model: MLPF, n: int) -> int:
    x, mask = _inputs(1, n, n)
    with torch.no_grad(), _LargestTensor() as probe:
        model(x, mask)
    return probe.largest


def test_lsh_memory_is_linear_dense_is_quadratic() -> None:
    lsh, dense = _model(), _model(graph="dense")
    small, large = 256, 2048  # 8x the elements
    ratio_lsh = _largest(lsh, large) / _largest(lsh, small)
    ratio_dense = _largest(dense, large) / _largest(dense, small)
    assert ratio_lsh <= 8.5
    assert ratio_dense >= 50


def test_onnx_export_dynamic_elements(tmp_path: Path) -> None:
    model = _model()
    with torch.no_grad():
        model.set_input_scaling(torch.full((N_FEATURES,), 0.5), torch.full((N_FEATURES,), 2.0))
    path = export_mlpf(model, tmp_path / "mlpf.onnx", n_features=N_FEATURES)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n, n_real in ((32, 20), (160, 150)):
        x, mask = _inputs(1, n, n_real, seed=n)
        got = session.run(None, {"el_features": x.numpy(), "el_mask": mask.numpy()})[0]
        with torch.no_grad():
            want = model(x, mask).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
