"""The ready configs in configs/: each validates and builds its model."""

from __future__ import annotations

from pathlib import Path

import pytest

from heptagon.data.features import FEATURES
from heptagon.generate.jets import SV_FIELDS, TRACK_FIELDS
from heptagon.models import build_model
from heptagon.models.autoencoder import ReconstructionModel
from heptagon.train import input_dims, load_experiment

CONFIGS = Path(__file__).parents[2] / "configs"
EXPERIMENTS = sorted(CONFIGS.glob("*.yaml"))
RAW_BRANCHES = {  # the JetClass schema of docs/design.md
    *(f"part_{n}" for n in ("px", "py", "pz", "energy", "deta", "dphi", "charge")),
    *(f"part_is{n}" for n in ("ChargedHadron", "NeutralHadron", "Photon", "Electron", "Muon")),
    *(f"jet_{n}" for n in ("pt", "eta", "phi", "energy", "nparticles", "sdmass")),
    *(f"jet_tau{i}" for i in range(1, 5)),
    "pnn_mass",  # the parameter column benchmarks/pnn.py writes (configs/pnn_xbb.yaml)
    "part_puppiw",  # generate --pileup (docs/pileup.md; configs/pileup_top_particlenet_lite)
    "part_fromPV",
    *SV_FIELDS,  # the ak4-flavour sample (docs/flavour.md; configs/ak4_*)
    *(f"part_{n}" for n in TRACK_FIELDS),
}


def test_the_ready_set_is_there() -> None:
    names = {p.stem for p in EXPERIMENTS}
    top = {"top_bdt", "top_pfn", "top_particlenet_lite", "top_particlenet", "top_part_lite"}
    assert top | {"top_part", "qg_bdt", "qg_pfn", "qg_particlenet_lite"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_config_validates_and_builds(path: Path) -> None:
    config = load_experiment(path)
    assert config.data.labels is not None
    model = build_model(
        config.model.name,
        input_dims(config.data),
        len(config.data.labels.names),
        **config.model.options,
    )
    if isinstance(model, ReconstructionModel):  # it reconstructs its input
        assert model.n_vars == input_dims(config.data)["jet_features"]
    else:
        assert model.num_classes == len(config.data.labels.names)  # 1 for a regression
    for group in config.data.inputs.values():
        for var in group.vars:
            known = var.name in FEATURES or var.name in RAW_BRANCHES
            assert known or var.name in config.data.new_variables, var.name
