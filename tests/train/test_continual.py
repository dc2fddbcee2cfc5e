"""Top-ups of a run: ``heptagon train --continue-from RUN [--ewc LAMBDA] [--replay N]``
(:mod:`heptagon.train.continual`) on the tiny cached top-vs-QCD sample."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import PARTICLE_DATA, TINY_PARTICLENET, write_experiment
from typer.testing import CliRunner

from heptagon.artifacts.run import ModelInfo
from heptagon.cli import app, main
from heptagon.data.loader import Batch
from heptagon.errors import ConfigError, DataError
from heptagon.train import train
from heptagon.train.continual import (
    EWC,
    Continual,
    ReplayBatches,
    fisher_batches,
    parent_run,
    replay_table,
)
from heptagon.train.experiment import load_experiment
from heptagon.train.finetune import pretrained_state

runner = CliRunner()


@pytest.fixture(scope="module")
def parent(top_qcd_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ParticleNet-Lite trained for one epoch: the run topped up."""
    root = tmp_path_factory.mktemp("parent")
    experiment = _experiment(root / "exp.yaml")
    train(experiment, top_qcd_sample, root / "run")
    return root / "run"


def _experiment(path: Path, **model_options: object) -> Path:
    model = {**TINY_PARTICLENET, "options": {**TINY_PARTICLENET["options"], **model_options}}
    return write_experiment(
        path,
        {
            "data": PARTICLE_DATA,
            "model": model,
            "train": {"epochs": 1, "batch_size": 64, "lr": 5e-3, "progress": False},
        },
    )


def test_the_ewc_penalty_is_zero_at_the_parent_and_grows_away_from_it(
    parent: Path, tmp_path: Path
) -> None:
    from heptagon.models import build_model

    info = ModelInfo.read(parent / "model.json")
    model = build_model(info.name, info.input_dims, info.num_classes, **info.options)
    _, state = pretrained_state(parent)
    model.load_state_dict(state)
    spec = Continual(parent, ewc=100.0)
    config = load_experiment(_experiment(tmp_path / "exp.yaml"))
    run = parent_run(spec, config, config.model.model_copy(update={"options": info.options}), None)
    ewc = EWC(100.0)
    n = ewc.consolidate_batches(model, fisher_batches(run, run.preprocess, info.input_names))
    assert n >= 3  # the parent's training split (about 420 jets) in batches of 64
    assert all(torch.equal(ewc.anchor[k], state[k]) for k in ewc.anchor)
    assert sum(float(f.sum()) for f in ewc.fisher.values()) > 0
    assert float(ewc.penalty(model).detach()) == 0.0
    direction = {k: torch.randn_like(p) for k, p in model.named_parameters()}
    penalties = []
    for eps in (0.01, 0.02, 0.04):
        with torch.no_grad():
            for k, p in model.named_parameters():
                p.copy_(state[k] + eps * direction[k])
        penalties.append(float(ewc.penalty(model).detach()))
    assert 0 < penalties[0] < penalties[1] < penalties[2]
    assert penalties[1] / penalties[0] == pytest.approx(4.0, rel=1e-3)  # quadratic
    weaker = EWC(1.0)
    weaker.load_state(ewc.state())
    assert float(weaker.penalty(model).detach()) == pytest.approx(penalties[2] / 100, rel=1e-5)


def test_replay_draws_n_jets_of_the_parents_training_split_and_mixes_them_all(
    parent: Path, tmp_path: Path
) -> None:
    info = ModelInfo.read(parent / "model.json")
    config = load_experiment(_experiment(tmp_path / "exp.yaml"))
    run = parent_run(
        Continual(parent, replay=50),
        config,
        config.model.model_copy(update={"options": info.options}),
        None,
    )
    table = replay_table(run, run.preprocess, 50, seed=3)
    assert len(table) == 50
    again = replay_table(run, run.preprocess, 50, seed=3)
    other = replay_table(run, run.preprocess, 50, seed=4)
    assert np.array_equal(table.multiplicity, again.multiplicity)
    assert not np.array_equal(table.multiplicity, other.multiplicity)
    with pytest.raises(ConfigError, match="fewer than 100000"):
        replay_table(run, run.preprocess, 100_000, seed=3)

    replay = ReplayBatches(table, run.preprocess, batch_size=16, fixed_length=False, seed=0)
    assert len(replay) == 4  # 16 + 16 + 16 + 2
    new = [_batch(10, i) for i in range(7)]
    mixed = list(replay.mix(iter(new), epoch=0, expected=7))
    ours = {id(b) for b in new}
    assert [id(b) for b in mixed if id(b) in ours] == [id(b) for b in new]  # in order
    old = [b for b in mixed if id(b) not in ours]
    assert sum(len(b) for b in old) == 50  # every replayed jet once per epoch
    positions = [i for i, b in enumerate(mixed) if id(b) not in ours]
    assert positions[0] > 0  # spread between the new batches
    assert positions[-1] < len(mixed) - 1
    label = torch.cat([b.label for b in old if b.label is not None])
    assert sorted(label.tolist()) == sorted(torch.as_tensor(table.label).tolist())


def _batch(n: int, tag: int) -> Batch:
    return Batch(
        {"x": torch.full((n, 1), float(tag))}, {}, torch.zeros(n, dtype=torch.int64),
        torch.ones(n), {},
    )  # fmt: skip


def test_the_cli_tops_up_from_the_parents_weights_and_records_it(
    parent: Path, top_qcd_sample: Path, tmp_path: Path
) -> None:
    experiment = _experiment(tmp_path / "exp.yaml")
    out = tmp_path / "topup"
    args = ["train", str(experiment), "--data", str(top_qcd_sample), "--out", str(out)]
    res = runner.invoke(
        app,
        [*args, "--continue-from", str(parent), "--ewc", "100", "--replay", "40",
         "--set", "train.lr=1e-9", "--set", "train.weight_decay=0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    info = ModelInfo.read(out / "model.json")
    assert info.parent is not None
    assert Path(info.parent.run) == parent.resolve()
    assert (info.parent.ewc, info.parent.replay) == (100.0, 40)
    assert json.loads((out / "preprocess.json").read_text()) == json.loads(
        (parent / "preprocess.json").read_text()
    )
    # a learning rate of 1e-9: the top-up is still the parent's network
    _, before = pretrained_state(parent)
    _, after = pretrained_state(out)
    for key, value in before.items():
        if value.is_floating_point() and "running" not in key:
            assert torch.allclose(after[key], value, atol=1e-5), key
    # a resumed top-up continues with its own flags only
    again = runner.invoke(app, [*args, "--resume", "--continue-from", str(parent), "--ewc", "100",
                                "--replay", "40", "--set", "train.lr=1e-9",
                                "--set", "train.weight_decay=0"])  # fmt: skip
    assert again.exit_code == 0, again.output
    other = runner.invoke(app, [*args, "--resume", "--continue-from", str(parent), "--ewc", "7",
                                "--replay", "40", "--set", "train.lr=1e-9",
                                "--set", "train.weight_decay=0"])  # fmt: skip
    assert isinstance(other.exception, ConfigError), other.output
    assert other.exception.key == "--continue-from"


def test_a_pfn_tops_up_with_replay(top_qcd_sample: Path, tmp_path: Path) -> None:
    """Another registry model (a PFN, no BatchNorm) through the Python API."""
    experiment = write_experiment(
        tmp_path / "pfn.yaml",
        {
            "data": {"inputs": {"pf_features": PARTICLE_DATA["inputs"]["pf_features"]},
                     "labels": PARTICLE_DATA["labels"]},
            "model": {"name": "pfn", "options": {"phi_sizes": [16], "f_sizes": [16]}},
            "train": {"epochs": 1, "batch_size": 64, "lr": 5e-3, "progress": False},
        },
    )  # fmt: skip
    train(experiment, top_qcd_sample, tmp_path / "parent")
    plain = train(
        experiment,
        top_qcd_sample,
        tmp_path / "ewc",
        continual=Continual(tmp_path / "parent", ewc=10.0),
    )
    mixed = train(
        experiment, top_qcd_sample, tmp_path / "topup",
        continual=Continual(tmp_path / "parent", ewc=10.0, replay=150),
    )  # fmt: skip
    info = ModelInfo.read(tmp_path / "topup" / "model.json")
    assert info.parent is not None
    assert (info.name, info.parent.ewc, info.parent.replay) == ("pfn", 10.0, 150)
    # one epoch: the same new batches, plus the 150 replayed jets in batches of 64
    assert mixed.steps - plain.steps == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--continue-from", "{missing}"], "model.json"),
        (["--ewc", "10"], "--continue-from"),
        (["--continue-from", "{parent}", "--set", "model.options.fc_params=[[16, 0.1]]"],
         "model options"),
        (["--continue-from", "{parent}", "--set", "data.inputs.pf_points.length=30"], "inputs"),
        (["--continue-from", "{parent}", "--load-model-weights", "{parent}"], "drop"),
        (["--continue-from", "{parent}", "--no-strict"], "--no-strict"),
    ],
)  # fmt: skip
def test_bad_top_ups_are_one_line_and_exit_2(
    extra: list[str],
    message: str,
    parent: Path,
    top_qcd_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fill = {"{missing}": str(tmp_path / "gone"), "{parent}": str(parent)}
    experiment = _experiment(tmp_path / "exp.yaml")
    out = tmp_path / "topup"
    argv = ["train", str(experiment), "--data", str(top_qcd_sample), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["heptagon", *argv, *(fill.get(a, a) for a in extra)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2, err
    assert len(err.splitlines()) == 1, err
    assert message in err, err
    assert err.startswith("heptagon: error: "), err
    assert not out.exists()


def test_a_missing_parent_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no model\.json"):
        Continual(tmp_path / "nothing").run_dir()
