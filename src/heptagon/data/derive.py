"""Derived datasets: the columns that a parameterised network, domain adaptation and weak
supervision train on, made from generated samples (``heptagon data pnn | domains | mix``).

Each function reads whole Parquet dataset dirs (their ``shards/``) and writes a NEW dataset
dir: one output shard per input shard (memory follows the largest shard), with a
``derived.json`` (:class:`~heptagon.artifacts.derived.DerivedDataset`) recording the
operation, its settings, the sha256 of each input's own record and the seed. The output is
built in a hidden staging dir beside ``out`` and renamed onto it at the end, so nothing
half-written is left; the inputs are never modified. The same inputs, options and seed
give the same bytes.

- :func:`add_pnn_parameter`: signal and background with one-hot labels and the physics
  parameter column (a parameterised network, Baldi et al., arXiv:1601.07913): a signal
  jet's parameter is the nominal mass ``m0`` of its resonance, read from the Pythia
  settings of its class in the signal's ``manifest.json``; a background jet's is drawn
  from the signal jets' parameters (each draw the parameter of a signal jet picked at
  random, so the background's parameter distribution is the signal's). ``at`` instead
  sets every jet's parameter to one mass and keeps the signal of that mass alone: the
  test set of the network at that mass hypothesis.
- :func:`label_domains`: a labelled source and a target domain with the ``domain`` column
  (0 source, 1 target) and ``train_weight`` (1 source; 0 target, so its labels never reach
  the loss, unless ``labelled_target``: a test set with true labels).
- :func:`mix_samples`: two disjoint mixed samples M1 / M2 of equal size with chosen signal
  fractions from a labelled sample (the signal: an expression over its branches, e.g. the
  label branch ``label_Wqq``), as ``label_M1`` / ``label_M2`` (classification
  without labels, CWoLa, arXiv:1708.02949; learning from label proportions,
  arXiv:1702.00414). The truth labels stay in the files. Fractions 1 and 0 give M1 = the
  signal, M2 = the background: a test set whose M labels are the truth.

:func:`draw_parameter`, :func:`mixture_indices` and :func:`domain_columns` are the column
rules themselves, on arrays.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from heptagon.artifacts.derived import DERIVED_FILE, DerivedDataset, DerivedInput, DerivedShard
from heptagon.artifacts.manifest import JetManifest, load_manifest
from heptagon.data.expr import Expr
from heptagon.errors import ConfigError, DataError
from heptagon.io import make_dir, sha256sum
from heptagon.logs import get_logger

__all__ = [
    "add_pnn_parameter",
    "class_masses",
    "domain_columns",
    "draw_parameter",
    "label_domains",
    "mix_samples",
    "mixture_indices",
]

_log = get_logger("data")
_LABEL = "label_"
#: what a derived dataset was made by
Operation = Literal["pnn", "domains", "mix"]
#: what an operation returns to :func:`_derive`: (operation, seed, settings)
_Done = tuple[Operation, int | None, dict[str, Any]]


# --------------------------------------------------------------------- column rules


def draw_parameter(
    signal_values: NDArray[np.floating[Any]], n: int, rng: np.random.Generator
) -> NDArray[np.float32]:
    """``n`` parameter values for background jets, drawn from the signal's distribution:
    each the value of a signal jet picked uniformly at random (with replacement)."""
    if len(signal_values) == 0:
        raise ConfigError("no signal jets to draw the background's parameter from")
    return np.asarray(rng.choice(signal_values, size=n), dtype=np.float32)


def mixture_indices(
    is_signal: NDArray[np.bool_], fractions: tuple[float, float], rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Two disjoint mixed samples of equal size ``n``, the largest the jets allow: M1 with
    ``round(f1 n)`` signal jets, M2 with ``round(f2 n)``, the rest background, each jet
    picked at random. Returns the sorted indices of M1 and of M2."""
    f1, f2 = fractions
    if not (0 <= f1 <= 1 and 0 <= f2 <= 1) or f1 == f2:
        raise ConfigError(f"fractions {f1:g}, {f2:g}: need two different numbers in [0, 1]")
    sig = rng.permutation(np.flatnonzero(is_signal))
    bkg = rng.permutation(np.flatnonzero(~is_signal))

    def needs(n: int) -> tuple[int, int]:
        s1, s2 = round(f1 * n), round(f2 * n)
        return s1 + s2, 2 * n - s1 - s2

    n = int(min(len(sig) / max(f1 + f2, 1e-12), len(bkg) / max(2 - f1 - f2, 1e-12), len(is_signal)))
    while n > 0 and (needs(n)[0] > len(sig) or needs(n)[1] > len(bkg)):
        n -= 1
    if n == 0:
        raise ConfigError(
            f"{len(sig)} signal and {len(bkg)} background jets cannot make two mixtures "
            f"with signal fractions {f1:g} and {f2:g}"
        )
    s1, s2 = round(f1 * n), round(f2 * n)
    m1 = np.concatenate([sig[:s1], bkg[: n - s1]])
    m2 = np.concatenate([sig[s1 : s1 + s2], bkg[n - s1 : 2 * n - s1 - s2]])
    return np.sort(m1).astype(np.int64), np.sort(m2).astype(np.int64)


def domain_columns(n: int, domain: Literal[0, 1], weight: float) -> dict[str, pa.Array]:
    """The ``domain`` (0 source, 1 target) and ``train_weight`` columns of ``n`` jets."""
    return {
        "domain": pa.array(np.full(n, domain, np.float32)),
        "train_weight": pa.array(np.full(n, weight, np.float32)),
    }


# --------------------------------------------------------------------- the inputs


def _record(dataset: Path) -> DerivedInput:
    """The input's own record file and its checksum (a dataset dir is required)."""
    for name in ("manifest.json", DERIVED_FILE):
        if (dataset / name).is_file():
            return DerivedInput(path=str(dataset), record=name, sha256=sha256sum(dataset / name))
    raise DataError(
        f"not a dataset dir (no manifest.json or {DERIVED_FILE}): give the dir that "
        "'heptagon generate' or 'heptagon data' wrote",
        file=dataset,
    )


def _shards(dataset: Path) -> list[Path]:
    """The Parquet shards of a dataset dir."""
    shards = sorted((dataset / "shards").glob("*.parquet"))
    if not shards:
        if sorted((dataset / "shards").glob("*.root")):
            raise DataError(
                "ROOT shards: heptagon data derives from Parquet datasets (generate with "
                "--format parquet)",
                file=dataset,
            )
        raise DataError("no Parquet shards in shards/", file=dataset)
    return shards


def _read(shard: Path, needed: Sequence[str] = (), only: bool = False) -> pa.Table:
    """A shard (``only``: just the ``needed`` columns), with a :class:`DataError` naming it
    and the first of ``needed`` missing."""
    try:
        names = pq.read_schema(shard).names
        for branch in needed:
            if branch not in names:
                raise DataError("branch not found", file=shard, key=branch)
        return pq.read_table(shard, columns=list(needed) if only else None)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"unreadable Parquet shard ({err})", file=shard) from None


def _without_labels(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in table.column_names if c.startswith(_LABEL)])


def _with(table: pa.Table, columns: dict[str, pa.Array]) -> pa.Table:
    for name, values in columns.items():
        if name in table.column_names:
            raise ConfigError(f"the input already has a column '{name}'; choose another name")
        table = table.append_column(name, values)
    return table


def class_masses(dataset: Path) -> dict[str, float]:
    """The nominal resonance mass [GeV] of each class of a generated jet sample: the
    ``<pdg>:m0`` Pythia setting of the resonance its truth rule matches. A class without
    one (QCD, or the default mass not set) is left out."""
    manifest = load_manifest(dataset)
    if not isinstance(manifest, JetManifest):
        raise DataError(f"a {manifest.kind} manifest: need a jet sample", file=dataset)
    masses = {}
    for name, cls in manifest.classes.items():
        pdg = cls.truth_rule.get("pdg")
        for setting in cls.pythia_settings:
            found = re.fullmatch(rf"\s*{pdg}:m0\s*=\s*([0-9.eE+-]+)\s*", setting)
            if cls.truth_rule.get("kind") == "resonance" and found:
                masses[name] = float(found.group(1))
    return masses


def _shard_classes(dataset: Path) -> dict[str, str]:
    """Shard file name -> class, from a generated sample's manifest."""
    manifest = load_manifest(dataset)
    return {Path(f.file).name: f.cls for f in manifest.files}


# --------------------------------------------------------------------- the output


class _Writer:
    """Shards written into a staging dir beside ``out``, renamed onto ``out`` by
    :meth:`finish` (a previous derived dataset there is replaced; anything else is an
    error, before any work)."""

    def __init__(self, out: Path, inputs: dict[str, Path]) -> None:
        out = Path(out)
        for role, path in inputs.items():
            if out.resolve() == path.resolve() or path.resolve() in out.resolve().parents:
                raise ConfigError(f"--out {out} is inside the {role} input: inputs are read only")
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out} is a file: choose another --out", key="out")
        if out.exists() and not (out / DERIVED_FILE).is_file() and any(out.iterdir()):
            raise ConfigError(
                f"{out} exists and is not a derived dataset: choose another --out", key="out"
            )
        self.out = out
        self.inputs = {role: _record(path) for role, path in inputs.items()}
        make_dir(out.parent)
        self.staging = out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        make_dir(self.staging / "shards")
        self.files: list[DerivedShard] = []
        self.branches: list[str] = []

    def write(self, name: str, table: pa.Table, role: str, source: Path) -> None:
        """One output shard ``shards/<name>.parquet`` from ``source`` (of input ``role``)."""
        path = self.staging / "shards" / f"{name}.parquet"
        try:
            pq.write_table(table, path)
        except OSError as err:
            raise DataError(f"cannot write the dataset ({err})", file=self.out) from None
        self.branches = self.branches or list(table.column_names)
        base = Path(self.inputs[role].path)
        self.files.append(
            DerivedShard(
                file=f"shards/{name}.parquet",
                source=str(source.relative_to(base)),
                role=role,
                entries=len(table),
                sha256=sha256sum(path),
            )
        )
        _log.info("%s: %d jets from %s", path.name, len(table), source)

    def finish(
        self, operation: Operation, seed: int | None, settings: dict[str, Any]
    ) -> DerivedDataset:
        record = DerivedDataset(
            operation=operation,
            heptagon=version("heptagon"),
            seed=seed,
            inputs=self.inputs,
            settings=settings,
            files=self.files,
            branches=self.branches,
        )
        record.write(self.staging / DERIVED_FILE)
        trash = None
        if self.out.exists():
            trash = self.out.parent / f".{self.out.name}.{secrets.token_hex(4)}.old"
            os.replace(self.out, trash)
        os.replace(self.staging, self.out)
        if trash is not None:
            shutil.rmtree(trash)
        _log.info("%s: %s dataset, %d shards", self.out, operation, len(self.files))
        return record

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _derive(out: Path, inputs: dict[str, Path], body: Callable[[_Writer], _Done]) -> DerivedDataset:
    """Run ``body`` with a writer for ``out``; it returns (operation, seed, settings)."""
    writer = _Writer(out, inputs)
    try:
        operation, seed, settings = body(writer)
        return writer.finish(operation, seed, settings)
    finally:
        writer.abort()


# --------------------------------------------------------------------- the three datasets


def add_pnn_parameter(
    signal: str | Path,
    background: str | Path,
    out: str | Path,
    *,
    param: str = "pnn_mass",
    hold_out: Sequence[float] = (),
    at: float | None = None,
    seed: int = 0,
    signal_label: str = "Xbb",
    background_label: str = "QCD",
) -> DerivedDataset:
    """A PNN dataset from a resonance-mass scan (``signal``, e.g. ``xbb-scan``) and a
    background sample: ``label_<signal_label>`` / ``label_<background_label>`` and the
    parameter column ``param`` (see the module docstring). ``hold_out``: masses [GeV] left
    out of the signal (the network never sees them); ``at``: the test set at one mass
    (every jet's parameter that mass, the signal of that mass alone)."""
    signal, background = Path(signal), Path(background)
    if signal_label == background_label:
        raise ConfigError(f"signal and background are both labelled '{signal_label}'")
    masses = class_masses(signal)
    if not masses:
        raise DataError(
            "no class with a resonance mass (a <pdg>:m0 Pythia setting) in the signal sample",
            file=signal / "manifest.json",
        )
    known = ", ".join(f"{m:g}" for m in sorted(set(masses.values())))
    for m in [*hold_out, *([] if at is None else [at])]:
        if not any(math.isclose(m, v) for v in masses.values()):
            raise ConfigError(f"no signal class at m = {m:g} GeV (the masses: {known})")
    keep = {
        c: m
        for c, m in masses.items()
        if (at is None and not any(math.isclose(m, h) for h in hold_out))
        or (at is not None and math.isclose(m, at))
    }
    if not keep:
        raise ConfigError(f"every signal mass ({known}) is held out")
    shard_class = _shard_classes(signal)
    sig_shards = [s for s in _shards(signal) if shard_class.get(s.name) in keep]
    labels = {f"{_LABEL}{signal_label}": True, f"{_LABEL}{background_label}": False}

    def body(writer: _Writer) -> _Done:
        values = []
        for shard in sig_shards:
            table = _without_labels(_read(shard))
            n = len(table)
            value = keep[shard_class[shard.name]] if at is None else at
            values.append(np.full(n, value, np.float32))
            columns = {k: pa.array(np.full(n, v)) for k, v in labels.items()}
            columns[param] = pa.array(values[-1])
            writer.write(f"signal_{shard.stem}", _with(table, columns), "signal", shard)
        signal_values = np.concatenate(values) if values else np.zeros(0, np.float32)
        rng = np.random.default_rng(seed)
        for shard in _shards(background):
            table = _without_labels(_read(shard))
            n = len(table)
            columns = {k: pa.array(np.full(n, not v)) for k, v in labels.items()}
            drawn = np.full(n, at, np.float32) if at is not None else None
            columns[param] = pa.array(
                draw_parameter(signal_values, n, rng) if drawn is None else drawn
            )
            writer.write(f"background_{shard.stem}", _with(table, columns), "background", shard)
        settings = {
            "param": param,
            "masses": {c: keep[c] for c in sorted(keep)},
            "hold_out": [float(m) for m in hold_out],
            "at": at,
            "labels": {"signal": signal_label, "background": background_label},
        }
        return "pnn", (None if at is not None else seed), settings

    return _derive(Path(out), {"signal": signal, "background": background}, body)


def label_domains(
    source: str | Path, target: str | Path, out: str | Path, *, labelled_target: bool = False
) -> DerivedDataset:
    """A domain-adaptation dataset: ``source`` jets with ``domain`` 0 and ``train_weight``
    1, ``target`` jets with ``domain`` 1 and ``train_weight`` 0 (1 with
    ``labelled_target``: a test set). Both must have the same ``label_*`` branches."""
    source, target = Path(source), Path(target)
    shards = {"source": _shards(source), "target": _shards(target)}
    labels = {
        role: sorted(c for c in pq.read_schema(s[0]).names if c.startswith(_LABEL))
        for role, s in shards.items()
    }
    if labels["source"] != labels["target"] or not labels["source"]:
        raise DataError(
            f"the source's labels ({', '.join(labels['source']) or 'none'}) are not the "
            f"target's ({', '.join(labels['target']) or 'none'})",
            file=shards["target"][0],
        )
    weights = {"source": 1.0, "target": 1.0 if labelled_target else 0.0}

    def body(writer: _Writer) -> _Done:
        for domain, role in enumerate(("source", "target")):
            for shard in shards[role]:
                table = _read(shard, labels[role])
                columns = domain_columns(len(table), 1 if domain else 0, weights[role])
                writer.write(f"{role}_{shard.stem}", _with(table, columns), role, shard)
        return "domains", None, {"train_weight": weights, "labels": labels["source"]}

    return _derive(Path(out), {"source": source, "target": target}, body)


def _signal_mask(shard: Path, signal: Expr) -> NDArray[np.bool_]:
    """Which jets of ``shard`` the expression ``signal`` calls signal."""
    table = _read(shard, sorted(signal.names), only=True)
    values = signal.evaluate(lambda name: table[name].to_numpy(zero_copy_only=False))
    mask = np.asarray(values)
    if mask.shape != (len(table),):
        raise ConfigError(
            f"--signal {signal.text!r} is not one value per jet (shape {mask.shape})", "signal"
        )
    return mask.astype(bool)


def mix_samples(
    sample: str | Path,
    out: str | Path,
    *,
    signal: str,
    fractions: tuple[float, float],
    seed: int = 0,
) -> DerivedDataset:
    """Two mixed samples from a labelled ``sample``: the jets for which the expression
    ``signal`` (:mod:`heptagon.data.expr`; a label branch such as ``label_Wqq``, or e.g.
    ``abs(jet_parton_id) != 21``) is true are the signal, all others the background; M1
    with signal fraction ``fractions[0]``, M2 with ``fractions[1]``
    (:func:`mixture_indices`), as ``label_M1`` / ``label_M2``; jets in neither are left
    out."""
    sample = Path(sample)
    shards = _shards(sample)
    is_signal = [_signal_mask(s, Expr(signal, "signal")) for s in shards]
    every = np.concatenate(is_signal)
    m1, m2 = mixture_indices(every, fractions, np.random.default_rng(seed))
    in_m1 = np.zeros(len(every), bool)
    in_m1[m1] = True
    chosen = in_m1.copy()
    chosen[m2] = True

    def body(writer: _Writer) -> _Done:
        start = 0
        for shard, sig in zip(shards, is_signal, strict=True):
            rows = slice(start, start + len(sig))
            start += len(sig)
            take = np.flatnonzero(chosen[rows])
            table = _read(shard).take(pa.array(take))
            m1_rows = in_m1[rows][take]
            columns = {"label_M1": pa.array(m1_rows), "label_M2": pa.array(~m1_rows)}
            writer.write(shard.stem, _with(table, columns), "sample", shard)
        settings = {
            "signal": signal,
            "fractions": list(fractions),
            "jets": {"M1": len(m1), "M2": len(m2)},
            "signal_jets": {"M1": int(every[m1].sum()), "M2": int(every[m2].sum())},
        }
        return "mix", seed, settings

    return _derive(Path(out), {"sample": sample}, body)
