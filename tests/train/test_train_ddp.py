"""Data-parallel training: two gloo processes on the CPU train and end with equal weights."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from train_helpers import PARTICLE_DATA, ddp_worker, write_experiment

from heptagon.train import load_run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_gloo_two_processes(top_qcd_sample: Path, tmp_path: Path) -> None:
    experiment = write_experiment(
        tmp_path / "pfn.yaml",
        {
            "data": PARTICLE_DATA,
            "model": {"name": "pfn", "options": {"phi_sizes": [16, 16], "f_sizes": [16]}},
            "train": {"epochs": 2, "batch_size": 32, "lr": 3e-3, "progress": False},
        },
    )
    mp.spawn(
        ddp_worker,
        args=(2, free_port(), experiment, top_qcd_sample, tmp_path),
        nprocs=2,
        join=True,
    )
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name, tensor in rank0.items():
        torch.testing.assert_close(rank1[name], tensor, rtol=0, atol=0, msg=name)
    run = load_run(tmp_path / "run")  # written by rank 0 alone
    for name, tensor in run.model.state_dict().items():
        if name in rank0:  # the best weights: an earlier or the final step
            assert tensor.shape == rank0[name].shape
    lines = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    history = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in history] == [1, 2]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["val_auc"] > 0.7
    # jets_seen counts both processes' jets (one alone has about half of the ~413)
    assert history[0]["jets_seen"] > 300
    assert history[-1]["jets_seen"] == 2 * history[0]["jets_seen"]
