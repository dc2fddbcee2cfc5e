"""The experiment schema: --set overrides and clear errors naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from train_helpers import PARTICLE_DATA, write_experiment

from heptagon.errors import ConfigError
from heptagon.train import load_experiment, train
from heptagon.train.losses import FocalSpec

CONFIGS = Path(__file__).parents[2] / "configs"


def experiment(tmp_path: Path, **sections: Any) -> Path:
    content = {"data": PARTICLE_DATA, "model": {"name": "pfn"}, **sections}
    return write_experiment(tmp_path / "experiment.yaml", content)


def test_defaults_and_overrides_are_coerced(tmp_path: Path) -> None:
    path = experiment(tmp_path)
    config = load_experiment(
        path,
        [
            "train.lr=1e-3",  # YAML reads "1e-3" as text: the schema makes it a float
            "train.val_every=100",
            "train.loss={name: focal, gamma: 3}",
            "model.options.phi_sizes=[8, 8]",
            "data.inputs.pf_features.length=64",
        ],
    )
    assert config.train.lr == pytest.approx(1e-3)
    assert config.train.val_every == 100
    assert config.train.loss == FocalSpec(name="focal", gamma=3.0)
    assert config.model.options == {"phi_sizes": [8, 8]}
    assert config.data.inputs["pf_features"].length == 64
    assert config.split.fractions == (0.7, 0.15, 0.15)
    assert config.train.schedule == "cosine"


def test_data_path_is_relative_to_the_experiment() -> None:
    config = load_experiment(CONFIGS / "top_pfn.yaml")
    assert set(config.data.inputs) == {"pf_points", "pf_features", "pf_vectors"}


@pytest.mark.parametrize(
    ("sections", "overrides", "key", "message"),
    [
        ({"train": {"lrr": 1}}, [], "train.lrr", "unknown key"),
        ({"bogus": 1}, [], "bogus", "unknown key"),
        ({}, ["train.lr=abc"], "train.lr", "valid number"),
        ({}, ["train.lr=-1"], "train.lr", "greater than 0"),
        ({}, ["train.val_every=often"], "train.val_every", "epoch"),
        ({}, ["train.loss=hinge"], "train.loss", "hinge"),
        ({}, ["train.loss.gamma=2"], "train.loss.gamma", "unknown key"),
        ({}, ["train.task=regression"], "train", "not a regression loss"),
        ({}, ["train.lr"], "--set", "key=value"),
        ({}, ["model.name.x=1"], "model.name", "not a mapping"),
        ({}, ["split.train=0.9"], "split", "must be 1"),
        ({}, ["data.inputs.pf_features.lenght=3"], "data.inputs.pf_features.lenght", "unknown"),
        ({}, ["data.selection=jet_pt >"], "data.selection", "syntax"),
        ({"data": "no/such.yaml"}, [], "data", "no such file"),
    ],
)
def test_bad_experiment_names_the_key(
    tmp_path: Path, sections: dict[str, Any], overrides: list[str], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_experiment(experiment(tmp_path, **sections), overrides)
    assert err.value.key == key


@pytest.mark.parametrize(
    ("model", "key", "message"),
    [
        ({"name": "particlenet-huge"}, "model.name", "available models"),
        ({"name": "mlp"}, "data.inputs.jet_features", "needs input group 'jet_features'"),
        ({"name": "part-lite"}, "data.inputs.pf_vectors", "needs input group 'pf_vectors'"),
        ({"name": "pfn", "options": {"width": 3}}, "model.options.width", "no option"),
    ],
)
def test_bad_model_names_the_key(
    tmp_path: Path, top_qcd_sample: Path, model: dict[str, Any], key: str, message: str
) -> None:
    path = write_experiment(tmp_path / "e.yaml", {"data": PARTICLE_DATA, "model": model})
    with pytest.raises(ConfigError, match=message) as err:
        train(path, top_qcd_sample, tmp_path / "run")
    assert err.value.key == key
    assert not (tmp_path / "run").exists()  # nothing written


def test_labels_must_fit_the_task(tmp_path: Path) -> None:
    data = {**PARTICLE_DATA, "labels": {"type": "custom", "value": {"pt": "jet_pt"}}}
    path = write_experiment(tmp_path / "e.yaml", {"data": data, "model": {"name": "pfn"}})
    with pytest.raises(ConfigError, match="regression targets"):
        load_experiment(path)
    config = load_experiment(path, ["train.task=regression", "train.loss=mse"])
    assert config.train.loss.name == "mse"
