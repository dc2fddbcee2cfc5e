"""The :class:`~heptagon.train.trainer.TrainTask` s of heptagon's own models.

- :class:`JetTask`: the taggers of ``heptagon train``, on :class:`~heptagon.data.JetDataset`
  batches through a data config, with a weighted loss
  (:class:`~heptagon.train.losses.WeightedLoss`), the ``train.regularisers`` and
  validation loss, accuracy and AUC (:mod:`heptagon.train.validation`); a top-up adds
  EWC's penalty and replayed batches (:mod:`heptagon.train.continual`);
- :class:`AnomalyTask`: an autoencoder of ``heptagon train`` (``train.task: anomaly``) on
  the same batches: it reconstructs its input, the entries of the non-``background``
  classes weigh 0 in the loss, and validation reports the background's loss and the AUC
  of the per-entry loss for the held-out classes against the background;
- :class:`TensorTask`: small networks on tensors already in memory (the trigger models,
  the DQM autoencoders and feature ranking): shuffled mini-batches of the rows, a loss of
  the output and the batch's targets, and an optional penalty on the model (EWC's);
  :func:`fit_in_memory` trains one on the CPU at a constant learning rate, writing nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from heptagon.data.loader import Batch, JetDataset, make_dataloader
from heptagon.errors import DataError
from heptagon.physics.metrics import auc
from heptagon.train.continual import ReplayBatches
from heptagon.train.distributed import Distributed
from heptagon.train.experiment import TrainOptions
from heptagon.train.losses import Regulariser, WeightedLoss
from heptagon.train.trainer import Forward, Trainer, TrainTask
from heptagon.train.validation import ValMetrics, collect_outputs, val_metrics

__all__ = ["AnomalyTask", "JetTask", "TensorBatch", "TensorTask", "fit_in_memory"]


class JetTask(TrainTask[Batch]):
    """A tagger on a data config's batches: ``loss(output, label, weight)`` plus the
    regularisers' penalties and ``penalty()`` (a top-up's EWC term); ``input_names``
    orders the batch's tensors for the model. ``replay``: earlier entries whose batches
    go between the ``batches_per_epoch`` (an estimate) new ones of every epoch
    (:mod:`heptagon.train.continual`)."""

    def __init__(
        self,
        loss: WeightedLoss,
        input_names: Sequence[str],
        *,
        train_data: JetDataset,
        val_data: JetDataset,
        classification: bool,
        num_workers: int = 0,
        pin_memory: bool = False,
        regularisers: Sequence[Regulariser] = (),
        penalty: Callable[[], Tensor] | None = None,
        replay: ReplayBatches | None = None,
        batches_per_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.criterion, self.input_names = loss, tuple(input_names)
        self.train_data, self.classification = train_data, classification
        self.extra = self.regularisers = nn.ModuleList(regularisers)
        self.penalty, self.replay, self.batches_per_epoch = penalty, replay, batches_per_epoch
        self.train_loader = make_dataloader(train_data, num_workers, pin_memory=pin_memory)
        self.val_loader: DataLoader[Batch] = make_dataloader(
            val_data, num_workers, pin_memory=pin_memory
        )

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        self.train_data.set_epoch(epoch)
        if self.replay is None:
            return iter(self.train_loader)
        return self.replay.mix(iter(self.train_loader), epoch, self.batches_per_epoch)

    def size(self, batch: Batch) -> int:
        return len(batch)

    def to(self, batch: Batch, device: torch.device) -> Batch:
        return batch.to(device, non_blocking=True)

    def inputs(self, batch: Batch) -> tuple[Tensor, ...]:
        tensors = batch.tensors()
        return tuple(tensors[name] for name in self.input_names)

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        label = batch.label
        assert label is not None  # training data has labels (experiment check)
        loss = self.criterion(output, label, batch.weight)
        for reg in self.regularisers:
            assert isinstance(reg, Regulariser)
            obs = torch.as_tensor(batch.observers[reg.observable], device=output.device)
            reg.update(output.detach(), obs, label, batch.weight)
            loss = loss + reg.penalty(output, obs, label, batch.weight)
        total: Tensor = loss if self.penalty is None else loss + self.penalty()
        return total

    def after_step(self, grad_scale: float) -> None:
        for reg in self.regularisers:
            assert isinstance(reg, Regulariser)
            reg.step(grad_scale)

    def validate(self, forward: Forward, device: torch.device, dist: Distributed) -> ValMetrics:
        with torch.random.fork_rng(devices=[]):  # see Trainer: loaders draw a seed
            batches = iter(self.val_loader)
        outputs = collect_outputs(
            lambda tensors: forward([tensors[name] for name in self.input_names]),
            batches,
            device,
            dist,
        )
        return val_metrics(outputs, self.criterion, self.classification)


class AnomalyTask(JetTask):
    """An autoencoder on a data config's batches (one input group): ``loss(output, input,
    weight)`` with the weights of the entries outside the ``background`` class indices set
    to 0, so it learns the background only. Validation: the loss on the background, no
    accuracy, and the AUC of the per-entry loss (the anomaly score) of the other classes
    against the background (None when the split has none of them)."""

    def __init__(
        self,
        loss: WeightedLoss,
        input_names: Sequence[str],
        *,
        background: Sequence[int],
        train_data: JetDataset,
        val_data: JetDataset,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(
            loss, input_names, train_data=train_data, val_data=val_data, classification=False,
            num_workers=num_workers, pin_memory=pin_memory,
        )  # fmt: skip
        self.background = torch.tensor(list(background), dtype=torch.int64)

    def _background_weight(self, label: Tensor, weight: Tensor) -> Tensor:
        keep = torch.isin(label, self.background.to(label.device))
        return torch.where(keep, weight, torch.zeros_like(weight))

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        label = batch.label
        assert label is not None  # training data has labels (experiment check)
        target = batch.tensors()[self.input_names[0]]
        loss: Tensor = self.criterion(output, target, self._background_weight(label, batch.weight))
        return loss

    def validate(self, forward: Forward, device: torch.device, dist: Distributed) -> ValMetrics:
        with torch.random.fork_rng(devices=[]):  # see Trainer: loaders draw a seed
            batches = iter(self.val_loader)
        name = self.input_names[0]
        outputs = collect_outputs(  # the per-entry loss as the output
            lambda tensors: self.criterion.per_entry(
                forward([tensors[name]]).float(), tensors[name].float()
            )[:, None],
            batches,
            device,
            dist,
        )
        score, label = outputs.output[:, 0], outputs.label
        is_bkg = np.isin(label, self.background.numpy())
        w_bkg = np.where(is_bkg, outputs.weight, 0.0)
        if w_bkg.sum() <= 0:
            raise DataError("the validation split has no background entries (train.background)")
        loss = float((score * w_bkg).sum() / w_bkg.sum())
        has_signal = bool((outputs.weight[~is_bkg] > 0).any())
        area = auc(score, ~is_bkg, outputs.weight) if has_signal else None
        return ValMetrics(loss, None, area)


#: a mini-batch of a :class:`TensorTask`: the model's inputs and the targets
TensorBatch = tuple[tuple[Tensor, ...], Tensor]


class TensorTask(TrainTask[TensorBatch]):
    """Rows of tensors in memory (``inputs`` with the rows along dimension 0, ``targets``
    per row), in shuffled mini-batches of ``batch_size`` (the order of an epoch from
    ``(seed, epoch)``); the loss is ``loss(output, targets)`` plus ``penalty(model)``.
    No validation: the fit's numbers are the training losses."""

    unit = "rows"

    def __init__(
        self,
        inputs: Sequence[Tensor],
        targets: Tensor,
        loss: Callable[[Tensor, Tensor], Tensor],
        *,
        batch_size: int,
        seed: int = 0,
        penalty: Callable[[], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.rows, self.targets = tuple(inputs), targets
        self.criterion, self.penalty = loss, penalty
        self.batch_size, self.seed = batch_size, seed

    def train_batches(self, epoch: int) -> Iterator[TensorBatch]:
        rng = np.random.default_rng((self.seed, epoch))
        order = torch.from_numpy(rng.permutation(len(self.targets)))
        for idx in order.split(self.batch_size):
            yield tuple(x[idx] for x in self.rows), self.targets[idx]

    def size(self, batch: TensorBatch) -> int:
        return len(batch[1])

    def to(self, batch: TensorBatch, device: torch.device) -> TensorBatch:
        inputs, targets = batch
        return tuple(x.to(device) for x in inputs), targets.to(device)

    def inputs(self, batch: TensorBatch) -> tuple[Tensor, ...]:
        return batch[0]

    def loss(self, output: Tensor, batch: TensorBatch) -> Tensor:
        loss = self.criterion(output, batch[1])
        return loss if self.penalty is None else loss + self.penalty()

    def validate(self, forward: Forward, device: torch.device, dist: Distributed) -> None:
        return None


def fit_in_memory(
    model: nn.Module, task: TensorTask, *, epochs: int, lr: float, weight_decay: float = 0.0
) -> list[float]:
    """Train ``model`` in place on ``task`` for ``epochs`` on the CPU with AdamW at a
    constant ``lr`` (``weight_decay`` on weight matrices only; 0: Adam), writing nothing.
    Returns each epoch's mean batch loss; the model is left in eval mode."""
    options = TrainOptions(
        epochs=epochs,
        batch_size=task.batch_size,
        buffer_size=task.batch_size,
        lr=lr,
        weight_decay=weight_decay,
        schedule="flat+decay",  # flat to the end: a constant learning rate
        decay_start=1.0,
        seed=task.seed,
        device="cpu",
        amp=False,
        progress=False,
    )
    steps = epochs * -(-len(task.targets) // task.batch_size)
    trainer = Trainer(model, task, options, run=None, device=torch.device("cpu"), total_steps=steps)
    history = trainer.fit().history
    model.eval()
    return [record["train_loss"] for record in history]
