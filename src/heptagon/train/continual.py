"""Continual learning: top-ups of a trained model on new data without forgetting the old.

- EWC (Kirkpatrick et al. 2017, arXiv:1612.00796), online form: after each condition the
  diagonal Fisher information of the parameters on that condition's data is added to a
  running sum and the weights become the new anchor; fine-tuning on the next condition
  adds ``strength / 2 * sum_i F_i (theta_i - anchor_i)**2`` to the loss. The Fisher is the
  empirical one per batch: the mean over batches of :data:`FISHER_BATCH` entries of the
  squared gradient of the batch's mean log-likelihood of the true labels.
- Replay: earlier examples mixed into the top-up's training. :class:`ReplayMemory` keeps
  tensors in memory with an equal share from every condition seen (the trigger models);
  :class:`ReplayBatches` holds ``N`` entries drawn at random from a run's training split
  and interleaves them, as batches, with the new training batches of every epoch
  (``heptagon train --continue-from RUN --replay N``).

``heptagon train CONFIG --data NEW --continue-from RUN [--ewc LAMBDA] [--replay N]``
(:func:`heptagon.train.run.train` with a :class:`Continual`) starts from RUN's best weights
and its standardisation (``preprocess.json``); the experiment's model, inputs, classes
and task must be RUN's (:func:`parent_run` checks them). The EWC Fisher and the replayed
entries come from RUN's training split, read again from the files its ``config.yaml``
records; the new run's ``model.json`` records its ``parent``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heptagon.artifacts.run import ModelInfo, ParentRecord
from heptagon.config import load_yaml
from heptagon.data.io import expand_files
from heptagon.data.loader import Batch, JetDataset, pad_table
from heptagon.data.pipeline import iter_tables
from heptagon.data.preprocess import Preprocess
from heptagon.data.split import DataSplits
from heptagon.data.transform import Table
from heptagon.errors import ConfigError, DataError
from heptagon.io import sha256sum
from heptagon.logs import get_logger
from heptagon.train.experiment import ExperimentConfig, ModelSpec, RunConfig, validate_experiment
from heptagon.train.rundir import RunDir

__all__ = [
    "EWC",
    "FISHER_BATCH",
    "Continual",
    "ParentRun",
    "ReplayBatches",
    "ReplayMemory",
    "check_observers",
    "fisher_batches",
    "parent_run",
    "replay_table",
    "tensor_batches",
]

#: entries per batch of the empirical Fisher (its scale, and so EWC's strength, depend on it)
FISHER_BATCH = 64

_log = get_logger("train")

#: one batch of a classifier: the model's inputs and the integer labels
LabelledBatch = tuple[Sequence[Tensor], Tensor]


def tensor_batches(
    inputs: Sequence[Tensor], labels: Tensor, batch_size: int = FISHER_BATCH
) -> Iterator[LabelledBatch]:
    """Consecutive batches of ``batch_size`` rows of tensors held in memory."""
    for start in range(0, len(labels), batch_size):
        yield [x[start : start + batch_size] for x in inputs], labels[start : start + batch_size]


class EWC:
    """Online elastic weight consolidation for ``model`` (see the module docstring)."""

    def __init__(self, strength: float) -> None:
        if strength < 0:
            raise ConfigError(f"must be >= 0, got {strength}", key="ewc_strength")
        self.strength = strength
        self.fisher: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}

    def consolidate(
        self,
        model: nn.Module,
        inputs: Sequence[Tensor],
        labels: Tensor,
        batch_size: int = FISHER_BATCH,
    ) -> None:
        """:meth:`consolidate_batches` on tensors held in memory."""
        self.consolidate_batches(model, tensor_batches(inputs, labels, batch_size))

    def consolidate_batches(self, model: nn.Module, batches: Iterable[LabelledBatch]) -> int:
        """Add the empirical diagonal Fisher of the model (in eval mode) on ``batches`` (mean
        over batches of the squared gradient of the mean log-likelihood of the true labels)
        and set the anchor to the current weights. Returns the number of batches."""
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        was_training = model.training
        model.eval()
        n_batches = 0
        for inputs, labels in batches:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(*inputs), labels).backward()
            for name, p in params.items():
                if p.grad is not None:
                    fisher[name] += p.grad.detach() ** 2
            n_batches += 1
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        for name, f in fisher.items():
            f /= max(n_batches, 1)
            self.fisher[name] = self.fisher[name] + f if name in self.fisher else f
            self.anchor[name] = params[name].detach().clone()
        return n_batches

    def state(self) -> dict[str, Tensor]:
        """The Fisher sums and anchors as flat tensors (``fisher.<param>``, ``anchor.<param>``)."""
        return {
            **{f"fisher.{n}": f for n, f in self.fisher.items()},
            **{f"anchor.{n}": a for n, a in self.anchor.items()},
        }

    def load_state(self, state: Mapping[str, Tensor]) -> None:
        """Take the Fisher sums and anchors of :meth:`state` (other keys are ignored)."""
        for key, value in state.items():
            kind, _, name = key.partition(".")
            if kind == "fisher":
                self.fisher[name] = value
            elif kind == "anchor":
                self.anchor[name] = value

    def penalty(self, model: nn.Module) -> Tensor:
        """``strength / 2 * sum F (theta - anchor)**2`` (zero before any consolidation), on
        the model's device. A pruned layer's ``weight_orig`` (``torch.nn.utils.prune``)
        counts as its ``weight``."""
        total: Tensor | None = None
        for full_name, p in model.named_parameters():
            name = full_name.removesuffix("_orig")
            if name in self.fisher:
                if self.fisher[name].device != p.device:  # moved once, with the model
                    self.fisher[name] = self.fisher[name].to(p.device)
                    self.anchor[name] = self.anchor[name].to(p.device)
                term = (self.fisher[name] * (p - self.anchor[name]) ** 2).sum()
                total = term if total is None else total + term
        return 0.5 * self.strength * (torch.zeros(()) if total is None else total)


class ReplayMemory:
    """At most ``size`` stored examples with an equal share from every condition added."""

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise ConfigError(f"must be >= 1, got {size}", key="replay_size")
        self.size = size
        self._gen = torch.Generator().manual_seed(seed)
        self._parts: list[tuple[list[Tensor], Tensor]] = []

    def add(self, inputs: Sequence[Tensor], labels: Tensor) -> None:
        """Remember a random subset of this condition's examples; older conditions are
        thinned so that each keeps ``size // conditions`` examples."""
        self._parts.append(([x.clone() for x in inputs], labels.clone()))
        self._thin()

    @property
    def shares(self) -> list[int]:
        """The number of examples kept from each condition, in the order they were added."""
        return [len(y) for _, y in self._parts]

    def state(self) -> dict[str, Tensor]:
        """The memory as flat tensors: ``x<i>.<k>`` (input ``k``) and ``y<i>`` per condition,
        and ``rng``, the state of its random generator (a memory restored from it draws as
        the original would have gone on drawing)."""
        out: dict[str, Tensor] = {"rng": self._gen.get_state()}
        for i, (xs, y) in enumerate(self._parts):
            out |= {f"x{i}.{k}": x for k, x in enumerate(xs)}
            out[f"y{i}"] = y
        return out

    def load_state(self, state: Mapping[str, Tensor]) -> None:
        """Replace the memory (and the generator's state) with that of :meth:`state`; with
        more than ``size // conditions`` examples of a condition, each is thinned to that."""
        if "rng" in state:
            self._gen.set_state(state["rng"])
        n = sum(1 for key in state if key.startswith("y"))
        self._parts = []
        for i in range(n):
            n_inputs = sum(1 for key in state if key.startswith(f"x{i}."))
            xs = [state[f"x{i}.{k}"] for k in range(n_inputs)]
            self._parts.append((xs, state[f"y{i}"]))
        if any(len(y) > self.size // max(n, 1) for _, y in self._parts):
            self._thin()

    def _thin(self) -> None:
        share = self.size // max(len(self._parts), 1)
        thinned = []
        for xs, y in self._parts:
            keep = torch.randperm(len(y), generator=self._gen)[:share]
            thinned.append(([x[keep] for x in xs], y[keep]))
        self._parts = thinned

    def mix(self, inputs: Sequence[Tensor], labels: Tensor) -> tuple[list[Tensor], Tensor]:
        """The new examples followed by every remembered one."""
        xs = [torch.cat([x, *(p[0][i] for p in self._parts)]) for i, x in enumerate(inputs)]
        return xs, torch.cat([labels, *(p[1] for p in self._parts)])


# ------------------------------------------------------------- top-ups of a run directory


@dataclass(frozen=True)
class Continual:
    """A top-up of run ``run`` (``--continue-from``): with EWC of strength ``ewc``
    (``--ewc``) and/or ``replay`` entries of its training split (``--replay``)."""

    run: Path
    ewc: float | None = None
    replay: int | None = None

    def __post_init__(self) -> None:
        if self.ewc is not None and not (self.ewc >= 0 and math.isfinite(self.ewc)):
            raise ConfigError(f"must be a finite number >= 0, got {self.ewc}", "--ewc")
        if self.replay is not None and self.replay < 1:
            raise ConfigError(f"must be >= 1, got {self.replay}", "--replay")

    def run_dir(self) -> RunDir:
        """The run continued from; :class:`DataError` naming its ``model.json`` if it is
        not a run dir."""
        run = RunDir(self.run)
        if not run.model_json.is_file():
            raise DataError("not a run dir (no model.json)", run.model_json)
        return run


@dataclass(frozen=True)
class ParentRun:
    """The run a top-up continues from: its dir, ``model.json``, ``config.yaml`` and the
    files and fractions of its training split."""

    root: Path
    info: ModelInfo
    config: RunConfig
    splits: DataSplits

    @property
    def preprocess(self) -> Preprocess:
        """The run's standardisation, which the top-up keeps."""
        return Preprocess.load(RunDir(self.root).preprocess)

    def record(self, spec: Continual) -> ParentRecord:
        """``model.json``'s ``parent`` of a top-up of this run."""
        return ParentRecord(
            run=str(self.root.resolve()),
            weights_sha256=sha256sum(self.root / self.info.weights),
            ewc=spec.ewc,
            replay=spec.replay,
        )

    def train_data(self, preprocess: Preprocess, *, batch_size: int, bucketing: bool) -> JetDataset:
        """The run's training split, in file order (its data config, ``preprocess``)."""
        return JetDataset(
            self.splits.train,
            self.config.data,
            preprocess,
            split="train",
            split_fractions=self.splits.fractions("train", self.config.split.fractions),
            shuffle=False,
            bucketing=bucketing,
            batch_size=batch_size,
            buffer_size=max(batch_size, 10_000),
            seed=self.config.train.seed,
        )


def _plain(value: Any) -> Any:
    """A config value as JSON-plain data (what ``model.json`` / ``config.yaml`` hold)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return json.loads(json.dumps(value))


def parent_run(
    spec: Continual, config: ExperimentConfig, model: ModelSpec, network_sha256: str | None
) -> ParentRun:
    """Read ``spec.run`` and check that the experiment (``config``, its resolved ``model``)
    tops it up: a torch model of the same name and options (network file: the same sha256),
    the same inputs, classes and task; EWC needs a classifier. Raises :class:`DataError`
    for a missing or unreadable run, :class:`ConfigError` (key ``--continue-from``, or the
    flag) for a mismatch."""
    run = spec.run_dir()
    info = ModelInfo.read(run.model_json)
    parent = validate_experiment(load_yaml(run.config), str(run.config), RunConfig)
    theirs = None if info.network is None else info.network.sha256
    differences = [
        (what, a, b)
        for what, a, b in (
            ("model", info.name, model.name),
            ("model options", info.options, _plain(model.options)),
            ("network file sha256", theirs, network_sha256),
            ("task", info.task, config.train.task),
            ("inputs", _plain(parent.data.inputs), _plain(config.data.inputs)),
            ("labels", _plain(parent.data.labels), _plain(config.data.labels)),
        )
        if a != b
    ]
    if differences:
        what, a, b = differences[0]
        raise ConfigError(
            f"the experiment's {what} ({_short(b)}) differ from those of {spec.run} "
            f"({_short(a)}): a top-up continues the same model on the same inputs",
            "--continue-from",
        )
    if not info.weights.endswith(".pt"):
        raise ConfigError(
            f"{spec.run} is not a torch model: nothing to continue", "--continue-from"
        )
    if spec.ewc is not None and config.train.task != "classification":
        raise ConfigError("EWC's Fisher needs a classifier (train.task: classification)", "--ewc")
    if spec.replay is not None and config.train.task == "anomaly":
        raise ConfigError("replay tops up a classifier or a regression", "--replay")
    splits = DataSplits(
        expand_files(parent.files),
        expand_files(parent.files_val or parent.files),
        {},
        explicit=parent.files_val is not None,
    )
    return ParentRun(run.root, info, parent, splits)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fisher_batches(
    parent: ParentRun, preprocess: Preprocess, input_names: Sequence[str]
) -> Iterator[LabelledBatch]:
    """The parent's training split in batches of :data:`FISHER_BATCH` (for EWC)."""
    data = parent.train_data(preprocess, batch_size=FISHER_BATCH, bucketing=True)
    for batch in data:
        assert batch.label is not None  # a classifier's training data has labels
        tensors = batch.tensors()
        yield [tensors[name] for name in input_names], batch.label


def replay_table(parent: ParentRun, preprocess: Preprocess, n: int, seed: int) -> Table:
    """``n`` entries of the parent's training split, drawn at random (seeded) with each
    entry equally likely, holding at most ``n`` + one chunk in memory (a random key per
    entry; the ``n`` smallest are kept). Raises :class:`ConfigError` (``--replay``) when
    the split has fewer."""
    data = parent.train_data(preprocess, batch_size=1, bucketing=False)
    rng = np.random.default_rng(seed)
    kept: Table | None = None
    keys = np.zeros(0)
    total = 0
    for table in iter_tables(data.units, data.transform, data.chunk_size, data.files_at_once):
        total += len(table)
        both = table if kept is None else Table.concatenate([kept, table])
        keys = np.concatenate([keys, rng.random(len(table))])
        order = np.argsort(keys, kind="stable")[:n]
        kept, keys = both.take(order), keys[order]
    if kept is None or total < n:
        raise ConfigError(
            f"{parent.root}'s training split has {total} entries, fewer than {n}", "--replay"
        )
    return kept


class ReplayBatches:
    """The replayed entries (a :class:`Table`) cut, every epoch, into shuffled batches of
    ``batch_size`` that :meth:`mix` places evenly between the new training batches."""

    def __init__(
        self,
        table: Table,
        preprocess: Preprocess,
        *,
        batch_size: int,
        fixed_length: bool,
        seed: int,
    ) -> None:
        self.table, self.preprocess = table, preprocess
        self.batch_size, self.fixed_length, self.seed = batch_size, fixed_length, seed

    def __len__(self) -> int:
        """Replay batches per epoch."""
        return -(-len(self.table) // self.batch_size)

    def batches(self, epoch: int) -> list[Batch]:
        """This epoch's replay batches (a permutation of the entries from ``(seed, epoch)``)."""
        order = np.random.default_rng((self.seed, epoch, 1)).permutation(len(self.table))
        return [
            pad_table(
                self.table,
                self.preprocess,
                fixed_length=self.fixed_length,
                index=order[start : start + self.batch_size],
            )
            for start in range(0, len(order), self.batch_size)
        ]

    def mix(self, new: Iterator[Batch], epoch: int, expected: int) -> Iterator[Batch]:
        """The new batches with this epoch's replay batches between them: replay batch
        ``k`` of ``R`` after new batch ``(k + 1) * expected // (R + 1)`` (``expected``: the
        new batches per epoch, estimated); those left when ``new`` ends come last."""
        old = self.batches(epoch)
        after = [(k + 1) * expected // (len(old) + 1) for k in range(len(old))]
        k = 0
        for i, batch in enumerate(new):
            while k < len(old) and after[k] <= i:
                yield old[k]
                k += 1
            yield batch
        yield from old[k:]


def check_observers(table: Table, needed: Sequence[str]) -> None:
    """The replayed entries carry every observer the regularisers read."""
    missing = [name for name in needed if name not in table.observers]
    if missing:
        raise ConfigError(
            f"the parent run's data config reads no observer {', '.join(missing)}, which "
            "train.regularisers need",
            "--replay",
        )
