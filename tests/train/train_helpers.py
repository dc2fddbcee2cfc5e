"""Helpers of the train tests (a module, so that spawned DDP workers can import them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import yaml

from heptagon.train import train

#: a small particle-level top-tagging data config (short padding, for speed)
PARTICLE_DATA: dict[str, Any] = {
    "inputs": {
        "pf_points": {"length": 40, "vars": ["part_deta", "part_dphi"]},
        "pf_features": {
            "length": 40,
            "vars": [
                ["part_deta", None],
                ["part_dphi", None],
                ["part_pt_log", 1.7, 0.7],
                ["part_logptrel", -4.7, 0.7],
                ["part_deltaR", 0.2, 4.0],
            ],
        },
    },
    "labels": ["label_QCD", "label_Tbqq"],
}

#: a tiny ParticleNet-Lite (kNN, BatchNorm and dropout: every kind of state resume must keep)
TINY_PARTICLENET = {
    "name": "particlenet-lite",
    "options": {"conv_params": [[4, [16, 16]]], "fc_params": [[32, 0.1]]},
}


def write_experiment(path: Path, experiment: dict[str, Any]) -> Path:
    """Write ``experiment`` as YAML at ``path``; returns the path."""
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return path


def ddp_worker(rank: int, world: int, port: int, experiment: Path, data: Path, out: Path) -> None:
    """One process of a gloo DDP job: train, then save the final weights per rank."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    summary = train(experiment, data, out / "run")
    assert isinstance(summary.model, torch.nn.Module)
    torch.save(summary.model.state_dict(), out / f"rank{rank}.pt")
