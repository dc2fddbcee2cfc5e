"""A training run end to end: the run dir's artifacts, learning, load_run, the BDT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from heptagon.data import JetDataset
from heptagon.errors import ConfigError, Interrupted
from heptagon.train import RunConfig, load_run, train
from heptagon.train.trainer import Trainer

HISTORY_KEYS = {
    "epoch",
    "step",
    "jets_seen",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "val_auc",
    "lr",
    "jets_per_s",
    "wall_s",
}
MODEL_KEYS = {"name", "options", "input_dims", "input_names", "num_classes", "class_names", "task"}


def read_history(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_run_dir_artifacts_and_learning(
    mlp_experiment: Path, top_qcd_sample: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    summary = train(mlp_experiment, top_qcd_sample, run, overrides=["train.val_every=7"])

    for name in ("config.yaml", "model.json", "preprocess.json", "history.jsonl"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.pt").is_file()
    assert (run / "checkpoints" / "best.pt").is_file()
    assert not list(run.rglob("*.tmp"))

    config = RunConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    assert config.data.inputs["jet_features"].vars[0].name == "jet_sdmass"  # inline
    assert config.split.fractions == (0.7, 0.15, 0.15)
    assert "splitmix64" in config.split_rule
    assert config.model.options["hidden"] == [32, 32]
    assert "dropout" in config.model.options  # every option, resolved

    info = json.loads((run / "model.json").read_text())
    assert set(info) >= MODEL_KEYS
    assert info["class_names"] == ["QCD", "Tbqq"]
    assert info["input_names"] == ["jet_features"]
    assert info["input_dims"] == {"jet_features": 6}

    history = read_history(run)
    assert history == summary.history
    assert all(set(record) == HISTORY_KEYS for record in history)
    steps = [r["step"] for r in history]
    assert steps == sorted(steps)
    assert steps[0] == 7
    assert history[-1]["step"] == summary.steps
    assert history[-1]["val_auc"] > 0.85
    assert summary.best_val_loss == min(r["val_loss"] for r in history)

    loaded = load_run(run)
    assert isinstance(loaded.model, torch.nn.Module)
    assert not loaded.model.training
    assert loaded.class_names == ("QCD", "Tbqq")
    val = JetDataset(
        top_qcd_sample, loaded.config.data, loaded.preprocess, split="val", shuffle=False
    )
    batch = next(iter(val))
    with torch.no_grad():
        probs = torch.softmax(loaded.model(batch.tensors()["jet_features"]), dim=1)
    assert batch.label is not None
    top = probs[:, 1].numpy()
    label = batch.label.numpy()
    assert top[label == 1].mean() > top[label == 0].mean() + 0.3


def test_event_weights_reach_the_loss(
    mlp_experiment: Path, top_qcd_sample: Path, tmp_path: Path
) -> None:
    """QCD jets with zero weight: the model only ever sees tops and calls everything top."""
    run = tmp_path / "run"
    overrides = [
        "data.weights.use_precomputed_weights=true",
        "data.weights.weight_branches=[label_Tbqq]",
    ]
    summary = train(mlp_experiment, top_qcd_sample, run, overrides=overrides)
    assert summary.history[-1]["val_auc"] is None  # undefined without background weight
    loaded = load_run(run)
    val = JetDataset(
        top_qcd_sample, loaded.config.data, loaded.preprocess, split="val", shuffle=False
    )
    batch = next(iter(val))
    assert isinstance(loaded.model, torch.nn.Module)
    with torch.no_grad():
        probs = torch.softmax(loaded.model(batch.tensors()["jet_features"]), dim=1)
    assert batch.label is not None
    qcd = batch.label.numpy() == 0
    assert probs[qcd, 1].mean() > 0.9


def test_early_stopping(mlp_experiment: Path, top_qcd_sample: Path, tmp_path: Path) -> None:
    overrides = ["train.lr=1.0", "train.val_every=1", "train.patience=2", "train.epochs=50"]
    summary = train(mlp_experiment, top_qcd_sample, tmp_path / "run", overrides=overrides)
    assert summary.stopped_early
    assert summary.epochs < 50
    best = int(np.argmin([r["val_loss"] for r in summary.history]))
    assert len(summary.history) == best + 1 + 2  # the best, then two without improvement


def test_bdt_trains_through_the_same_entry(top_qcd_sample: Path, tmp_path: Path) -> None:
    configs = Path(__file__).parents[2] / "configs"
    run = tmp_path / "run"
    summary = train(
        configs / "top_bdt.yaml",
        top_qcd_sample,
        run,
        overrides=["model.options.n_estimators=30", "model.options.n_jobs=1"],
    )
    assert (run / "checkpoints" / "best.json").is_file()
    history = read_history(run)
    assert len(history) == 1
    assert set(history[0]) == HISTORY_KEYS
    assert history[0]["val_auc"] > 0.85
    assert summary.history == history
    loaded = load_run(run)
    assert loaded.info.weights == "checkpoints/best.json"
    x = np.zeros((3, 6), dtype=np.float32)
    assert loaded.model.predict({"jet_features": x}).shape == (3, 2)


def test_an_existing_run_needs_resume(
    mlp_experiment: Path, top_qcd_sample: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    train(mlp_experiment, top_qcd_sample, run, overrides=["train.epochs=1"])
    with pytest.raises(ConfigError, match="--resume"):
        train(mlp_experiment, top_qcd_sample, run, overrides=["train.epochs=1"])
    with pytest.raises(ConfigError) as err:
        train(mlp_experiment, top_qcd_sample, run, overrides=["train.epochs=2"], resume=True)
    assert err.value.key == "train.epochs"
    summary = train(mlp_experiment, top_qcd_sample, run, overrides=["train.epochs=1"], resume=True)
    assert summary.epochs == 1  # already finished: nothing more to do


def test_regression(mlp_experiment: Path, top_qcd_sample: Path, tmp_path: Path) -> None:
    """A regression target (the soft-drop mass from the other features): MSE, no AUC."""
    overrides = [
        "data.labels={type: custom, value: {mass: jet_sdmass / 100}}",
        "data.inputs.jet_features.vars=[jet_tau21, jet_tau32, jet_nparticles, jet_pt]",
        "train.task=regression",
        "train.loss=mse",
    ]
    summary = train(mlp_experiment, top_qcd_sample, tmp_path / "run", overrides=overrides)
    first, last = summary.history[0], summary.history[-1]
    assert last["val_accuracy"] is None
    assert last["val_auc"] is None
    assert last["val_loss"] < first["train_loss"]
    assert load_run(tmp_path / "run").info.task == "regression"


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError], ids=["ctrl-c", "error"])
def test_a_start_stopped_before_the_first_checkpoint_leaves_nothing(
    failure: type[BaseException],
    mlp_experiment: Path,
    top_qcd_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing to resume: the run dir goes, so that the same command can start again."""

    def stopped(self: Trainer, checkpoint: object = None) -> None:
        self.run.write_history([{"step": 1}])
        raise failure("stopped")

    monkeypatch.setattr(Trainer, "fit", stopped)
    run = tmp_path / "run"
    expected = Interrupted if failure is KeyboardInterrupt else failure
    with pytest.raises(expected) as err:
        train(mlp_experiment, top_qcd_sample, run)
    if failure is KeyboardInterrupt:
        assert "before the first checkpoint: nothing was kept" in str(err.value)
    assert not run.exists()
    monkeypatch.undo()
    assert train(mlp_experiment, top_qcd_sample, run).epochs == 4
