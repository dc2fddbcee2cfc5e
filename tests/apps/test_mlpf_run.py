"""The MLPF workflow end to end on a tiny ttbar element sample."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.multiprocessing as mp
from onnx import numpy_helper

from heptagon.apps.mlpf.run import (
    EXPORT_TOLERANCE,
    FEATURES,
    Decoding,
    batches_of,
    decode,
    element_features,
    evaluate_mlpf,
    export_mlpf,
    load_decoding,
    load_elements,
    load_mlpf,
    predict,
)
from heptagon.apps.mlpf.training import MLPFTask, MLPFTrainOptions, train_mlpf
from heptagon.errors import ConfigError, DataError, ExportError, Interrupted
from heptagon.generate.elements import ElementOptions, generate_elements
from heptagon.train.distributed import Distributed
from heptagon.train.rundir import load_checkpoint
from heptagon.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
        MLPFTrainOptions(
            data=ttbar_elements, out=run, epochs=3, width=16, n_layers=1, bin_size=32, lr=3e-3
        )
    )
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(np.isfinite(h["val_loss"]) for h in history)
    # 36 training events a pass (4 of the 40 held out)
    assert [h["events_seen"] for h in history] == [36, 72, 108]
    # model.pt holds the weights of the lowest validation loss (checkpoints/best.pt)
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["val_loss"] == min(h["val_loss"] for h in history)
    saved = load_checkpoint(run / "model.pt")["state"]
    assert all(torch.equal(saved[k], v) for k, v in best["model"].items())
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
    opts = MLPFTrainOptions(
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
    assert json.loads((run / "history.jsonl").read_text().splitlines()[0])["val_loss"] is None
    with pytest.raises(ValueError, match="energy_loss"):
        MLPFTrainOptions(data=ttbar_elements, out=run, energy_loss="mse")  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_for_without_it(ttbar_elements: Path, tmp_path: Path) -> None:
    opts = MLPFTrainOptions(data=ttbar_elements, out=tmp_path / "run", device="cuda")
    with pytest.raises(ConfigError, match="CUDA is not available") as err:
        train_mlpf(opts)
    assert err.value.key == "device"
    assert not (tmp_path / "run").exists()


def test_not_an_element_sample(top_qcd_sample: Path) -> None:
    with pytest.raises(DataError, match="not an element sample"):
        load_elements(top_qcd_sample)


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


# ------------------------------------------------------------ the trainer: resume, stopping

TINY = ["--epochs", "3", "--width", "8", "--layers", "1", "--bin-size", "16", "--device", "cpu"]


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return dict(load_checkpoint(run / "model.pt")["state"])


def _kill_at_batch(monkeypatch: pytest.MonkeyPatch, batch: int) -> None:
    """Make training raise KeyboardInterrupt (Ctrl-C, as a SIGINT delivers it) when it asks
    for its ``batch``-th training batch (counted over epochs, from 1)."""
    real = MLPFTask.train_batches
    count = 0

    def dying(self: MLPFTask, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        nonlocal count
        for b in real(self, epoch):
            count += 1
            if count == batch:
                raise KeyboardInterrupt
            yield b

    monkeypatch.setattr(MLPFTask, "train_batches", dying)


def test_killed_train_resumes_to_the_same_weights(
    ttbar_elements: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from heptagon.cli import app

    runner = CliRunner()
    data = ["--data", str(ttbar_elements)]
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert runner.invoke(app, ["mlpf", "train", *data, "--out", str(full), *TINY]).exit_code == 0
    # 36 training events / 8: 5 batches an epoch; killed while reading the 2nd batch of
    # epoch 2: the last checkpoint is epoch 1's end
    _kill_at_batch(monkeypatch, 7)
    with pytest.raises(Interrupted, match=r"epoch 1, step 5\) .* with --resume to continue"):
        runner.invoke(app, ["mlpf", "train", *data, "--out", str(killed), *TINY])
    assert not (killed / "model.pt").exists()
    monkeypatch.undo()
    # the same command again refuses to overwrite the run; --resume continues it
    again = runner.invoke(app, ["mlpf", "train", *data, "--out", str(killed), *TINY])
    assert isinstance(again.exception, ConfigError)
    assert again.exception.key == "--out"
    resumed = runner.invoke(app, ["mlpf", "train", *data, "--out", str(killed), *TINY, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    want, got = _final_weights(full), _final_weights(killed)
    assert want.keys() == got.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert load_decoding(killed) == load_decoding(full)
    lines = [
        [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
        for run in (full, killed)
    ]
    keys = ("epoch", "step", "events_seen", "train_loss", "val_loss", "lr")
    assert [[h[k] for k in keys] for h in lines[1]] == [[h[k] for k in keys] for h in lines[0]]


def test_resume_from_inside_an_epoch(
    ttbar_elements: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def opts(out: Path) -> MLPFTrainOptions:
        return MLPFTrainOptions(
            data=ttbar_elements, out=out, epochs=2, width=8, n_layers=1, bin_size=16,
            checkpoint_every=3, device="cpu", progress=False,
        )  # fmt: skip

    train_mlpf(opts(tmp_path / "full"))
    # killed reading batch 8 (epoch 2's 3rd): last.pt is step 6, the 1st batch of epoch 2
    _kill_at_batch(monkeypatch, 8)
    with pytest.raises(Interrupted, match="epoch 1, step 6"):
        train_mlpf(opts(tmp_path / "killed"))
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["state"]
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 1)
    train_mlpf(opts(tmp_path / "killed"), resume=True)
    want, got = _final_weights(tmp_path / "full"), _final_weights(tmp_path / "killed")
    assert all(torch.equal(got[k], want[k]) for k in want)
    # resuming with other options is refused, naming the option
    changed = opts(tmp_path / "killed").model_copy(update={"lr": 1e-2})
    with pytest.raises(ConfigError, match=r"options\.json") as err:
        train_mlpf(changed, resume=True)
    assert err.value.key == "lr"


def test_killed_before_the_first_checkpoint_keeps_nothing(
    ttbar_elements: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    opts = MLPFTrainOptions(
        data=ttbar_elements, out=run, epochs=1, width=8, n_layers=1, bin_size=16,
        device="cpu", progress=False,
    )  # fmt: skip
    _kill_at_batch(monkeypatch, 2)
    with pytest.raises(Interrupted, match="nothing was kept; run the same command again"):
        train_mlpf(opts)
    monkeypatch.undo()
    assert not run.exists()
    train_mlpf(opts)  # the same command, without --resume
    assert (run / "model.pt").is_file()


def test_early_stopping(ttbar_elements: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # a learning rate too small to move a float32 weight: every validation loss equals the
    # first, none improves, and patience 1 stops after the second epoch of five
    opts = MLPFTrainOptions(
        data=ttbar_elements, out=run, epochs=5, width=8, n_layers=1, bin_size=16, lr=1e-12,
        patience=1, device="cpu", progress=False,
    )  # fmt: skip
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("heptagon.train")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        train_mlpf(opts)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    # one log line per epoch
    assert [line.split(" step")[0] for line in lines] == ["epoch 1/5", "epoch 2/5"]
    assert all("val loss" in line and "events/s" in line for line in lines)
    assert history[1]["val_loss"] == history[0]["val_loss"]
    state = load_checkpoint(run / "checkpoints" / "last.pt")["state"]
    assert state["stopped_early"]
    assert state["epoch"] == 2  # epochs completed
    with pytest.raises(ValueError, match="patience needs validation events"):
        MLPFTrainOptions(data=ttbar_elements, out=run, patience=2, val_fraction=0)


# ------------------------------------------------------------------- the checked export


def test_export_is_checked_against_torch(
    ttbar_elements: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    opts = MLPFTrainOptions(
        data=ttbar_elements, out=run, epochs=1, width=8, n_layers=1, bin_size=16,
        val_fraction=0, threshold=0.5, device="cpu", progress=False,
    )  # fmt: skip
    train_mlpf(opts)
    model = load_mlpf(run)
    path = export_mlpf(model, run / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    arr = element_features(load_elements(ttbar_elements))
    want = predict(model, arr, batch_events=1)
    got = []
    for event in range(3):
        batch = batches_of(arr, {}, np.array([event]), model.bin_size)
        out = session.run(None, {k: batch[k].numpy() for k in ("el_features", "el_mask")})[0]
        got.append(out[batch["el_mask"][:, 0].numpy() > 0])
    n = int(arr.counts[:3].sum())
    np.testing.assert_allclose(np.concatenate(got), want[:n], atol=EXPORT_TOLERANCE)

    # an export that does not compute what the model does is refused, and not written
    real_export = torch.onnx.export

    def broken_export(model: torch.nn.Module, args: Any, f: Path, **kwargs: Any) -> None:
        real_export(model, args, f, **kwargs)
        proto = onnx.load_model(f)
        for init in proto.graph.initializer:
            if init.data_type == onnx.TensorProto.FLOAT:
                shifted = numpy_helper.to_array(init) + 0.5
                init.CopyFrom(numpy_helper.from_array(shifted, init.name))
        onnx.save_model(proto, f)

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    (run / "model.onnx").unlink()
    with pytest.raises(ExportError, match="ONNX Runtime and PyTorch differ"):
        export_mlpf(model, run / "model.onnx")
    assert not (run / "model.onnx").exists()
    assert not list(run.glob(".model.onnx*"))


# ------------------------------------------------------------------------------- DDP


def mlpf_ddp_worker(rank: int, world: int, port: int, opts: MLPFTrainOptions, out: Path) -> None:
    """One process of a gloo DDP job: train MLPF, then save this process's final weights."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    real_fit = Trainer.fit

    def fit_and_keep(self: Trainer, checkpoint: Any = None) -> Any:
        state = real_fit(self, checkpoint)
        torch.save(self.model.state_dict(), out / f"rank{rank}.pt")
        return state

    Trainer.fit = fit_and_keep  # type: ignore[method-assign]  # in the spawned process only
    train_mlpf(opts)


def test_batches_dealt_to_processes() -> None:
    """Each of two processes takes every other batch of the epoch's order: together all of
    them, once; the order changes with the epoch and repeats with it."""
    batches = [{"el_features": torch.full((1, 1, 2), float(i))} for i in range(7)]
    opts = MLPFTrainOptions(data=Path("d"), out=Path("o"), seed=3)
    weights = torch.ones(6)

    def seen(rank: int, epoch: int) -> list[int]:
        task = MLPFTask(batches, [], weights, opts, Distributed(rank=rank, world=2))
        return [int(b["el_features"][0, 0, 0]) for b in task.train_batches(epoch)]

    share0, share1 = seen(0, 0), seen(1, 0)
    assert (len(share0), len(share1)) == (4, 3)
    assert sorted(share0 + share1) == list(range(7))
    assert seen(0, 0) == share0
    assert [seen(0, e) + seen(1, e) for e in range(1, 4)] != [share0 + share1] * 3


@pytest.mark.slow  # two spawned processes (~30 s); the dealing is tested above
def test_ddp_gloo_two_processes(ttbar_elements: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    opts = MLPFTrainOptions(
        data=ttbar_elements, out=tmp_path / "run", epochs=2, width=8, n_layers=1, bin_size=16,
        device="cpu", progress=False,
    )  # fmt: skip
    mp.spawn(mlpf_ddp_worker, args=(2, port, opts, tmp_path), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name, tensor in rank0.items():
        torch.testing.assert_close(rank1[name], tensor, rtol=0, atol=0, msg=name)
    history = [
        json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    ]
    # 5 batches an epoch dealt to 2 processes: 2 steps each; the events of both are counted
    # (4 of the 5 batches: at least 3 x 8 + 4 events, where one process alone has <= 16)
    assert [h["step"] for h in history] == [2, 4]
    assert 28 <= history[0]["events_seen"] <= 36
    assert load_mlpf(tmp_path / "run").bin_size == 16  # rank 0 wrote model.pt
