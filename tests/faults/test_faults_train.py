"""Fault injection into ``heptagon train`` and the stages that load its checkpoints (issue
15, items 6, 7, 9): a bad input leaves no run dir behind, an interrupt keeps the last
checkpoint and ``--resume`` continues, and a corrupt checkpoint or BDT model is one line
naming the file (never advice to unpickle it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from faults_helpers import assert_user_error, heptagon, no_temp_files, without_log

from heptagon.train import train

CONFIGS = Path(__file__).parents[2] / "configs"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dense network on the high-level top-tagging features (420 training jets of
    the shared sample: 14 steps an epoch, a checkpoint at each epoch end)."""
    path = tmp_path_factory.mktemp("experiment") / "mlp.yaml"
    experiment = {
        "data": str(CONFIGS / "data" / "top_jet.yaml"),
        "model": {"name": "mlp", "options": {"hidden": [16]}},
        "train": {"epochs": 2, "batch_size": 32, "progress": False},
    }
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def trained(
    experiment: Path, top_qcd_sample: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A finished run of ``experiment`` (in-process: fast)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train(experiment, top_qcd_sample, run)
    return run


def test_missing_branch_leaves_no_run_dir_and_the_rerun_trains(
    experiment: Path, top_qcd_sample: Path, tmp_path: Path
) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    shards = sorted((top_qcd_sample / "shards").glob("*.parquet"))
    for shard in shards:
        pq.write_table(pq.read_table(shard).drop(["jet_tau4"]), data / shard.name)
    res = heptagon("train", str(experiment), "--data", str(data), "--out", str(run))
    assert_user_error(res, "jet_tau4", str(data))
    assert not run.exists()

    for shard in shards:  # the data fixed: the same command trains
        shutil.copy(shard, data / shard.name)
    res = heptagon("train", str(experiment), "--data", str(data), "--out", str(run))
    assert res.returncode == 0, res.stderr
    assert (run / "checkpoints" / "best.pt").is_file()


def test_interrupted_train_keeps_the_last_checkpoint_and_resumes(
    experiment: Path, top_qcd_sample: Path, tmp_path: Path
) -> None:
    long = tmp_path / "long.yaml"
    config = yaml.safe_load(experiment.read_text())
    config["train"]["epochs"] = 200
    long.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    args = ["train", str(long), "--data", str(top_qcd_sample), "--out", str(run)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "heptagon", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.pt").exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, log = proc.communicate(timeout=120)
    assert "heptagon.train: epoch 1/200 " in log, log  # last.pt is written at an epoch end
    err = without_log(log)
    assert proc.returncode == 130, log
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("heptagon: interrupted: the last checkpoint (epoch "), err
    assert f"is in {run}; run the same command with --resume" in err, err
    epoch = int(err.split("(epoch ")[1].split(",")[0])
    assert 1 <= epoch < 200
    no_temp_files(run)

    res = heptagon(*args, "--resume")
    assert res.returncode == 0, res.stderr
    assert "200 epochs" in res.stdout


@pytest.mark.parametrize(
    "damage", ["random-bytes", "truncated", "foreign-dict"], ids=lambda d: str(d)
)
def test_corrupt_checkpoint_for_resume_is_one_line_naming_it(
    damage: str, experiment: Path, top_qcd_sample: Path, trained: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    last = run / "checkpoints" / "last.pt"
    if damage == "random-bytes":
        last.write_bytes(os.urandom(4096))
    elif damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    else:
        torch.save({"weights": torch.zeros(3)}, last)
    res = heptagon(
        "train", str(experiment), "--data", str(top_qcd_sample), "--out", str(run), "--resume"
    )
    err = assert_user_error(res, str(last))
    assert "weights_only" not in err


@pytest.mark.parametrize("stage", ["evaluate", "export"])
def test_truncated_best_weights_are_one_line_naming_them(
    stage: str, trained: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:100])
    err = assert_user_error(heptagon(stage, str(run)), str(best))
    assert "weights_only" not in err
    assert not (run / "eval").exists()
    assert not (run / "model.onnx").exists()


def test_corrupt_bdt_model_is_one_line_naming_it(top_qcd_sample: Path, tmp_path: Path) -> None:
    run = tmp_path / "bdt"
    train(
        CONFIGS / "top_bdt.yaml",
        top_qcd_sample,
        run,
        overrides=["model.options.n_estimators=5", "model.options.n_jobs=1"],
    )
    best = run / "checkpoints" / "best.json"
    best.write_text(best.read_text()[:200])
    assert_user_error(heptagon("evaluate", str(run)), str(best), "XGBoost")
