"""ParticleNet with jet-level inputs (``use_jet_features``): the flat group reaches the
score, the rest of the network is the same, and the ONNX export agrees with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models_helpers import DIMS, inputs_for, make_batch, n_params, onnx_and_torch, small_model

from heptagon.errors import ConfigError
from heptagon.models import build_model

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
]


def _hybrid() -> torch.nn.Module:
    torch.manual_seed(0)
    model = small_model("particlenet-lite", use_jet_features=True)
    return model.eval()


def test_jet_features_are_an_input_and_change_the_score() -> None:
    model = _hybrid()
    assert model.input_names == ("pf_points", "pf_features", "pf_mask", "jet_features")
    batch = make_batch(6, 9, seed=3)
    with torch.no_grad():
        before = model(*inputs_for(model, batch))
        for i in range(DIMS["jet_features"]):
            # one jet feature of one jet changed: that jet's score moves, no other jet's
            changed = {**batch, "jet_features": batch["jet_features"].clone()}
            changed["jet_features"][2, i] += 1.0
            after = model(*inputs_for(model, changed))
            assert not torch.allclose(after[2], before[2]), i
            torch.testing.assert_close(after[[0, 1, 3, 4, 5]], before[[0, 1, 3, 4, 5]])


def test_the_option_only_widens_the_head() -> None:
    plain = small_model("particlenet-lite")
    hybrid = small_model("particlenet-lite", use_jet_features=True)
    assert "jet_features" not in plain.input_names  # a group the model does not use
    # the first dense layer takes the 6 jet features too: 6 x 128 more weights
    assert n_params(hybrid) - n_params(plain) == DIMS["jet_features"] * 128


def test_the_option_needs_the_group() -> None:
    dims = {k: v for k, v in DIMS.items() if k != "jet_features"}
    with pytest.raises(ConfigError, match="jet_features") as info:
        build_model("particlenet-lite", dims, 2, use_jet_features=True)
    assert info.value.key == "inputs.jet_features"


def test_a_wrong_number_of_inputs_is_refused() -> None:
    model = _hybrid()
    batch = make_batch(2, 4, seed=1)
    with pytest.raises(TypeError, match="jet_features"):
        model(batch["pf_points"], batch["pf_features"], batch["pf_mask"])


def test_onnx_export_matches_torch() -> None:
    got, expected = onnx_and_torch(_hybrid())
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
