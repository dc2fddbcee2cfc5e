"""The MLPF workflow end to end on a tiny ttbar element sample."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from heptagon.apps.mlpf.run import (
    FEATURES,
    Decoding,
    TrainOptions,
    decode,
    element_features,
    evaluate_mlpf,
    load_decoding,
    load_elements,
    load_mlpf,
    predict,
    train_mlpf,
)
from heptagon.errors import ConfigError, DataError
from heptagon.generate.elements import ElementOptions, generate_elements


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread: the cores are shared, and two threads contend badly under load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ttbar_elements(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlpf") / "ttbar"
    generate_elements(
        ElementOptions(sample="ttbar", events=40, seed=3, out=out, shard_size=20),
        show_progress=False,
    )
    return out


def test_features_and_perfect_decoding(ttbar_elements: Path) -> None:
    el = load_elements(ttbar_elements)
    arr = element_features(el)
    assert arr.features.shape == (int(arr.counts.sum()), len(FEATURES))
    assert np.isfinite(arr.features).all()
    # outputs that encode the targets exactly decode into the targets
    t = el.target
    real = t["class"] > 0
    out = np.zeros((arr.counts.sum(), 14), np.float32)
    out[:, 0] = np.where(real, 5.0, -5.0)
    out[real, t["class"][real]] = 5.0
    out[:, 6] = np.log(np.where(real, t["pt"], 1.0) / arr.pt)
    out[:, 7] = np.log(np.where(real, t["energy"], 1.0) / arr.energy)
    out[:, 8] = t["eta"] - arr.eta
    out[:, 9], out[:, 10] = np.sin(t["phi"] - arr.phi), np.cos(t["phi"] - arr.phi)
    out[np.arange(out.shape[0]), 12 + np.sign(t["charge"]).astype(int)] = 5.0
    parts = decode(out, arr)
    assert parts.cls.size == real.sum()
    np.testing.assert_allclose(parts.energy, t["energy"][real], rtol=1e-4)
    np.testing.assert_allclose(parts.charge, t["charge"][real])
    charged = t["charge"][real] != 0
    np.testing.assert_allclose(parts.pt[charged], t["pt"][real][charged], rtol=1e-4)
    # neutral particles are massless
    neutral = ~charged
    np.testing.assert_allclose(
        parts.pt[neutral], parts.energy[neutral] / np.cosh(parts.eta[neutral]), rtol=1e-6
    )
    # a particle probability threshold above the outputs' keeps nothing
    assert decode(out, arr, Decoding(threshold=0.999)).cls.size == 0
    # with track_momentum the tracks' regression outputs are not used
    noisy = out.copy()
    noisy[:, 6:11] += 0.1
    tracks = decode(noisy, arr, Decoding(track_momentum=True))
    from_track = arr.features[:, 0][real] > 0
    np.testing.assert_allclose(tracks.pt[from_track], arr.pt[real][from_track])
    np.testing.assert_allclose(tracks.energy[from_track], arr.energy[real][from_track])


def test_train_and_evaluate(ttbar_elements: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_mlpf(
        TrainOptions(
            data=ttbar_elements, out=run, epochs=3, width=16, n_layers=1, bin_size=32, lr=3e-3
        )
    )
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(np.isfinite(h["val_loss"]) for h in history)
    decoding = load_decoding(run)
    assert 0.2 <= decoding.threshold <= 0.8
    assert decoding.track_momentum
    # the inputs are standardised on the training elements
    model = load_mlpf(run)
    arr = element_features(load_elements(ttbar_elements))
    assert model.feature_std.min() > 0
    z = (torch.from_numpy(arr.features) - model.feature_mean) / model.feature_std
    assert abs(float(z.mean())) < 0.5
    assert predict(model, arr).shape == (arr.features.shape[0], 14)
    metrics = evaluate_mlpf(run, ttbar_elements)
    assert json.loads((run / "eval" / "metrics.json").read_text())["events"] == 40
    for algo in ("mlpf", "pf", "truth"):
        assert set(metrics[algo]) == {"particles", "jets", "met"}
    assert metrics["truth"]["particles"]["per_class"]["charged_hadron"]["efficiency"] == 1.0
    n_elements = sum(sum(row) for row in metrics["mlpf"]["particles"]["confusion"])
    assert n_elements == metrics["events"] * metrics["mean_elements"]


def test_fixed_threshold_and_options(ttbar_elements: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    opts = TrainOptions(
        data=ttbar_elements,
        out=run,
        epochs=1,
        width=8,
        n_layers=1,
        bin_size=32,
        threshold=0.4,
        val_fraction=0,
        energy_loss="log",
        lr_schedule="constant",
        class_weight_power=0,
        regression_pt_power=0,
        track_momentum=False,
    )
    train_mlpf(opts)
    assert load_decoding(run) == Decoding(threshold=0.4, track_momentum=False)
    assert "val_loss" not in json.loads((run / "history.jsonl").read_text().splitlines()[0])
    with pytest.raises(ValueError, match="energy_loss"):
        TrainOptions(data=ttbar_elements, out=run, energy_loss="mse")  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_for_without_it(ttbar_elements: Path, tmp_path: Path) -> None:
    opts = TrainOptions(data=ttbar_elements, out=tmp_path / "run", device="cuda")
    with pytest.raises(ConfigError, match="CUDA is not available") as err:
        train_mlpf(opts)
    assert err.value.key == "device"
    assert not (tmp_path / "run").exists()


def test_not_an_element_sample(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "jets", "files": []}))
    with pytest.raises(DataError, match="not an element sample"):
        load_elements(tmp_path)


def test_cli_generate_and_bad_option(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from heptagon.cli import app

    runner = CliRunner()
    out = tmp_path / "gun"
    args = ["mlpf", "generate", "gun", "--events", "20", "--out", str(out), "--shard-size", "20"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").exists()
    bad = runner.invoke(app, ["mlpf", "generate", "zz", "--events", "5", "--out", str(out)])
    assert isinstance(bad.exception, ConfigError)
    assert bad.exception.key == "sample"
