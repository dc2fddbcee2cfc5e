"""Train a refinement (FastSim -> FullSim) and apply it (docs/refinement.md).

The loss is the per-jet regression of the refined FastSim value to its paired FullSim
value (mean squared error in the standardised latent space of
:class:`~heptagon.models.refine.RefineNet`) under the constraint that a distribution
term between refined and FullSim values of a batch stays below ``mmd_max``, solved with
MDMM (:mod:`heptagon.train.mdmm`): the multiplier is learned instead of hand-tuned (Adam,
at its own ``multiplier_lr``: the multiplier has to travel to the size of the weight the
constraint needs, often 1-100, within a few hundred steps).

The distribution term (:func:`distance`) is, by default, *conditional*: the MMD of the
joint (values, generator pT and eta) within each hadron flavour
(:func:`~heptagon.train.mdmm.conditional_mmd`), because the agreement that matters is
per flavour and pT bin, which the MMD of the batch's marginals does not see (one flavour
too high and another too low can cancel). Both use the paired estimate (refined jet
``i`` and FullSim jet ``i`` are the same generator jet: their cross term is left out,
else bringing pairs closer would lower the "distribution" term like a second
regression). ``mmd_max`` defaults to 0, the mean of the unbiased estimate for equal
distributions: a bound at one batch's noise lets the regression, whose optimum is the
conditional mean ``E[FullSim | FastSim]``, narrow the distributions (measured:
``benchmarks/refinement.py``). ``mmd_weight`` replaces the constraint by a fixed-weight
sum (the scan MDMM saves; ``benchmarks/refinement.py`` compares them).

The refinement has its own small loop rather than :class:`heptagon.train.trainer.Trainer`:
its batches are pairs of jets from two samples, and its loss needs the multiplier
updated by gradient ascent beside the model, neither of which the Trainer's data config
and loss specs express. The model is saved as one checkpoint (tensors and plain values,
read back with ``weights_only=True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from heptagon.apps.refine.jets import N_CONDITIONS, paired_jets, read_jets
from heptagon.cpu import configure_threads
from heptagon.errors import ConfigError, DataError
from heptagon.io import atomic_path, make_dir
from heptagon.logs import get_logger
from heptagon.models.refine import RefineNet
from heptagon.train.mdmm import MDMM, MaxConstraint, conditional_mmd, mmd
from heptagon.train.rundir import load_checkpoint

__all__ = ["REFINED_SUFFIX", "RefineOptions", "Refiner", "apply_refiner", "train_refiner"]

#: a refined column is written as ``<column><REFINED_SUFFIX>``
REFINED_SUFFIX = "_refined"
_FORMAT = "heptagon-refine-1"
_log = get_logger("refine")


@dataclass(frozen=True)
class RefineOptions:
    """What a refinement is trained with."""

    columns: tuple[str, ...]
    bounded: tuple[str, ...] = ()
    epochs: int = 30
    batch: int = 256
    lr: float = 1e-3
    width: int = 64
    blocks: int = 2
    mmd_max: float | None = None
    mmd_weight: float | None = None
    conditional: bool = True
    damping: float = 10.0
    multiplier_lr: float = 1.0
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if not self.columns:
            raise ConfigError("name at least one column to refine", key="columns")
        if len(set(self.columns)) != len(self.columns):
            raise ConfigError("a column is named twice", key="columns")
        unknown = sorted(set(self.bounded) - set(self.columns))
        if unknown:
            raise ConfigError(f"not a refined column: {', '.join(unknown)}", key="bounded")
        if self.multiplier_lr <= 0:
            raise ConfigError("must be positive", key="multiplier_lr")
        for key in ("epochs", "batch", "width", "blocks"):
            if getattr(self, key) < 1:
                raise ConfigError("must be at least 1", key=key)
        if self.mmd_max is not None and self.mmd_weight is not None:
            raise ConfigError("--mmd-max (MDMM) or --mmd-weight (fixed sum), not both", "mmd_max")

    @property
    def bound(self) -> float:
        """The MDMM constraint's bound on the distribution term: ``mmd_max``, by default
        0, the mean of the unbiased MMD for equal distributions (the average over the
        batches as close to FullSim as FullSim's own)."""
        return 0.0 if self.mmd_max is None else self.mmd_max


@dataclass
class Refiner:
    """A trained refinement: the network and what it refines."""

    net: RefineNet
    columns: tuple[str, ...]
    bounded: tuple[str, ...]
    history: list[dict[str, float]] = field(default_factory=list)
    mmd_max: float | None = None
    pairs: int = 0
    conditional: bool = True

    def refine(self, values: np.ndarray, conditions: np.ndarray) -> np.ndarray:
        """Refined ``values`` (n, features), row-aligned with the inputs."""
        self.net.eval()
        with torch.no_grad():
            out = self.net(
                torch.as_tensor(values, dtype=torch.float32),
                torch.as_tensor(conditions, dtype=torch.float32),
            )
        return np.asarray(out.numpy(), dtype=np.float64)

    def save(self, path: Path) -> None:
        """Write the checkpoint atomically."""
        make_dir(path.parent)
        state = {
            "format": _FORMAT,
            "state": self.net.state_dict(),
            "columns": list(self.columns),
            "bounded": list(self.bounded),
            "width": self.net.embed.out_features,
            "blocks": len(self.net.blocks),
            "history": self.history,
            "mmd_max": self.mmd_max,
            "pairs": self.pairs,
            "conditional": self.conditional,
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    @staticmethod
    def load(path: Path) -> Refiner:
        """Read a checkpoint written by :meth:`save`; :class:`DataError` otherwise."""
        state = load_checkpoint(path)
        if state.get("format") != _FORMAT:
            raise DataError("not a heptagon refine model", path, "format")
        columns, bounded = tuple(state["columns"]), tuple(state["bounded"])
        net = RefineNet(
            len(columns),
            N_CONDITIONS,
            [c in bounded for c in columns],
            width=int(state["width"]),
            blocks=int(state["blocks"]),
        )
        try:
            net.load_state_dict(state["state"])
        except RuntimeError:
            raise DataError("the weights do not fit the network", path, "state") from None
        return Refiner(
            net, columns, bounded, state["history"], state["mmd_max"], state["pairs"],
            state.get("conditional", False),  # models from before the conditional term
        )  # fmt: skip


def _standardise(net: RefineNet, target: torch.Tensor, cond: torch.Tensor) -> None:
    """Set the network's latent and condition standardisation from the FullSim values."""
    with torch.no_grad():
        z = net.to_latent(target)
        net.set_standardisation(z.mean(0), z.std(0), cond.mean(0), cond.std(0))


def _kinematics(net: RefineNet, cond: torch.Tensor) -> torch.Tensor:
    """The standardised log generator pT and eta of the conditions."""
    return (cond[:, :2] - net.c_shift[:2]) / net.c_scale[:2]


def _groups(cond: torch.Tensor) -> torch.Tensor:
    """The hadron flavour index of each row of the conditions (-1: no label)."""
    onehot = cond[:, 2:]
    return torch.where(onehot.sum(1) > 0, onehot.argmax(1), -1)


def distance(
    net: RefineNet, z: torch.Tensor, y: torch.Tensor, cond: torch.Tensor, conditional: bool
) -> torch.Tensor:
    """The distribution term between the standardised latent values ``z`` (refined) and
    ``y`` (FullSim) of the same jets, whose conditions are ``cond``: the paired MMD of the
    joint (values, standardised log generator pT and eta) within each flavour
    (:func:`~heptagon.train.mdmm.conditional_mmd`), or, not ``conditional``, the paired
    MMD of the values over all jets."""
    if not conditional:
        return mmd(z, y, paired=True)
    return conditional_mmd(z, y, _kinematics(net, cond), _groups(cond))


def train_refiner(full: str, fast: str, opts: RefineOptions) -> Refiner:
    """Train a refinement on the paired jets of the FullSim and FastSim inputs (dataset
    dirs, files or globs); one log line per epoch."""
    configure_threads(opts.threads)
    a, b = paired_jets(full, fast, opts.columns)
    n = a.event.size
    if n < 2:
        raise DataError(f"{n} paired jets: too few to train on", fast)
    torch.manual_seed(opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)
    net = RefineNet(
        len(opts.columns),
        N_CONDITIONS,
        [c in opts.bounded for c in opts.columns],
        width=opts.width,
        blocks=opts.blocks,
    )
    x = torch.as_tensor(b.values, dtype=torch.float32)
    y = torch.as_tensor(a.values, dtype=torch.float32)
    cond = torch.as_tensor(b.conditions())
    _standardise(net, y, cond)
    y_latent = net.standardised(net.to_latent(y)).detach()
    mdmm = None
    params: list[dict[str, Any]] = [{"params": list(net.parameters())}]
    if opts.mmd_weight is None:
        mdmm = MDMM([MaxConstraint(opts.bound, damping=opts.damping)])
        params += mdmm.parameter_groups(opts.multiplier_lr)
    optimiser = torch.optim.Adam(params, lr=opts.lr)
    refiner = Refiner(
        net, opts.columns, opts.bounded, mmd_max=None if mdmm is None else opts.bound,
        pairs=n, conditional=opts.conditional,
    )  # fmt: skip
    for epoch in range(opts.epochs):
        net.train()
        perm = torch.randperm(n, generator=gen)
        sums = np.zeros(3)
        batches = 0
        for start in range(0, n, opts.batch):
            idx = perm[start : start + opts.batch]
            if idx.numel() < 2:
                continue
            z = net.standardised(net.forward_latent(x[idx], cond[idx]))
            regression = (z - y_latent[idx]).pow(2).mean()
            dist = distance(net, z, y_latent[idx], cond[idx], opts.conditional)
            if mdmm is None:
                loss = regression + (opts.mmd_weight or 0.0) * dist
            else:
                loss = mdmm.lagrangian(regression, [dist])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            sums += [t.item() for t in (loss.detach(), regression.detach(), dist.detach())]
            batches += 1
        loss_, mse_, mmd_ = (float(v) for v in sums / max(batches, 1))
        lam = mdmm.multipliers()[0] if mdmm is not None else float(opts.mmd_weight or 0.0)
        refiner.history.append(
            {"epoch": epoch, "loss": loss_, "mse": mse_, "mmd": mmd_, "multiplier": lam}
        )
        _log.info(
            "epoch %d: loss %.4g, mse %.4g, mmd %.4g (max %s), multiplier %.4g",
            epoch, loss_, mse_, mmd_, "-" if mdmm is None else f"{opts.bound:.3g}", lam,
        )  # fmt: skip
    return refiner


def apply_refiner(refiner: Refiner, files: Sequence[Path], out: Path) -> list[Path]:
    """Write each input file to ``out/<name>`` with a ``<column>_refined`` column beside
    each refined column (same rows, same order; a jet without a generator-level jet keeps
    its FastSim value), atomically; every input is read and checked before any is
    written."""
    tables = [read_jets(f, refiner.columns) for f in files]
    make_dir(out)
    written = []
    for path, (table, jets) in zip(files, tables, strict=True):
        refined = jets.values.copy()
        m = jets.matched
        if m.any():
            refined[m] = refiner.refine(jets.values[m], jets.conditions()[m])
        for i, column in enumerate(refiner.columns):
            name = column + REFINED_SUFFIX
            array = pa.array(refined[:, i].astype(table[column].type.to_pandas_dtype()))
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, array)
            else:
                table = table.append_column(name, array)
        target = out / path.name
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)
        _log.info("%s: %d jets, %d refined", target, table.num_rows, int(m.sum()))
        written.append(target)
    return written
