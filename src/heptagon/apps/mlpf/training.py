"""MLPF training (``heptagon mlpf train``) on heptagon's :class:`~heptagon.train.trainer.Trainer`.

:func:`train_mlpf` trains :class:`heptagon.models.mlpf.MLPF` on an element sample
(``heptagon mlpf generate``; its elements linked with the detector its manifest records,
:func:`~heptagon.apps.mlpf.run.detector_of`), inputs standardised on the training
elements. The loss (:class:`MLPFTask`): binary cross entropy on particle / no particle
and the focal loss (:class:`heptagon.train.losses.FocalLoss`) on the class of true
particles, both weighted per target class by ``frequency ** -class_weight_power`` (rare
classes -- electrons, neutral hadrons -- count more); the squared error of the pT and
energy ratios (or Huber on their logs, ``energy_loss``) and Huber on the direction,
weighted by the element's reference ``pT ** regression_pt_power`` (the energetic
particles make the jets); cross entropy on the charge. The optimizer, the schedule
(``cosine``: linear warm-up over the first 5% of the steps, then cosine decay to 0; or
``constant``), mixed precision, DDP (``torchrun``), checkpoints, early stopping
(``patience``) and exact resume are the trainer's. A ``val_fraction`` of the events is
held out: its loss is recorded per epoch and the particle-probability threshold of
:func:`~heptagon.apps.mlpf.run.decode` is chosen on it with the best weights (the one
with the narrowest jet pT response).

The run dir::

    RUN/
      options.json          every MLPFTrainOptions field and the network options
      history.jsonl         one record per epoch (the trainer's; events_seen, events_per_s)
      checkpoints/last.pt   the full training state (--resume)
      checkpoints/best.pt   the weights of the lowest validation loss
      model.pt              the best weights, network options and Decoding (what
                            evaluate and export read)

An epoch's batch order depends only on ``(seed, epoch)``, so a resumed run ends with the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from heptagon.apps.mlpf.metrics import jet_response
from heptagon.apps.mlpf.run import (
    Decoding,
    ElementArrays,
    batches_of,
    build_mlpf,
    decode,
    detector_of,
    element_features,
    element_targets,
    load_table,
    predict,
)
from heptagon.artifacts.mlpf import MlpfOptionsFile
from heptagon.cpu import retain_freed_memory, uncache_kernels
from heptagon.errors import ConfigError, DataError, Interrupted
from heptagon.generate.detector import DetectorConfig
from heptagon.generate.elements import CLS_NONE, Elements
from heptagon.io import atomic_path, make_dir
from heptagon.models.mlpf import MLPF
from heptagon.train.device import DeviceChoice, select_device
from heptagon.train.distributed import Distributed, init_distributed
from heptagon.train.experiment import TrainOptions
from heptagon.train.losses import FocalLoss
from heptagon.train.rundir import RunDir, load_checkpoint
from heptagon.train.seeding import seed_everything
from heptagon.train.trainer import CHECKPOINT_FORMAT, Forward, Trainer, TrainTask
from heptagon.train.validation import ValMetrics

__all__ = ["MLPFTask", "MLPFTrainOptions", "train_mlpf"]

#: the largest ratio of a particle's pT or energy to its element's in the regression loss
_MAX_RATIO = 20.0
#: options that may differ when a run is resumed (where it runs, not what it computes)
_RESUME_FREE = ("out", "device", "progress")

#: a padded batch of events: ``el_features``, ``el_mask`` and the targets
EventBatch = dict[str, torch.Tensor]


class MLPFTrainOptions(BaseModel):
    """An MLPF training run (``heptagon mlpf train``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path
    out: Path
    epochs: int = Field(10, gt=0)
    batch_events: int = Field(8, gt=0)
    lr: float = Field(1e-3, gt=0)
    #: AdamW's decoupled weight decay (weight matrices only)
    weight_decay: float = Field(0.01, ge=0)
    width: int = Field(64, gt=0)
    n_layers: int = Field(3, gt=0)
    bin_size: int = Field(64, ge=2)
    focal_gamma: float = Field(2.0, ge=0)
    #: class weights ``frequency ** -class_weight_power`` (0: unweighted)
    class_weight_power: float = Field(0.25, ge=0)
    #: the loss of the pT and energy outputs: Huber on the log of the ratio to the
    #: element's ("log"), or the squared error of the ratio itself ("ratio": unbiased
    #: sums of energies)
    energy_loss: Literal["log", "ratio"] = "ratio"
    #: the regression loss of an element is weighted by its reference pT to this power
    #: (0: equal weights; the energetic particles make the jets)
    regression_pt_power: float = Field(1.0, ge=0)
    #: "cosine": linear warm-up over the first 5% of the steps, then cosine decay to 0
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    #: the fraction of the events held out for validation (and the threshold)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    #: stop after this many epochs without a lower validation loss (None: never)
    patience: int | None = Field(None, ge=1)
    #: optimizer steps between two writes of checkpoints/last.pt (and at each epoch end)
    checkpoint_every: int = Field(500, ge=1)
    #: the particle-probability threshold; None: chosen on the validation events (0.5
    #: without them)
    threshold: float | None = Field(None, gt=0, lt=1)
    #: decoding: charged particles from tracks keep the track's momentum and direction
    track_momentum: bool = True
    #: "auto": CUDA when there is one
    device: DeviceChoice = "auto"
    #: mixed precision (float16 with a gradient scaler), on CUDA only
    amp: bool = True
    #: a progress bar (on a terminal only)
    progress: bool = True
    seed: int = 0

    @model_validator(mode="after")
    def _patience_needs_validation(self) -> MLPFTrainOptions:
        if self.patience is not None and self.val_fraction == 0:
            raise ValueError("patience needs validation events (val_fraction > 0)")
        return self

    def network(self) -> dict[str, int]:
        """The network options (``model.pt``'s ``options``)."""
        return {"width": self.width, "n_layers": self.n_layers, "bin_size": self.bin_size}

    def loop(self, total_steps: int) -> TrainOptions:
        """The trainer's options for a run of ``total_steps`` optimizer steps."""
        cosine = self.lr_schedule == "cosine"
        return TrainOptions(
            epochs=self.epochs,
            batch_size=self.batch_events,
            lr=self.lr,
            weight_decay=self.weight_decay,
            # "constant": flat to the end (decay_start 1)
            schedule="cosine" if cosine else "flat+decay",
            warmup_steps=max(1, total_steps // 20) if cosine else 0,
            decay_start=1.0,
            min_lr_ratio=0.0,
            patience=self.patience,
            checkpoint_every=self.checkpoint_every,
            seed=self.seed,
            device=self.device,
            amp=self.amp,
            progress=self.progress,
        )


def _class_weights(cls: np.ndarray, power: float) -> torch.Tensor:
    """Per class ``frequency ** -power``, normalised to a mean of 1 over the elements."""
    freq = np.bincount(cls, minlength=6).astype(np.float64)
    w = np.where(freq > 0, np.maximum(freq, 1.0) ** -power, 0.0)
    w = w * cls.size / (w * freq).sum()
    return torch.tensor(w, dtype=torch.float32)


class MLPFTask(TrainTask[EventBatch]):
    """MLPF's loss (the module docstring) on padded event batches; each process takes
    every ``world``-th batch of an epoch's order."""

    unit = "events"

    def __init__(
        self,
        train: Sequence[EventBatch],
        val: Sequence[EventBatch],
        class_weights: torch.Tensor,
        opts: MLPFTrainOptions,
        dist: Distributed,
    ) -> None:
        super().__init__()
        self.train, self.val, self.class_weights = list(train), list(val), class_weights
        self.focal, self.energy_loss = FocalLoss(opts.focal_gamma), opts.energy_loss
        self.seed, self.dist = opts.seed, dist

    def train_batches(self, epoch: int) -> Iterator[EventBatch]:
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.train))
        return iter([self.train[i] for i in order[self.dist.rank :: self.dist.world]])

    def size(self, batch: EventBatch) -> int:
        return int(batch["el_features"].shape[0])

    def to(self, batch: EventBatch, device: torch.device) -> EventBatch:
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def inputs(self, batch: EventBatch) -> tuple[torch.Tensor, ...]:
        return batch["el_features"], batch["el_mask"]

    def loss(self, output: torch.Tensor, batch: EventBatch) -> torch.Tensor:
        """The batch's loss; the class weights are per target class (none first)."""
        out = output.float()
        mask = batch["el_mask"][:, 0] > 0
        o, cls = out[mask], batch["cls"][mask]
        w = self.class_weights.to(out.device)[cls]
        real = cls != CLS_NONE
        bce = F.binary_cross_entropy_with_logits(o[:, 0], real.float(), reduction="none")
        loss = (bce * w).sum() / w.sum()
        if not real.any():
            return loss
        r, wr = o[real], w[real]
        loss = loss + (self.focal.per_entry(r[:, 1:6], cls[real] - 1) * wr).sum() / wr.sum()
        reg_weight = batch["reg_weight"][mask][real]
        per_entry = self._regression(r[:, 6:11], batch["reg"][mask][real])
        loss = loss + (per_entry * reg_weight).sum() / reg_weight.sum()
        return loss + F.cross_entropy(r[:, 11:14], batch["charge"][mask][real])

    def _regression(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per element: the pT and energy loss (``energy_loss``) and Huber on the direction."""
        if self.energy_loss == "log":
            return F.huber_loss(pred, target, reduction="none").mean(1)
        # squared error of the ratios: the minimum is the mean ratio (an unbiased energy
        # sum), not the median or the geometric mean of the log's Huber
        ratio = target[:, :2].exp().clamp(max=_MAX_RATIO)
        pred_ratio = pred[:, :2].clamp(max=math.log(_MAX_RATIO)).exp()
        return (
            F.mse_loss(pred_ratio, ratio, reduction="none").sum(1)
            + F.huber_loss(pred[:, 2:], target[:, 2:], reduction="none").sum(1)
        ) / 5

    def validate(
        self, forward: Forward, device: torch.device, dist: Distributed
    ) -> ValMetrics | None:
        """The mean batch loss over the validation events (None without any)."""
        total, n = 0.0, 0
        for batch in self.val[dist.rank :: dist.world]:
            moved = self.to(batch, device)
            total += float(self.loss(forward(self.inputs(moved)), moved))
            n += 1
        total, count = dist.sum([total, float(n)])
        return ValMetrics(total / count, None, None) if count else None


def _sized_batches(
    el: Elements, detector: DetectorConfig, opts: MLPFTrainOptions
) -> tuple[ElementArrays, list[EventBatch]]:
    """The element arrays of ``el`` (linked with the sample's ``detector``) and all its
    events in padded training batches; events of similar size share a batch (less
    padding)."""
    arr = element_features(el, detector)
    targets = element_targets(el, arr, opts.regression_pt_power)
    order = np.argsort(arr.counts, kind="stable")
    batches = [
        batches_of(arr, targets, order[i : i + opts.batch_events], opts.bin_size)
        for i in range(0, order.size, opts.batch_events)
    ]
    return arr, batches


def _choose_threshold(
    out: np.ndarray, arr: ElementArrays, el: Elements, track_momentum: bool
) -> float:
    """The particle-probability threshold with the narrowest jet pT response (IQR) on
    validation events (0.5 when no jet is matched)."""
    best, best_iqr = 0.5, math.inf
    for threshold in np.round(np.linspace(0.2, 0.8, 13), 2).tolist():
        parts = decode(out, arr, Decoding(float(threshold), track_momentum))
        iqr = jet_response(parts, el).get("response_iqr")
        if iqr is not None and iqr < best_iqr:
            best, best_iqr = float(threshold), iqr
    return best


def _saved_options(opts: MLPFTrainOptions) -> MlpfOptionsFile:
    """``options.json``: every option and the network options."""
    return MlpfOptionsFile(options=json.loads(opts.model_dump_json()), model=opts.network())


def _check_run_dir(opts: MLPFTrainOptions, resume: bool) -> None:
    """A new run needs a fresh ``out``; a resumed one the options it was started with."""
    path = opts.out / "options.json"
    if not resume:
        if path.exists():
            raise ConfigError(
                f"{opts.out} already holds a run: pass --resume to continue it, or another --out",
                "--out",
            )
        return
    if not path.exists():
        raise ConfigError(f"nothing to resume: {path} does not exist", "--resume")
    saved, wanted = MlpfOptionsFile.read(path), _saved_options(opts)
    for key, value in [*wanted.options.items(), ("model", wanted.model)]:
        recorded = saved.model if key == "model" else saved.options.get(key)
        if key not in _RESUME_FREE and recorded != value:
            raise ConfigError(
                "differs from the run's options.json: resume with the same options", key
            )


def _split(opts: MLPFTrainOptions) -> tuple[Elements, Elements | None]:
    """The training and (a ``val_fraction`` of the events, drawn with the seed) the
    validation events."""
    table = load_table(opts.data)
    n_val = round(opts.val_fraction * len(table))
    perm = np.random.default_rng(opts.seed).permutation(len(table))
    el = Elements.from_table(table[np.sort(perm[n_val:])])
    return el, Elements.from_table(table[np.sort(perm[:n_val])]) if n_val else None


def _discard(run: RunDir) -> None:
    """Remove what a run that failed before its first checkpoint wrote (and its dir, if
    then empty), so that the same command can start it again."""
    for path in (run.root / "options.json", run.history, run.best):
        path.unlink(missing_ok=True)
    for folder in (run.checkpoints, run.root):
        with contextlib.suppress(OSError):  # not empty: something else is in it
            folder.rmdir()


def _interrupted(run: RunDir) -> str:
    """What an interrupted run kept, and how to go on."""
    if not run.last.exists():
        return "before the first checkpoint: nothing was kept; run the same command again"
    state = load_checkpoint(run.last)["state"]
    return (
        f"the last checkpoint (epoch {state['epoch']}, step {state['step']}) is in "
        f"{run.root}; run the same command with --resume to continue"
    )


def train_mlpf(opts: MLPFTrainOptions, resume: bool = False) -> Path:
    """Train MLPF on ``opts.data`` into the run dir ``opts.out``; returns ``model.pt``'s
    path. ``resume``: continue from ``checkpoints/last.pt`` (with the options the run was
    started with). Under ``torchrun`` every process calls it; only rank 0 writes."""
    device = select_device(opts.device, key="device")
    if device.type == "cpu":
        retain_freed_memory()
        uncache_kernels()
    _check_run_dir(opts, resume)  # on every process before they meet: rank 0 then writes
    dist = init_distributed(device.type == "cuda")
    try:
        if dist.active and device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
            torch.cuda.set_device(device)
        path = _train(opts, resume, device, dist)
        dist.barrier()  # no rank leaves the group while another still has work in flight
        return path
    finally:
        dist.close()


def _train(opts: MLPFTrainOptions, resume: bool, device: torch.device, dist: Distributed) -> Path:
    el, el_val = _split(opts)
    detector = detector_of(opts.data)
    arr, batches = _sized_batches(el, detector, opts)
    arr_val, val_batches = (
        _sized_batches(el_val, detector, opts) if el_val is not None else (None, [])
    )
    seed_everything(opts.seed)
    model = build_mlpf(opts.network())
    feats = torch.from_numpy(arr.features).double()
    model.set_input_scaling(feats.mean(0).float(), feats.std(0).float())
    weights = _class_weights(el.target["class"].astype(np.int64), opts.class_weight_power)
    task = MLPFTask(batches, val_batches, weights, opts, dist)
    # an epoch ends when the process with the fewest batches runs out
    total_steps = opts.epochs * max(1, len(batches) // dist.world)
    run = RunDir(opts.out)
    if dist.is_main and not resume:
        make_dir(opts.out)
        run.make()
        _saved_options(opts).write(opts.out / "options.json")
    dist.barrier()
    trainer = Trainer(
        model,
        task,
        opts.loop(total_steps),
        run=run,
        device=device,
        dist=dist,
        total_steps=total_steps,
    )
    checkpoint = load_checkpoint(run.last) if resume and run.last.exists() else None
    if checkpoint is not None and checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"not a {CHECKPOINT_FORMAT} file", run.last, "format")
    try:
        trainer.fit(checkpoint)
    except BaseException as err:
        if dist.is_main and not resume and not run.last.exists():
            _discard(run)
        if isinstance(err, KeyboardInterrupt):
            raise Interrupted(_interrupted(run)) from None
        raise
    path = opts.out / "model.pt"
    if dist.is_main:
        _save_model(model, run, opts, el_val, arr_val, path)
    return path


def _save_model(
    model: MLPF,
    run: RunDir,
    opts: MLPFTrainOptions,
    el_val: Elements | None,
    arr_val: ElementArrays | None,
    path: Path,
) -> None:
    """``model.pt``: the best weights, with the threshold chosen on them."""
    model.load_state_dict(load_checkpoint(run.best)["model"])
    model.eval()
    threshold = opts.threshold
    if threshold is None:
        threshold = (
            _choose_threshold(predict(model, arr_val), arr_val, el_val, opts.track_momentum)
            if el_val is not None and arr_val is not None
            else 0.5
        )
    with atomic_path(path) as tmp:
        torch.save(
            {
                "options": opts.network(),
                "state": {k: v.cpu() for k, v in model.state_dict().items()},
                "decoding": asdict(Decoding(threshold, opts.track_momentum)),
            },
            tmp,
        )
