"""The jets a refinement reads: per-jet values to refine, generator-level conditions, and
the pairing of FastSim with FullSim jets of the same generator events.

An input file is a Parquet file with one row per jet: a jet shard of ``heptagon generate``
(a flavour sample: it has the generator-level jet branches of
:mod:`heptagon.generate.fastsim`) or a ``heptagon predict`` output (``score_*`` columns)
that kept ``event``, ``jet_gen_pt``, ``jet_gen_eta``, ``jet_gen_phi`` and the
``label_*`` branches as observers. Files are paired by name (``shards/b_0000.parquet``
of the FullSim sample with the same file of the FastSim one: the same Pythia seed, so
the same events) and jets by event and generator-level jet (``dR < 0.2`` between the
generator jets, identical for the same jet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from heptagon.data.io import expand_files
from heptagon.errors import DataError
from heptagon.generate.fastsim import GEN_MATCH_DR
from heptagon.generate.jets import FLAVOURS
from heptagon.physics.kinematics import delta_r

__all__ = [
    "CONDITION_BRANCHES",
    "N_CONDITIONS",
    "Jets",
    "pair_files",
    "paired_jets",
    "read_jets",
]

#: the branches the conditions and the pairing are made of
CONDITION_BRANCHES = ("event", "jet_gen_pt", "jet_gen_eta", "jet_gen_phi")
#: log generator pT, generator eta, one-hot flavour (FLAVOURS order)
N_CONDITIONS = 2 + len(FLAVOURS)


@dataclass(frozen=True)
class Jets:
    """The jets of one file: ``values`` (n, features) of the refined columns and what the
    conditions and the pairing need. ``flavour`` indexes ``FLAVOURS`` (-1: no label)."""

    event: np.ndarray
    gen_pt: np.ndarray
    gen_eta: np.ndarray
    gen_phi: np.ndarray
    flavour: np.ndarray
    values: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        """Jets with a generator-level jet (the others cannot be conditioned or paired)."""
        return np.asarray(self.gen_pt > 0)

    def conditions(self) -> np.ndarray:
        """(n, N_CONDITIONS) float32: log(gen pT / GeV), gen eta, one-hot flavour; an
        unmatched jet's log pT is 0."""
        out = np.zeros((self.event.size, N_CONDITIONS), dtype=np.float32)
        out[:, 0] = np.log(np.where(self.matched, self.gen_pt, 1.0))
        out[:, 1] = self.gen_eta
        has = self.flavour >= 0
        out[np.flatnonzero(has), 2 + self.flavour[has]] = 1.0
        return out

    def take(self, index: np.ndarray) -> Jets:
        """The jets at ``index``."""
        return Jets(
            self.event[index],
            self.gen_pt[index],
            self.gen_eta[index],
            self.gen_phi[index],
            self.flavour[index],
            self.values[index],
        )


def read_jets(path: Path, columns: Sequence[str]) -> tuple[pa.Table, Jets]:
    """The table of a Parquet file and its :class:`Jets` (``columns`` the values);
    :class:`DataError` naming the file and the missing branch."""
    if path.suffix.lower() != ".parquet":
        raise DataError("refine reads Parquet files (heptagon generate / predict output)", path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"cannot read the Parquet file: {err}", path) from None
    for name in (*CONDITION_BRANCHES, *columns):
        if name not in table.column_names:
            raise DataError(
                "missing (refine needs the generator-level jet branches of a flavour "
                "sample and the refined columns)",
                path,
                name,
            )
    labels = [f"label_{f}" for f in FLAVOURS]
    onehot = np.stack(
        [
            table[name].to_numpy().astype(bool)
            if name in table.column_names
            else np.zeros(table.num_rows, bool)
            for name in labels
        ],
        axis=1,
    )
    flavour = np.where(onehot.any(axis=1), onehot.argmax(axis=1), -1)

    def col(name: str) -> np.ndarray:
        return np.asarray(table[name].to_numpy(), dtype=np.float64)

    values = np.stack([col(c) for c in columns], axis=1) if columns else np.zeros((0, 0))
    if not np.isfinite(values).all():
        raise DataError("non-finite values in the refined columns", path)
    jets = Jets(
        event=table["event"].to_numpy().astype(np.int64),
        gen_pt=col("jet_gen_pt"),
        gen_eta=col("jet_gen_eta"),
        gen_phi=col("jet_gen_phi"),
        flavour=flavour,
        values=values,
    )
    return table, jets


def pair_files(full: str, fast: str) -> list[tuple[Path, Path]]:
    """(FullSim file, FastSim file) pairs of the same name from two dataset dirs, files or
    globs; :class:`DataError` when no name is in both."""
    by_name = {p.name: p for p in expand_files(full)}
    pairs = [(by_name[p.name], p) for p in expand_files(fast) if p.name in by_name]
    if not pairs:
        raise DataError("no file of the same name in the FullSim and FastSim inputs", fast)
    return pairs


def _pair_rows(full: Jets, fast: Jets) -> tuple[np.ndarray, np.ndarray]:
    """Indices (full, fast) of jets of the same event whose generator-level jets are the
    nearest within ``dR < GEN_MATCH_DR`` (each jet used once)."""
    by_event: dict[int, list[int]] = {}
    for j in np.flatnonzero(fast.matched):
        by_event.setdefault(int(fast.event[j]), []).append(int(j))
    used: set[int] = set()
    out_full, out_fast = [], []
    for i in np.flatnonzero(full.matched):
        cands = [j for j in by_event.get(int(full.event[i]), []) if j not in used]
        if not cands:
            continue
        dr = delta_r(full.gen_eta[i], full.gen_phi[i], fast.gen_eta[cands], fast.gen_phi[cands])
        best = int(np.argmin(dr))
        if dr[best] < GEN_MATCH_DR:
            used.add(cands[best])
            out_full.append(int(i))
            out_fast.append(cands[best])
    return np.asarray(out_full, dtype=np.int64), np.asarray(out_fast, dtype=np.int64)


def paired_jets(full: str, fast: str, columns: Sequence[str]) -> tuple[Jets, Jets]:
    """The paired FullSim and FastSim jets (row ``i`` of each the same generator jet)."""
    fulls, fasts = [], []
    for full_file, fast_file in pair_files(full, fast):
        a, b = read_jets(full_file, columns)[1], read_jets(fast_file, columns)[1]
        ia, ib = _pair_rows(a, b)
        fulls.append(a.take(ia))
        fasts.append(b.take(ib))
    return _concat(fulls), _concat(fasts)


def _concat(parts: list[Jets]) -> Jets:
    return Jets(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in Jets.__dataclass_fields__)
    )
