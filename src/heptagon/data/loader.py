"""The streaming loader: files -> shuffled, bucketed, padded batches of tensors.

:class:`JetDataset` is a torch ``IterableDataset`` yielding whole :class:`Batch` es (use it
with ``DataLoader(dataset, batch_size=None)``, see :func:`make_dataloader`). Per epoch:

1. the files' units (Parquet row groups, or ranges of ``chunk_size`` entries) are
   shuffled with ``(seed, epoch)`` and dealt round-robin to the ``world_size x num_workers``
   readers (DDP rank from ``torch.distributed`` if initialised, DataLoader worker id);
2. each reader reads ``files_at_once`` units at a time, a chunk from each in turn, keeps
   its split (docs/design.md's deterministic rule), and transforms the chunk
   (:class:`~heptagon.data.transform.Transform`);
3. tables go into a buffer of ``buffer_size`` entries; a full buffer is shuffled and, with
   ``bucketing``, sorted by particle multiplicity and cut into batches (whose order is
   shuffled), each padded only to its longest jet (at most ``length``); the entries that
   do not fill a batch stay in the buffer. Without bucketing batches are padded to
   ``length``.

Memory is bounded by the buffer and ``files_at_once`` chunks, whatever the dataset size.
``in_memory=True`` instead keeps every transformed entry of the reader after the first
epoch and shuffles them all (for small data; keep workers alive with
``persistent_workers=True`` or use ``num_workers=0``).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from heptagon.data.augment import AugmentingTransform, AugmentSpec
from heptagon.data.config import DataConfig
from heptagon.data.io import Unit, expand_files, open_reader
from heptagon.data.jagged import Jagged, pad_index
from heptagon.data.pipeline import iter_tables
from heptagon.data.preprocess import Preprocess
from heptagon.data.split import Split, SplitName
from heptagon.data.transform import Table, Transform

__all__ = ["Batch", "JetDataset", "make_dataloader", "mask_name", "pad_table"]


@dataclass
class Batch:
    """One batch.

    ``inputs[group]``: float32 ``(batch, n_vars, n_particles)`` for jagged groups,
    ``(batch, n_vars)`` for per-entry groups; ``masks[group]``: float32
    ``(batch, 1, n_particles)``, 1 for real particles (jagged groups with ``mask``);
    ``label``: int64 class indices ``(batch,)`` or float32 targets ``(batch, n_targets)``,
    None without labels; ``weight``: float32 ``(batch,)``; ``observers``: numpy arrays.
    """

    inputs: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    label: torch.Tensor | None
    weight: torch.Tensor
    observers: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.weight)

    def _map(self, fn: Any) -> Batch:
        return Batch(
            {k: fn(v) for k, v in self.inputs.items()},
            {k: fn(v) for k, v in self.masks.items()},
            None if self.label is None else fn(self.label),
            fn(self.weight),
            self.observers,
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch with every tensor on ``device``."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """Pinned copy (called by ``DataLoader(pin_memory=True)``)."""
        return self._map(lambda t: t.pin_memory())

    def tensors(self) -> dict[str, torch.Tensor]:
        """Input groups and masks under the names models take (``model.input_names``):
        a jagged group's mask is named by :func:`mask_name` (``pf_features`` -> ``pf_mask``)."""
        out = dict(self.inputs)
        for group, mask in self.masks.items():
            out.setdefault(mask_name(group), mask)
        return out


def mask_name(group: str) -> str:
    """The model-side name of a jagged group's mask: its prefix + ``_mask``; groups with the
    same prefix (``pf_points``, ``pf_features``, ``pf_vectors``) share one mask."""
    return f"{group.split('_', 1)[0]}_mask"


def pad_table(
    table: Table,
    preprocess: Preprocess,
    fixed_length: bool = False,
    index: np.ndarray | None = None,
) -> Batch:
    """Pad the entries ``index`` of a table (None: all, in order) into a :class:`Batch`:
    jagged groups to the longest of those entries (``fixed_length``: to the group's
    ``length``). The one place padding happens.

    Gathers straight from the table, without an intermediate copy of the entries; groups
    of one particle collection (the same counts) share the slot computation and the mask.
    """
    if index is None:
        index = np.arange(len(table))
    inputs, masks = {}, {}
    # slots and mask, computed once per particle collection (groups with equal counts)
    shared: list[tuple[np.ndarray, int, bool, np.ndarray, torch.Tensor]] = []
    for group, params in preprocess.inputs.items():
        values = table.inputs[group]
        if not isinstance(values, Jagged):
            inputs[group] = torch.from_numpy(values[index])
            continue
        assert params.length is not None  # a jagged group has one
        counts = values.counts[index]
        longest = params.length if fixed_length else max(1, int(counts.max(initial=0)))
        wrap = params.pad_mode == "wrap"
        found = next(
            (
                slots
                for slots in shared
                if slots[1:3] == (longest, wrap)
                and (slots[0] is values.counts or np.array_equal(slots[0], values.counts))
            ),
            None,
        )
        if found is None:
            where = pad_index(counts, values.starts[index], longest, wrap)
            real = np.arange(longest)[None, None, :] < counts[:, None, None]
            found = (values.counts, longest, wrap, where, torch.from_numpy(real.astype(np.float32)))
            shared.append(found)
        where, mask = found[3], found[4]
        pad_values = np.array([v.pad_value for v in params.vars], dtype=np.float32)
        inputs[group] = torch.from_numpy(values.pad(where, pad_values))
        if params.mask:
            masks[group] = mask
    label = None if table.label is None else torch.from_numpy(table.label[index])
    observers = {k: v[index] for k, v in table.observers.items()}
    return Batch(inputs, masks, label, torch.from_numpy(table.weight[index]), observers)


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class JetDataset(IterableDataset[Batch]):
    """Streaming batches from ROOT / Parquet / HDF5 / npz files through a data config.

    Parameters
    ----------
    files: paths, globs or dataset dirs (their ``shards/``).
    config: the data config.
    preprocess: the standardisation (:func:`~heptagon.data.preprocess.compute_preprocess`,
        or ``Preprocess.load("preprocess.json")``).
    split: ``"train"``, ``"val"``, ``"test"`` or None for every entry.
    split_fractions: train / val / test fractions (docs/design.md default 0.7 / 0.15 / 0.15).
    batch_size, shuffle, bucketing, drop_last: as in the module docstring; without
        ``shuffle`` the order is that of the files (within a buffer, sorted by
        multiplicity if ``bucketing``).
    buffer_size: entries held for shuffling and bucketing.
    chunk_size: entries read at once; also the unit size of non-Parquet files.
    files_at_once: units read in turn by each reader.
    in_memory: keep all entries after the first epoch (small data).
    with_labels: read the labels (False for inference on unlabelled files).
    seed: base of every random choice; with ``set_epoch`` (or the count of iterations)
        it makes each epoch's order reproducible.
    augment: physics augmentation of the jets (:mod:`heptagon.data.augment`), a new draw
        per epoch from ``seed``; the training split only, and not with ``in_memory``.
    """

    def __init__(
        self,
        files: str | Path | Sequence[str | Path],
        config: DataConfig,
        preprocess: Preprocess,
        *,
        split: SplitName | None = "train",
        split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        batch_size: int = 256,
        shuffle: bool = True,
        bucketing: bool = True,
        drop_last: bool = False,
        buffer_size: int = 50_000,
        chunk_size: int = 10_000,
        files_at_once: int = 4,
        in_memory: bool = False,
        with_labels: bool = True,
        seed: int = 0,
        augment: AugmentSpec | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1 or buffer_size < batch_size or chunk_size < 1 or files_at_once < 1:
            raise ValueError("need 1 <= batch_size <= buffer_size, chunk_size, files_at_once >= 1")
        spec = augment if augment is not None and augment.active else None
        if spec is not None and (split != "train" or in_memory):
            raise ValueError("augmentation is for the streamed training split only")
        self.files = expand_files(files)
        self.config, self.preprocess = config, preprocess
        options: dict[str, Any] = {
            "split": Split(split_fractions),
            "split_name": split,
            "with_labels": with_labels,
        }
        self.transform = (
            Transform(config, preprocess, **options)
            if spec is None
            else AugmentingTransform(config, preprocess, augment=spec, seed=seed, **options)
        )
        self.batch_size, self.shuffle, self.bucketing = batch_size, shuffle, bucketing
        self.drop_last, self.buffer_size, self.chunk_size = drop_last, buffer_size, chunk_size
        self.files_at_once, self.in_memory, self.seed = files_at_once, in_memory, seed
        self.epoch = 0
        self._memory: Table | None = None
        self.units: list[Unit] = []
        for path in self.files:  # fail early on a missing / corrupt file or a missing branch
            with open_reader(path, config.treename) as reader:
                reader.check_branches(self.transform.branches(reader.branches))
                self.units.extend(reader.units(chunk_size))

    @property
    def split_info(self) -> dict[str, Any]:
        """The split fractions and rule, to save in the run dir."""
        return self.transform.split.to_dict()

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the next iteration's order (then it counts up)."""
        self.epoch = epoch

    def _my_units(self, rng: np.random.Generator) -> list[Unit]:
        units = self.units
        if self.shuffle:
            units = [units[i] for i in rng.permutation(len(units))]
        rank, world = _rank_and_world()
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return units[rank * workers + worker :: world * workers]

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng((self.seed, self.epoch))
        if isinstance(self.transform, AugmentingTransform):
            self.transform.epoch = self.epoch
        self.epoch += 1
        if self.in_memory and self._memory is not None:
            yield from self._batches(self._memory, rng, final=True)
            return
        tables = iter_tables(
            self._my_units(rng), self.transform, self.chunk_size, self.files_at_once
        )
        buffer: list[Table] = []
        held = 0
        for table in tables:
            buffer.append(table)
            held += len(table)
            if held >= self.buffer_size and not self.in_memory:
                rest = yield from self._batches(Table.concatenate(buffer), rng, final=False)
                buffer, held = [rest], len(rest)
        self.transform.check_selected()
        if held:
            everything = Table.concatenate(buffer)
            if self.in_memory:
                self._memory = everything
            yield from self._batches(everything, rng, final=True)

    def _batches(
        self, table: Table, rng: np.random.Generator, *, final: bool
    ) -> Generator[Batch, None, Table]:
        """Batches of the table; returns the entries that did not fill a batch."""
        n = len(table)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        n_used = n if final else n - n % self.batch_size
        used, rest = order[:n_used], order[n_used:]
        if self.bucketing:
            used = used[np.argsort(table.multiplicity[used], kind="stable")]
        starts = np.arange(0, n_used, self.batch_size)
        if self.shuffle:
            starts = rng.permutation(starts)
        for start in starts:
            index = used[start : start + self.batch_size]
            if len(index) < self.batch_size and self.drop_last:
                continue
            yield pad_table(table, self.preprocess, fixed_length=not self.bucketing, index=index)
        return table.take(rest)


def make_dataloader(
    dataset: JetDataset, num_workers: int = 0, pin_memory: bool = False
) -> DataLoader[Batch]:
    """A ``DataLoader`` over a :class:`JetDataset` (which batches itself)."""
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
