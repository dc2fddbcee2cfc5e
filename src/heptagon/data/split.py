"""The deterministic train / validation / test split of docs/design.md.

Each entry gets a uniform number ``u`` in [0, 1) from a hash of (file stem, key), where
the key is the ``event`` branch if the file has one, else the entry's row index in the
file; ``u < f_train`` is training, ``u < f_train + f_val`` validation, the rest test. The
hash: ``salt = blake2b(stem, digest_size=8)`` (little-endian uint64), then
``u = splitmix64(key XOR salt) >> 11`` scaled by 2**-53. It depends on nothing else, so
adding files never moves an entry between splits, it is the same on every machine, and a
ROOT and a Parquet copy of a file (same stem: the name without its suffix) split alike.

Instead of the hash split, explicit file sets can be given (:func:`resolve_splits`, the
``--data-train`` / ``--data-val`` / ``--data-test`` options, weaver's ``name:glob`` groups
included): each set is then read whole as its split.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from heptagon.data.io import expand_files
from heptagon.data.sources import is_remote
from heptagon.errors import ConfigError

__all__ = [
    "DEFAULT_GROUP",
    "SPLITS",
    "DataSplits",
    "Split",
    "SplitName",
    "parse_groups",
    "resolve_splits",
]

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    # uint64 arithmetic wraps modulo 2**64 (array operations do not warn)
    x = x + np.array([0x9E3779B97F4A7C15], dtype=np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.array([0xBF58476D1CE4E5B9], dtype=np.uint64)
    x = (x ^ (x >> np.uint64(27))) * np.array([0x94D049BB133111EB], dtype=np.uint64)
    return np.asarray(x ^ (x >> np.uint64(31)))


@dataclass(frozen=True)
class Split:
    """Split fractions (train, val, test), summing to 1."""

    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)

    def __post_init__(self) -> None:
        if len(self.fractions) != 3 or min(self.fractions) < 0:
            raise ValueError("split fractions must be three non-negative numbers")
        if not np.isclose(sum(self.fractions), 1.0):
            raise ValueError(f"split fractions {self.fractions} do not sum to 1")

    def uniform(self, stem: str, keys: np.ndarray) -> np.ndarray:
        """The hash of each (file stem, key) as a float64 in [0, 1)."""
        salt = int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=8).digest(), "little")
        mixed = _splitmix64(keys.astype(np.int64).view(np.uint64) ^ np.uint64(salt))
        return (mixed >> np.uint64(11)).astype(np.float64) * 2.0**-53

    def mask(self, name: SplitName, stem: str, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` (of the file with stem ``stem``) belong to split ``name``."""
        edges = np.cumsum((0.0, *self.fractions))
        edges[-1] = np.inf
        i = SPLITS.index(name)
        u = self.uniform(stem, keys)
        return np.asarray((u >= edges[i]) & (u < edges[i + 1]))

    def to_dict(self) -> dict[str, Any]:
        """The fractions and the rule, for the run dir."""
        return {
            "fractions": dict(zip(SPLITS, self.fractions, strict=True)),
            "rule": (
                "u = (splitmix64(key XOR blake2b8(file stem)) >> 11) * 2**-53; key = 'event'"
                " branch, else row index in the file; train if u < f_train, val if u <"
                " f_train + f_val, else test"
            ),
        }


#: the fractions under which every entry of an explicit file set is in its own split
_ALL_IN: dict[SplitName, tuple[float, float, float]] = {
    "train": (1.0, 0.0, 0.0),
    "val": (0.0, 1.0, 0.0),
    "test": (0.0, 0.0, 1.0),
}
_GROUP = re.compile(r"^([A-Za-z0-9_.+-]+):(?!//)(.+)$")
#: the group name of entries given without ``name:``
DEFAULT_GROUP = "test"


def parse_groups(entries: Sequence[str | Path]) -> dict[str, list[str | Path]]:
    """weaver's ``name:glob`` groups: ``["qcd:/d/qcd_*.root", "/d/top.root"]`` ->
    ``{"qcd": ["/d/qcd_*.root"], "test": ["/d/top.root"]}`` (entries without a name go to
    :data:`DEFAULT_GROUP`; a URL's ``scheme://`` is not a name), in the order given."""
    groups: dict[str, list[str | Path]] = {}
    for entry in entries:
        match = None if isinstance(entry, Path) or is_remote(entry) else _GROUP.match(entry)
        name, source = (match.group(1), match.group(2)) if match else (DEFAULT_GROUP, entry)
        groups.setdefault(name, []).append(source)
    return groups


@dataclass(frozen=True)
class DataSplits:
    """The files each split reads: one file list split by the hash rule (``explicit``
    False: ``train``, ``val`` and ``test`` are the same files), or explicit file sets
    (weaver's ``--data-train``, ``--data-val``, ``--data-test``), each read whole;
    ``test`` maps a group name to its files."""

    train: list[Path]
    val: list[Path]
    test: dict[str, list[Path]]
    explicit: bool

    def files(self, name: SplitName) -> list[Path]:
        """The files of split ``name`` (the test split: every group's)."""
        if name == "test":
            return [f for files in self.test.values() for f in files]
        return self.train if name == "train" else self.val

    def fractions(
        self, name: SplitName, fractions: tuple[float, float, float]
    ) -> tuple[float, float, float]:
        """The split fractions to read split ``name`` with: the experiment's ``fractions``
        for the hash split; for an explicit file set, all of it in split ``name``."""
        return _ALL_IN[name] if self.explicit else fractions

    def recorded(self) -> dict[str, Any]:
        """The files as a run's ``config.yaml`` records them: ``files`` (the training
        files, or the hash split's), and for explicit sets ``files_val`` and ``files_test``
        (group name -> files)."""
        out: dict[str, Any] = {"files": [str(f) for f in self.train]}
        if self.explicit:
            out["files_val"] = [str(f) for f in self.val]
            out["files_test"] = {k: [str(f) for f in v] for k, v in self.test.items()}
        return out

    def rule(self, fractions: tuple[float, float, float]) -> str:
        """How the entries were split, for the run's ``config.yaml``."""
        if self.explicit:
            return "explicit files: --data-train, --data-val, --data-test (each read whole)"
        return str(Split(fractions).to_dict()["rule"])


def resolve_splits(
    data: str | Path | Sequence[str | Path] | None = None,
    *,
    train: Sequence[str | Path] = (),
    val: Sequence[str | Path] = (),
    test: Sequence[str | Path] = (),
) -> DataSplits:
    """The files of each split: ``data`` (hash split), or ``train`` and ``val`` (and
    optionally ``test``) as explicit file sets, each entry a path, glob, dataset dir, URL
    or weaver's ``name:glob``. Raises :class:`ConfigError` naming the option for a mix of
    the two or a missing set, :class:`DataError` for a source that matches nothing."""
    if data is not None and not isinstance(data, (str, Path)) and not data:
        data = None
    if data is not None:
        if train or val or test:
            raise ConfigError(
                "give either --data (hash split) or --data-train / --data-val / --data-test",
                "--data",
            )
        files = expand_files(data)
        return DataSplits(files, files, {DEFAULT_GROUP: files}, explicit=False)
    if not (train or val or test):
        raise ConfigError(
            "no input files: give --data (split by the hash rule), or --data-train and "
            "--data-val",
            "--data",
        )
    for option, entries in (("--data-train", train), ("--data-val", val)):
        if not entries:
            raise ConfigError("needed without --data (explicit train / val files)", option)

    def flat(entries: Sequence[str | Path]) -> list[Path]:
        return [f for sources in parse_groups(entries).values() for f in expand_files(sources)]

    groups = {name: expand_files(sources) for name, sources in parse_groups(test).items()}
    return DataSplits(flat(train), flat(val), groups, explicit=True)
