"""``--resume`` continues to the same weights as an uninterrupted run (shuffling,
bucketing, dropout and BatchNorm included), from inside an epoch and from an epoch end,
reading in the main process or in a (persistent) loader worker."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from train_helpers import PARTICLE_DATA, TINY_PARTICLENET, write_experiment

import heptagon.train.trainer as trainer_module
from heptagon.train import train
from heptagon.train.rundir import load_checkpoint, save_checkpoint


@pytest.fixture(params=[0, 1], ids=["in-process", "one-worker"])
def experiment(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    return write_experiment(
        tmp_path / f"{request.node.callspec.id}.yaml",
        {
            "data": PARTICLE_DATA,
            "model": TINY_PARTICLENET,
            # 420 training jets / 64: 7 steps per epoch; 12 steps end inside epoch 2
            "train": {
                "epochs": 3,
                "max_steps": 12,
                "batch_size": 64,
                "buffer_size": 200,  # several buffers per epoch: bucketing and carry-over
                "checkpoint_every": 4,
                "val_every": 5,
                "warmup_steps": 2,
                "progress": False,
                "num_workers": request.param,
            },
        },
    )


def test_resume_equals_uninterrupted(
    experiment: Path, top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: dict[int, Path] = {}

    def keep_copies(path: Path, state: dict[str, Any]) -> None:
        save_checkpoint(path, state)
        if Path(path).name == "last.pt":
            copy = tmp_path / f"last-{state['state']['step']}.pt"
            shutil.copy(path, copy)
            saved[state["state"]["step"]] = copy

    monkeypatch.setattr(trainer_module, "save_checkpoint", keep_copies)
    full = tmp_path / "full"
    reference = train(experiment, top_qcd_sample, full)
    monkeypatch.undo()
    assert reference.steps == 12
    assert {4, 7, 8, 12} <= set(saved)  # every 4 steps and at the end of epoch 1 (7 steps)

    final = load_checkpoint(full / "checkpoints" / "last.pt")["model"]
    # inside epoch 1 and at its end; with a persistent worker the epoch end is the hard case
    for step in (4, 7) if experiment.stem == "in-process" else (7,):
        interrupted = tmp_path / f"from-{step}"
        shutil.copytree(full, interrupted)
        shutil.copy(saved[step], interrupted / "checkpoints" / "last.pt")
        resumed = train(experiment, top_qcd_sample, interrupted, resume=True)
        assert resumed.steps == 12
        weights = load_checkpoint(interrupted / "checkpoints" / "last.pt")["model"]
        for name, tensor in final.items():
            torch.testing.assert_close(weights[name], tensor, rtol=1e-6, atol=1e-6, msg=name)
        assert resumed.history == [
            {**r, "wall_s": h["wall_s"], "jets_per_s": h["jets_per_s"]}
            for r, h in zip(reference.history, resumed.history, strict=True)
        ]
