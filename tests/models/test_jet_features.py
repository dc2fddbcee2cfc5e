"""ParticleNet and ParT with jet-level inputs (``use_jet_features``): the flat group
reaches the score, the rest of the network is the same, and the ONNX export agrees with
PyTorch."""

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


#: model -> its particle inputs, and a dense head so that the jet features' weights are known
MODELS = {
    "particlenet-lite": (("pf_points", "pf_features", "pf_mask"), {"fc_params": [(128, 0.1)]}),
    "part-lite": (("pf_features", "pf_vectors", "pf_mask"), {"fc_params": [(16, 0.0)]}),
}
parametrize = pytest.mark.parametrize("name", MODELS)


def _hybrid(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = small_model(name, use_jet_features=True, **MODELS[name][1])
    return model.eval()


@parametrize
def test_jet_features_are_an_input_and_change_the_score(name: str) -> None:
    model = _hybrid(name)
    assert model.input_names == (*MODELS[name][0], "jet_features")
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


@parametrize
def test_the_option_only_widens_the_head(name: str) -> None:
    head = MODELS[name][1]
    plain = small_model(name, **head)
    hybrid = small_model(name, use_jet_features=True, **head)
    assert "jet_features" not in plain.input_names  # a group the model does not use
    # the first dense layer takes the 6 jet features too: 6 x its width more weights
    width = head["fc_params"][0][0]
    assert n_params(hybrid) - n_params(plain) == DIMS["jet_features"] * width


@parametrize
def test_the_option_needs_the_group(name: str) -> None:
    dims = {k: v for k, v in DIMS.items() if k != "jet_features"}
    with pytest.raises(ConfigError, match="jet_features") as info:
        build_model(name, dims, 2, use_jet_features=True)
    assert info.value.key == "inputs.jet_features"


@parametrize
def test_a_wrong_number_of_inputs_is_refused(name: str) -> None:
    model = _hybrid(name)
    batch = make_batch(2, 4, seed=1)
    with pytest.raises(TypeError, match="jet_features"):
        model(*(batch[g] for g in MODELS[name][0]))


@parametrize
def test_onnx_export_matches_torch(name: str) -> None:
    got, expected = onnx_and_torch(_hybrid(name))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
