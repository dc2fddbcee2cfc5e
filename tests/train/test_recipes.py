"""Small-data training recipes as experiment keys: ``train.ema`` (the moving average of
the weights is the validated, saved and resumed model) and ``train.loss.label_smoothing``
(the loss the formula gives); their keys are checked with the key named."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import heptagon.train.trainer as trainer_module
from heptagon.errors import ConfigError
from heptagon.train import load_experiment, train
from heptagon.train.experiment import TrainOptions
from heptagon.train.losses import CrossEntropy
from heptagon.train.optim import EMASpec
from heptagon.train.rundir import load_checkpoint, save_checkpoint
from heptagon.train.tasks import TensorTask
from heptagon.train.trainer import Trainer
from heptagon.train.validation import ValMetrics

CONFIGS = Path(__file__).parents[2] / "configs"


class RecordingTask(TensorTask):
    """Records the model's weights after each optimizer step, and validates by running the
    validated model on fixed rows (kept in ``validated``)."""

    def __init__(self, model: nn.Module, rows: Tensor, targets: Tensor) -> None:
        super().__init__(
            [rows], targets, nn.functional.cross_entropy, batch_size=len(targets), seed=0
        )
        self.model = model
        self.weights: list[dict[str, Tensor]] = [self.snapshot()]
        self.validated: list[Tensor] = []

    def snapshot(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def after_step(self, grad_scale: float) -> None:
        self.weights.append(self.snapshot())

    def validate(self, forward: Any, device: torch.device, dist: Any) -> ValMetrics | None:
        self.validated.append(forward([self.rows[0]]))
        return None


def toy_fit(ema: EMASpec, steps: int = 2) -> tuple[Trainer, RecordingTask, nn.Module]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    rows, targets = torch.randn(16, 3), torch.arange(16) % 2
    task = RecordingTask(model, rows, targets)
    options = TrainOptions(
        epochs=steps, batch_size=16, buffer_size=16, lr=0.05, ema=ema, device="cpu",
        amp=False, progress=False,
    )  # fmt: skip
    trainer = Trainer(model, task, options, run=None, device=torch.device("cpu"), total_steps=steps)
    trainer.fit()
    return trainer, task, model


def test_ema_is_the_hand_computed_average() -> None:
    d = 0.6
    trainer, task, model = toy_fit(EMASpec(decay=d))
    assert trainer.average is not None
    w0, w1, w2 = task.weights
    averaged = trainer.average.module.state_dict()
    for name, value in averaged.items():
        if name.endswith("num_batches_tracked"):  # an integer buffer: copied
            assert int(value) == 2
            continue
        expected = d * (d * w0[name] + (1 - d) * w1[name]) + (1 - d) * w2[name]
        torch.testing.assert_close(value, expected, msg=name)
        assert not torch.allclose(value, w2[name]), name  # not the trained weights
    # the weights trained on are not touched by the average
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, w2[name])


def test_ema_starts_after_start_step() -> None:
    d = 0.6
    trainer, task, _ = toy_fit(EMASpec(decay=d, start_step=1))
    assert trainer.average is not None
    _, w1, w2 = task.weights
    weight = trainer.average.module.state_dict()["0.weight"]
    torch.testing.assert_close(weight, d * w1["0.weight"] + (1 - d) * w2["0.weight"])


def test_validation_runs_the_average() -> None:
    trainer, task, model = toy_fit(EMASpec(decay=0.6))
    assert trainer.average is not None
    validated = task.validated[-1]  # at the end of the last epoch
    rows = task.rows[0]
    with torch.no_grad():
        torch.testing.assert_close(validated, trainer.average.module.eval()(rows))
        assert not torch.allclose(validated, model.eval()(rows))


def test_best_checkpoint_and_resume_keep_the_average(
    mlp_experiment: Path, top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: dict[int, Path] = {}

    def keep_copies(path: Path, state: dict[str, Any]) -> None:
        save_checkpoint(path, state)
        if Path(path).name == "last.pt":
            copy = tmp_path / f"last-{state['state']['step']}.pt"
            shutil.copy(path, copy)
            saved[state["state"]["epoch"]] = copy

    overrides = ["train.ema={decay: 0.9}", "train.val_every=1000"]  # validated at the end only
    monkeypatch.setattr(trainer_module, "save_checkpoint", keep_copies)
    full = tmp_path / "full"
    reference = train(mlp_experiment, top_qcd_sample, full, overrides)
    monkeypatch.undo()
    last = load_checkpoint(full / "checkpoints" / "last.pt")
    best = load_checkpoint(full / "checkpoints" / "best.pt")
    assert best["step"] == reference.steps
    for name, value in last["ema"].items():
        torch.testing.assert_close(best["model"][name], value, msg=name)
    assert not torch.allclose(best["model"]["net.0.weight"], last["model"]["net.0.weight"])

    interrupted = tmp_path / "interrupted"
    shutil.copytree(full, interrupted)
    shutil.copy(saved[2], interrupted / "checkpoints" / "last.pt")  # after epoch 2 of 4
    train(mlp_experiment, top_qcd_sample, interrupted, overrides, resume=True)
    resumed = load_checkpoint(interrupted / "checkpoints" / "last.pt")["ema"]
    for name, value in last["ema"].items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-6, atol=1e-6, msg=name)


def test_label_smoothing_is_the_formula() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    eps = 0.2
    log_p = torch.log_softmax(logits, dim=1)
    nll = -log_p.gather(1, target[:, None]).squeeze(1)
    # (1 - eps) on the true class plus eps spread evenly over the K = 3 classes
    expected = (1 - eps) * nll - eps / 3 * log_p.sum(dim=1)
    torch.testing.assert_close(CrossEntropy(eps).per_entry(logits, target), expected)
    plain = CrossEntropy(0.0).per_entry(logits, target)
    torch.testing.assert_close(plain, nll)
    # a confident, right prediction: smoothing raises its loss (no reward for certainty)
    sure = torch.tensor([[10.0, -10.0, -10.0]])
    assert CrossEntropy(eps).per_entry(sure, torch.tensor([0])) > 0.1
    assert CrossEntropy(0.0).per_entry(sure, torch.tensor([0])) < 1e-6


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.ema={decay: 1.5}", "train.ema.decay"),
        ("train.ema={decay: 0.99, span: 3}", "train.ema.span"),
        ("train.ema={start_step: 3}", "train.ema.decay"),
        ("train.loss.label_smoothing=1.0", "train.loss.label_smoothing"),
    ],
)
def test_bad_recipe_keys_are_named(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_experiment(CONFIGS / "top_particlenet_lite_small.yaml", [override])
    assert err.value.key == key


def test_shipped_recipes_set_their_keys() -> None:
    for name in ("top_particlenet_lite_small", "top_part_lite_small"):
        options = load_experiment(CONFIGS / f"{name}.yaml").train
        assert options.ema is not None
        assert 0 < options.ema.decay < 1
        assert options.loss.name == "ce"
        assert options.loss.label_smoothing > 0
        assert options.ema.start_step == options.warmup_steps  # averaged after the warm-up
        assert options.patience is None  # the longer schedule runs to its end
