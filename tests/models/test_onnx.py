"""Every torch model exports with the legacy exporter at opset 17, with dynamic batch and
particle axes, and ONNX Runtime agrees with PyTorch on padded inputs (including a jet
without particles)."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import pytest
import torch
from models_helpers import DIMS, MASK_OF, TORCH_MODELS, inputs_for, make_batch, pad, small_model

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
    names = list(model.input_names)
    axes = {n: {0: "batch", 2: MASK_OF[n]} if n in MASK_OF else {0: "batch"} for n in names}
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        inputs_for(model, make_batch(3, 6, seed=1)),
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=names,
        output_names=["output"],
        dynamic_axes={**axes, "output": {0: "batch"}},
    )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    # other batch size and number of slots than at export, extra padding, an empty jet
    batch = pad(make_batch(5, 11, seed=2, empty_jet=True), 3)
    with torch.no_grad():
        expected = model(*inputs_for(model, batch)).numpy()
    (got,) = session.run(None, {n: batch[n].numpy() for n in names})
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
