"""Every torch model exports with the legacy exporter at opset 17, with dynamic batch and
particle axes, and ONNX Runtime agrees with PyTorch on padded inputs (including a jet
without particles)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models_helpers import DIMS, TORCH_MODELS, onnx_and_torch, small_model

from heptagon.models import build_model

# the legacy exporter is deprecated (we export with it on purpose: opset 17)
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
    # nn.LSTM's own input-size check compares a traced size (harmless: a fixed width)
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning:torch.nn.modules.rnn"),
    # emitted for every LSTM; DeepJet passes its initial state, and the test below runs
    # another batch size than the export's
    pytest.mark.filterwarnings("ignore:Exporting a model to ONNX with a batch_size:UserWarning"),
]


@pytest.mark.parametrize("name", [*TORCH_MODELS, "particlenet-full", "part-full"])
def test_onnx_export_matches_torch(name: str) -> None:
    torch.manual_seed(0)
    if name.endswith("-full"):
        built = build_model(name.removesuffix("-full"), DIMS, 2)
        assert isinstance(built, torch.nn.Module)
        model = built
    else:
        model = small_model(name)
    model.eval()
    got, expected = onnx_and_torch(model)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
