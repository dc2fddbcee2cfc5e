"""Every family learns: each torch classifier overfits 256 learnable jets to > 95% training
accuracy in a few epochs, the autoencoder learns to reconstruct, the BDT separates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from models_helpers import DIMS, inputs_for, make_batch, small_model

from heptagon.models import FitPredictModel, build_model

N_JETS = 256


def learnable(seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    labels = torch.arange(N_JETS) % 2
    return make_batch(N_JETS, 12, seed=seed, labels=labels), labels


def fit(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    target: torch.Tensor,
    epochs: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(N_JETS).split(64):
            sub = {k: v[idx] for k, v in batch.items()}
            loss = loss_fn(model(*inputs_for(model, sub)), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


@pytest.mark.parametrize(
    ("name", "epochs"),
    [
        ("mlp", 15),
        ("pfn", 15),
        ("particlenet-lite", 8),
        ("part-lite", 6),
        ("deepjet", 15),
        ("cnn1d", 15),
    ],
)
def test_classifier_overfits(name: str, epochs: int) -> None:
    torch.manual_seed(0)
    batch, labels = learnable(seed=11)
    model = small_model(name)
    fit(model, batch, labels, epochs)
    model.eval()
    with torch.no_grad():
        accuracy = (model(*inputs_for(model, batch)).argmax(1) == labels).float().mean()
    assert accuracy > 0.95


def test_autoencoder_learns_to_reconstruct() -> None:
    torch.manual_seed(0)
    batch, _ = learnable(seed=12)
    x = batch["jet_features"]
    model = small_model("autoencoder", latent=4)
    before = model.reconstruction_error(x).mean().item()
    fit(model, batch, x, epochs=40, loss_fn=F.mse_loss)
    with torch.no_grad():
        after = model.reconstruction_error(x).mean().item()
    assert after < 0.5 * before


def test_bdt_fits_predicts_and_round_trips(tmp_path: Path) -> None:
    batch, labels = learnable(seed=13)
    inputs = {"jet_features": batch["jet_features"].numpy()}
    model = build_model("bdt", DIMS, 2, n_estimators=50, n_jobs=1)
    assert isinstance(model, FitPredictModel)
    model.fit(inputs, labels.numpy(), eval_inputs=inputs, eval_labels=labels.numpy())
    logits = model.predict(inputs)
    assert logits.shape == (N_JETS, 2)
    assert logits.dtype == np.float32
    assert (logits.argmax(1) == labels.numpy()).mean() > 0.95
    model.save(tmp_path / "bdt.json")
    restored = build_model("bdt", DIMS, 2)
    assert isinstance(restored, FitPredictModel)
    restored.load(tmp_path / "bdt.json")
    np.testing.assert_array_equal(restored.predict(inputs), logits)


def test_bdt_multiclass_and_regression() -> None:
    batch, _ = learnable(seed=14)
    x = {"jet_features": batch["jet_features"].numpy()}
    three = build_model("bdt", DIMS, 3, n_estimators=5, n_jobs=1)
    assert isinstance(three, FitPredictModel)
    assert three.fit(x, (torch.arange(N_JETS) % 3).numpy()).predict(x).shape == (N_JETS, 3)
    reg = build_model("bdt", DIMS, 1, n_estimators=5, n_jobs=1)
    assert isinstance(reg, FitPredictModel)
    assert reg.fit(x, x["jet_features"][:, 0]).predict(x).shape == (N_JETS, 1)
