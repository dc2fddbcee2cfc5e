"""The registry: names, options and input groups, and the errors for bad requests."""

from __future__ import annotations

import pytest
from models_helpers import DIMS, TORCH_MODELS

from heptagon.errors import ConfigError, ModelError
from heptagon.models import (
    FitPredictModel,
    TorchModel,
    available_models,
    build_model,
    model_options,
)

ALL = {
    "autoencoder",
    "bdt",
    "cnn1d",
    "deepjet",
    "lorentznet",
    "lorentznet-lite",
    "mlp",
    "mlpf",
    "part",
    "part-lite",
    "part-ak4",
    "part-ak4-lite",
    "particlenet",
    "particlenet-lite",
    "pelican",
    "pelican-lite",
    "pfn",
    "vae",
}


def test_every_family_is_registered() -> None:
    assert set(available_models()) == ALL


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'particle-net'.*particlenet-lite"):
        build_model("particle-net", DIMS, 2)


@pytest.mark.parametrize(
    ("name", "group"),
    [("particlenet", "pf_points"), ("part", "pf_vectors"), ("mlp", "jet_features")],
)
def test_missing_input_group(name: str, group: str) -> None:
    dims = {k: v for k, v in DIMS.items() if k != group}
    with pytest.raises(ConfigError, match=f"needs input group '{group}'") as err:
        build_model(name, dims, 2)
    assert err.value.key == f"inputs.{group}"


def test_wrong_group_width() -> None:
    with pytest.raises(ConfigError, match="'pf_vectors' has 3 variables, expected 4"):
        build_model("part", {**DIMS, "pf_vectors": 3}, 2)


def test_sv_features_without_sv_mask() -> None:
    dims = {k: v for k, v in DIMS.items() if k != "sv_mask"}
    with pytest.raises(ConfigError, match="needs input group 'sv_mask'"):
        build_model("deepjet", dims, 2)


def test_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"no option 'kk'.*conv_params") as err:
        build_model("particlenet", DIMS, 2, kk=3)
    assert err.value.key == "options.kk"


@pytest.mark.parametrize(
    ("name", "option", "value"),
    [
        ("particlenet", "conv_params", ((0, (8,)),)),
        ("part", "num_heads", 3),
        ("cnn1d", "kernel_size", 2),
        ("deepjet", "pf_sort_by", 7),
        ("bdt", "learning_rate", 0.0),
    ],
)
def test_bad_option_value(name: str, option: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        build_model(name, DIMS, 2, **{option: value})
    assert err.value.key == f"options.{option}"


@pytest.mark.parametrize("num_classes", [0, -1, 2.0, True])
def test_bad_num_classes(num_classes: object) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        build_model("mlp", DIMS, num_classes)  # type: ignore[arg-type]


def test_variant_defaults_override_the_family() -> None:
    assert model_options("particlenet")["conv_params"][0][0] == 16
    assert model_options("particlenet-lite")["conv_params"][0][0] == 7
    assert model_options("part-lite")["num_heads"] == 4


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_torch_models_declare_their_inputs(name: str) -> None:
    model = build_model(name, DIMS, 3)
    assert isinstance(model, TorchModel)
    cls = type(model)
    assert set(cls.required_inputs) <= set(model.input_names)
    assert set(model.input_names) <= set(cls.required_inputs + cls.optional_inputs)


def test_bdt_follows_the_fit_predict_protocol() -> None:
    model = build_model("bdt", DIMS, 2)
    assert isinstance(model, FitPredictModel)
    assert model.input_names == ("jet_features",)
    with pytest.raises(ModelError, match="not trained"):
        model.predict({"jet_features": DIMS})  # type: ignore[dict-item]
