"""ParT-AK4 takes ParT's options from ParT itself (no copy of its constructor): the registry
sees the same names and defaults, passes them through, and refuses unknown ones by name."""

from __future__ import annotations

import pytest
from models_helpers import DIMS

from heptagon.errors import ConfigError
from heptagon.models import build_model, model_options
from heptagon.models.part_ak4 import ParticleTransformerAK4


@pytest.mark.parametrize(("ak4", "part"), [("part-ak4", "part"), ("part-ak4-lite", "part-lite")])
def test_options_and_defaults_are_part_s(ak4: str, part: str) -> None:
    assert model_options(ak4) == model_options(part)
    assert "embed_dims" in model_options(ak4)


def test_options_reach_the_transformer() -> None:
    model = build_model("part-ak4-lite", DIMS, 3, num_heads=2, num_layers=1, fc_params=[(8, 0.0)])
    assert isinstance(model, ParticleTransformerAK4)
    assert len(model.part.blocks) == 1
    assert model.part.pair_embed.heads == 2
    assert model.part.fc[0].out_features == 8


def test_unknown_option_is_named() -> None:
    with pytest.raises(ConfigError, match=r"no option 'heads'.*num_heads") as error:
        build_model("part-ak4", DIMS, 2, heads=4)
    assert error.value.key == "options.heads"
