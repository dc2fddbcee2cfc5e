"""The gradient-descent loop for torch models: steps, validation, checkpoints, resume.

What is trained on is a :class:`TrainTask`: the batches of an epoch, the model's inputs in
a batch, the loss and the validation numbers. :class:`heptagon.train.tasks.JetTask` is the
taggers' (a :class:`~heptagon.data.JetDataset` through a data config);
:class:`heptagon.train.tasks.TensorTask` trains on tensors held in memory (the trigger and
DQM networks); MLPF has its own (:mod:`heptagon.apps.mlpf.training`). The trainer owns
everything else: optimizer and schedule (:mod:`heptagon.train.optim`), mixed precision,
DDP, the counters, ``history.jsonl``, checkpoints, early stopping and resume. Without a
run dir (``run=None``) nothing is written: a fit in memory.

One step is one batch per process. Validation runs every ``val_every`` steps or at the
end of each epoch, and at the end of training; it appends a record to ``history.jsonl``,
updates ``checkpoints/best.pt`` when the validation loss improves, and counts validations
without improvement for early stopping. ``checkpoints/last.pt`` is written every
``checkpoint_every`` steps, at each epoch end and at the end.

Resuming is exact (same weights as an uninterrupted run with the same seed): ``last.pt``
holds the model, optimizer, scheduler, grad-scaler and RNG states, the counters and the
data position ``(epoch, batch_in_epoch)``. The training data's order depends only on
``(seed, epoch)`` (:meth:`heptagon.data.JetDataset.set_epoch`), so on resume the
interrupted epoch is replayed from its start and its first ``batch_in_epoch`` batches are
read and dropped. Data iterators are created outside the global RNG stream, so the
restored RNG states continue exactly where they were saved. ``in_memory`` datasets are not
used (their order after the first epoch depends on the epochs already run).

A task may train modules of its own inside the step (:attr:`TrainTask.extra`: the
taggers' ``train.regularisers``, a mass adversary); their state goes into ``last.pt``.
Under DDP each process trains its own. The validation loss is the task's loss alone.

With ``train.ema`` (:class:`heptagon.train.optim.WeightAverage`) the moving average of the
weights is updated after every optimizer step; it is the model that is validated and
saved as ``best.pt`` (so ``evaluate`` and ``export`` use it); ``last.pt`` holds both.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from heptagon.errors import ConfigError, DataError, ModelError, first_line
from heptagon.logs import get_logger
from heptagon.train.distributed import Distributed
from heptagon.train.experiment import TrainOptions
from heptagon.train.optim import WeightAverage, build_optimizer, build_scheduler
from heptagon.train.rundir import RunDir, save_checkpoint
from heptagon.train.seeding import get_rng_state, set_rng_state
from heptagon.train.validation import ValMetrics

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["CHECKPOINT_FORMAT", "Forward", "TrainState", "TrainTask", "Trainer"]

CHECKPOINT_FORMAT = "heptagon-checkpoint"

_log = get_logger("train")

B = TypeVar("B")

#: the model (in eval mode, under the run's autocast) on a batch's inputs
Forward = Callable[[Sequence[Tensor]], Tensor]


class TrainTask(ABC, Generic[B]):
    """What a :class:`Trainer` trains on: the batches, the model's inputs in a batch, the
    loss and the validation numbers (batches of any type ``B``)."""

    #: what a batch's size counts: the history's ``<unit>_seen`` and ``<unit>_per_s``
    unit: str = "jets"
    #: modules the task trains itself inside a step (a mass adversary): moved to the
    #: device with the model and saved in ``last.pt``
    extra: nn.Module

    def __init__(self) -> None:
        self.extra = nn.ModuleList()

    @abstractmethod
    def train_batches(self, epoch: int) -> Iterator[B]:
        """This process's training batches of ``epoch`` (0-based); their order depends only
        on the task's seed and ``epoch`` (exact resume). Called outside the global RNG
        stream."""

    @abstractmethod
    def validate(
        self, forward: Forward, device: torch.device, dist: Distributed
    ) -> ValMetrics | None:
        """The validation numbers of the model that ``forward`` runs (every process's
        share combined), or None when the task has no validation data."""

    @abstractmethod
    def size(self, batch: B) -> int:
        """How many ``unit`` s ``batch`` holds."""

    @abstractmethod
    def to(self, batch: B, device: torch.device) -> B:
        """``batch`` with its tensors on ``device``."""

    @abstractmethod
    def inputs(self, batch: B) -> Sequence[Tensor]:
        """The model's positional inputs in a batch."""

    @abstractmethod
    def loss(self, output: Tensor, batch: B) -> Tensor:
        """The training loss of the model's ``output`` on ``batch`` (the task's modules of
        :attr:`extra` update inside it)."""

    def after_step(self, grad_scale: float) -> None:
        """Called after each optimizer step with the gradient scale (1 without AMP)."""


@dataclass
class TrainState:
    """Counters of a training run (plain types: they go into ``last.pt``).

    ``epoch``: epochs completed; ``batch_in_epoch``: batches done in the current one;
    ``jets_seen``: the task's units (jets, events) trained on; ``loss_sum`` /
    ``n_batches`` / ``interval_jets`` / ``interval_s``: the training loss, units and time
    since the last validation (summed over processes at a checkpoint, held by rank 0).
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    jets_seen: int = 0
    best_val_loss: float = math.inf
    bad_validations: int = 0
    stopped_early: bool = False
    finished: bool = False
    wall_s: float = 0.0
    loss_sum: float = 0.0
    n_batches: int = 0
    interval_jets: int = 0
    interval_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def _outside_rng(make: Callable[[], Iterable[B]]) -> Iterator[B]:
    """The iterator of ``make()``, created outside the global torch RNG stream (a
    ``DataLoader`` draws its workers' base seed from it, but not on every epoch when its
    workers persist), so the RNG state of a checkpoint does not depend on the loader."""
    with torch.random.fork_rng(devices=[]):
        return iter(make())


def _epoch_line(record: Mapping[str, Any], epochs: int, unit: str) -> str:
    """The log line of a validation record (a line of ``history.jsonl``); absent metrics
    are left out."""
    parts = [f"epoch {record['epoch']}/{epochs} step {record['step']}"]
    for key, label, fmt in (
        ("train_loss", "train loss", ".4g"),
        ("val_loss", "val loss", ".4g"),
        ("val_auc", "val AUC", ".4f"),
        ("val_accuracy", "val accuracy", ".4f"),
        ("lr", "lr", ".3g"),
    ):
        if record[key] is not None:
            parts.append(f"{label} {record[key]:{fmt}}")
    if record[f"{unit}_per_s"] is not None:
        parts.append(f"{record[f'{unit}_per_s']:.0f} {unit}/s")
    parts.append(f"{record['wall_s']:.1f} s")
    return ", ".join(parts)


def _event_writer(run: RunDir) -> SummaryWriter:
    """A TensorBoard writer into ``RUN/tensorboard/`` (``train.tensorboard``)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "needs the tensorboard package: pip install 'heptagon[tensorboard]'",
            "train.tensorboard",
        ) from None
    return SummaryWriter(str(run.root / "tensorboard"))


class Trainer:
    """Trains ``model`` on ``task`` with the loop, optimizer and schedule of ``options``,
    writing into ``run`` (rank 0 only; None: nothing is written).

    ``total_steps``: the steps of the whole run, for the learning-rate schedule.
    """

    def __init__(
        self,
        model: nn.Module,
        task: TrainTask[Any],
        options: TrainOptions,
        *,
        run: RunDir | None,
        device: torch.device,
        total_steps: int,
        dist: Distributed | None = None,
    ) -> None:
        dist = dist or Distributed()
        self.model = model.to(device)
        self.task = task
        task.extra.to(device)
        self.module: nn.Module = (
            DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
            if dist.active
            else self.model
        )
        self.options, self.run = options, run
        self.device, self.dist, self.total_steps = device, dist, total_steps
        self.optimizer = build_optimizer(self.model, options)
        self.scheduler = build_scheduler(self.optimizer, options, total_steps)
        self.average = None if options.ema is None else WeightAverage(self.model, options.ema)
        self.use_amp = options.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.state = TrainState()
        self._writes = run is not None and dist.is_main
        self._board = (
            _event_writer(run) if run is not None and options.tensorboard and dist.is_main else None
        )
        self._t0 = time.perf_counter()
        self._progress: tuple[Progress, TaskID] | None = None

    # ---------------------------------------------------------------- checkpoints

    def checkpoint(self) -> dict[str, Any]:
        """The content of ``last.pt``."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "regularisers": self.task.extra.state_dict(),
            "ema": None if self.average is None else self.average.state_dict(),
            "rng": get_rng_state(),
            "state": asdict(self.state),
        }

    def _restore(self, checkpoint: Mapping[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.task.extra.load_state_dict(checkpoint["regularisers"])
        if self.average is not None:
            ema = checkpoint.get("ema")
            if ema is None:
                raise KeyError("no weight average (train.ema) in the checkpoint")
            self.average.load_state_dict(ema)
        self.state = TrainState(**checkpoint["state"])
        set_rng_state(checkpoint["rng"])
        if not self.dist.is_main:  # rank 0 holds the summed interval counters
            s = self.state
            s.loss_sum, s.n_batches, s.interval_jets = 0.0, 0, 0

    def _save_last(self) -> None:
        if self.run is None:
            return
        s = self.state
        loss_sum, n_batches, seen = self.dist.sum(
            [s.loss_sum, float(s.n_batches), float(s.interval_jets)]
        )
        if self.dist.is_main:
            s.loss_sum, s.n_batches, s.interval_jets = loss_sum, int(n_batches), int(seen)
            save_checkpoint(self.run.last, self.checkpoint())
        else:
            s.loss_sum, s.n_batches, s.interval_jets = 0.0, 0, 0

    def _save_best(self, val_loss: float | None) -> None:
        if self._writes:
            assert self.run is not None
            save_checkpoint(
                self.run.best,
                {
                    "format": CHECKPOINT_FORMAT,
                    "model": self._evaluated().state_dict(),
                    "step": self.state.step,
                    "val_loss": val_loss,
                },
            )

    # ---------------------------------------------------------------- the loop

    def fit(self, checkpoint: Mapping[str, Any] | None = None) -> TrainState:
        """Train to the end (epochs, ``max_steps`` or early stopping), from ``checkpoint``
        (a ``last.pt``) if given. Returns the final state."""
        if checkpoint is not None:
            try:
                self._restore(checkpoint)
            except (KeyError, TypeError, ValueError, RuntimeError) as err:
                why = first_line(err)
                where = self.run.last if self.run is not None else None
                raise DataError(
                    f"does not fit this run's model and optimizer ({why})", where
                ) from None
        s, options = self.state, self.options
        self._t0 = time.perf_counter() - s.wall_s
        with self._progress_bar() as progress:
            task = progress.add_task(
                "train",
                total=self.total_steps,
                completed=s.step,
                epoch=s.epoch + 1,
                loss=math.nan,
                rate=0.0,
            )
            self._progress = (progress, task)
            while not s.finished and s.epoch < options.epochs:
                batches = _outside_rng(lambda: self.task.train_batches(s.epoch))
                for _ in range(s.batch_in_epoch):  # reposition a resumed epoch
                    next(batches)
                if not self._epoch(batches):
                    break
                if options.val_every == "epoch":
                    self._validate()
                s.epoch += 1
                s.batch_in_epoch = 0
                self._save_last()
        if not s.history or s.history[-1]["step"] != s.step:
            self._validate()
        s.finished = True
        self._save_last()
        if self._board is not None:  # flushed at each record: an error loses none
            self._board.close()
        return s

    def _epoch(self, batches: Iterator[Any]) -> bool:
        """Train on the rest of an epoch; False if training must stop inside it."""
        s, options = self.state, self.options
        tick = time.perf_counter()
        while True:
            batch = next(batches, None)
            if not self.dist.all_true(batch is not None):  # one rank ran out: epoch over
                s.interval_s += time.perf_counter() - tick
                return True
            assert batch is not None
            loss = self._step(batch)
            s.step += 1
            s.batch_in_epoch += 1
            s.loss_sum += loss
            s.n_batches += 1
            s.interval_jets += self.task.size(batch)
            now = time.perf_counter()
            s.interval_s += now - tick
            tick = now
            self._show(
                completed=s.step,
                epoch=s.epoch + 1,
                loss=loss,
                rate=s.interval_jets * self.dist.world / max(s.interval_s, 1e-9),
            )
            if isinstance(options.val_every, int) and s.step % options.val_every == 0:
                self._validate()
                if s.finished:
                    return False
            if s.step % options.checkpoint_every == 0:
                self._save_last()
            if options.max_steps is not None and s.step >= options.max_steps:
                return False
            tick = time.perf_counter()

    def _forward(self, module: nn.Module, inputs: Sequence[Tensor]) -> Tensor:
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else nullcontext()
        with autocast:
            output: Tensor = module(*inputs)
        return output

    def _step(self, batch: Any) -> float:
        """One optimizer step; returns the batch's loss."""
        moved = self.task.to(batch, self.device)
        self.module.train()
        output = self._forward(self.module, self.task.inputs(moved))
        loss = self.task.loss(output, moved)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ModelError(
                f"the training loss is {value} at step {self.state.step + 1}: lower the "
                "learning rate, clip the gradients or check the inputs"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.options.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.options.grad_clip)
        self.scaler.step(self.optimizer)
        self.task.after_step(float(self.scaler.get_scale()) if self.use_amp else 1.0)
        self.scaler.update()
        self.scheduler.step()
        if self.average is not None:
            self.average.update(self.state.step + 1)
        return value

    def _evaluated(self) -> nn.Module:
        """The model that is validated and kept as ``best.pt``: the weight average with
        ``train.ema``, else the trained model."""
        return self.model if self.average is None else self.average.module

    # ---------------------------------------------------------------- validation

    def _validate(self) -> None:
        s, unit = self.state, self.task.unit
        loss_sum, n_batches, seen = self.dist.sum(
            [s.loss_sum, float(s.n_batches), float(s.interval_jets)]
        )
        evaluated = self._evaluated().eval()
        with torch.no_grad():
            metrics = self.task.validate(
                lambda inputs: self._forward(evaluated, inputs), self.device, self.dist
            )
        s.jets_seen += int(seen)
        record = {
            "epoch": s.epoch + 1,
            "step": s.step,
            f"{unit}_seen": s.jets_seen,
            "train_loss": loss_sum / n_batches if n_batches else None,
            "val_loss": None if metrics is None else metrics.loss,
            "val_accuracy": None if metrics is None else metrics.accuracy,
            "val_auc": None if metrics is None else metrics.auc,
            "lr": self.optimizer.param_groups[0]["lr"],
            f"{unit}_per_s": seen / s.interval_s if s.interval_s > 0 else None,
            "wall_s": time.perf_counter() - self._t0,
        }
        s.history.append(record)
        if self.dist.is_main:
            _log.info(_epoch_line(record, self.options.epochs, unit))
        if self._board is not None:  # the record's numbers at its step
            for key, value in record.items():
                if key != "step" and value is not None:
                    self._board.add_scalar(key, value, s.step)
            self._board.flush()
        s.wall_s = record["wall_s"]
        s.loss_sum, s.n_batches, s.interval_jets, s.interval_s = 0.0, 0, 0, 0.0
        if metrics is None:  # nothing to compare: the latest weights are the result
            self._save_best(None)
        elif metrics.loss < s.best_val_loss:
            s.best_val_loss, s.bad_validations = metrics.loss, 0
            self._save_best(metrics.loss)
        else:
            s.bad_validations += 1
            patience = self.options.patience
            if patience is not None and s.bad_validations >= patience:
                s.stopped_early = s.finished = True
        if self._writes:
            assert self.run is not None
            self.run.write_history(s.history)

    def _show(self, **fields: Any) -> None:
        if self._progress is not None:
            progress, task = self._progress
            progress.update(task, **fields)

    def _progress_bar(self) -> Progress:
        show = self.options.progress and self.dist.is_main and Console().is_terminal
        return Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[rate]:.0f} " + self.task.unit + "/s"),
            TimeElapsedColumn(),
            disable=not show,
        )
