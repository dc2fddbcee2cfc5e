"""The trainer on tensors in memory (TensorTask, fit_in_memory): what the trigger and DQM
networks train with."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from heptagon.train.tasks import TensorTask, fit_in_memory


def _problem() -> tuple[torch.Tensor, torch.Tensor]:
    """200 rows of 4 features; the class is the sign of the first feature."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=gen)
    return x, (x[:, 0] > 0).long()


def _fit(
    seed: int, epochs: int = 10, penalty_strength: float = 0.0
) -> tuple[nn.Module, list[float]]:
    x, y = _problem()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def penalty() -> torch.Tensor:
        return penalty_strength * sum(p.pow(2).sum() for p in model.parameters())

    task = TensorTask(
        [x],
        y,
        F.cross_entropy,
        batch_size=32,
        seed=seed,
        penalty=penalty if penalty_strength else None,
    )
    return model, fit_in_memory(model, task, epochs=epochs, lr=1e-2)


def test_fit_in_memory_learns_is_reproducible_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model, losses = _fit(seed=1)
    assert len(losses) == 10
    assert losses[-1] < 0.5 * losses[0]
    assert not model.training  # left in eval mode
    again, _ = _fit(seed=1)
    other, _ = _fit(seed=2)
    pairs = list(zip(model.parameters(), again.parameters(), other.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b, _ in pairs)
    # the batch order comes from the seed
    assert not all(torch.equal(a, c) for a, _, c in pairs)
    assert list(tmp_path.iterdir()) == []


def test_penalty_enters_the_loss() -> None:
    free, _ = _fit(seed=1)
    held, _ = _fit(seed=1, penalty_strength=1.0)
    norm = [sum(float(p.detach().pow(2).sum()) for p in m.parameters()) for m in (free, held)]
    assert norm[1] < 0.5 * norm[0]


def test_batches_of_an_epoch_cover_every_row_once() -> None:
    x, y = _problem()
    task = TensorTask([x, x[:, :2]], y, F.cross_entropy, batch_size=64, seed=5)
    batches = list(task.train_batches(epoch=3))
    assert [task.size(b) for b in batches] == [64, 64, 64, 8]
    rows = torch.cat([b[0][0] for b in batches])
    assert torch.equal(rows[rows[:, 0].argsort()], x[x[:, 0].argsort()])
    # the inputs of a batch stay row-aligned, and the order is the epoch's
    assert all(torch.equal(b[0][1], b[0][0][:, :2]) for b in batches)
    assert torch.equal(next(iter(task.train_batches(epoch=3)))[1], batches[0][1])
    assert not torch.equal(next(iter(task.train_batches(epoch=4)))[0][0], batches[0][0][0])
