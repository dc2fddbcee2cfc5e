"""From raw chunks to unpadded tables: split, new variables, selection, checks, labels,
weights, observers and standardisation. Padding happens later, per batch, in the loader.

Name resolution (lazy: a name is computed only when something refers to it): a
``new_variables`` entry, else a branch of the file, else a standard feature of
:mod:`heptagon.data.features`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from heptagon.data.config import DataConfig
from heptagon.data.expr import Expr
from heptagon.data.features import feature
from heptagon.data.io import Chunk
from heptagon.data.jagged import Jagged, JaggedColumn, from_awkward, interleave
from heptagon.data.split import Split, SplitName
from heptagon.data.weights import inside_bins
from heptagon.errors import ConfigError, DataError
from heptagon.physics.arrays import owner_index

if TYPE_CHECKING:
    from pathlib import Path

    from heptagon.data.preprocess import Preprocess, VarParams

__all__ = ["Table", "Transform"]


@dataclass(frozen=True)
class Table:
    """Entries ready for batching: standardised, truncated to ``length``, not padded.

    ``inputs[group]``: a :class:`Jagged` for groups with a ``length``, else a float32
    ``(n, n_vars)`` array;
    ``label`` int64 class indices (or float32 ``(n, n_targets)``), None without labels;
    ``multiplicity`` the particle count used for bucketing (largest over jagged groups).
    """

    inputs: dict[str, Jagged | np.ndarray]
    label: np.ndarray | None
    weight: np.ndarray
    observers: dict[str, np.ndarray]
    multiplicity: np.ndarray

    def __len__(self) -> int:
        return len(self.weight)

    def take(self, index: np.ndarray) -> Table:
        """The entries at ``index``, in that order."""
        return Table(
            {
                g: a.take(index) if isinstance(a, Jagged) else a[index]
                for g, a in self.inputs.items()
            },
            None if self.label is None else self.label[index],
            self.weight[index],
            {k: v[index] for k, v in self.observers.items()},
            self.multiplicity[index],
        )

    @staticmethod
    def concatenate(tables: list[Table]) -> Table:
        """One table with the entries of all ``tables``."""
        first = tables[0]
        if len(tables) == 1:
            return first
        return Table(
            {g: _concatenate([t.inputs[g] for t in tables]) for g in first.inputs},
            None if first.label is None else np.concatenate([t.label for t in tables]),
            np.concatenate([t.weight for t in tables]),
            {k: np.concatenate([t.observers[k] for t in tables]) for k in first.observers},
            np.concatenate([t.multiplicity for t in tables]),
        )


def _concatenate(parts: list[Any]) -> Jagged | np.ndarray:
    return Jagged.concatenate(parts) if isinstance(parts[0], Jagged) else np.concatenate(parts)


def _per_entry(value: Any, n: int) -> Any:
    """Broadcast a constant expression result to one value per entry."""
    return value if isinstance(value, (ak.Array, np.ndarray, JaggedColumn)) else np.full(n, value)


class _Namespace:
    """Lazily resolved, cached variables of the entries of one chunk that are kept.

    Branches are taken from the chunk in their fast forms (:func:`from_awkward`); jagged
    branches with the same counts share one counts array. Filtering (split, selection,
    ``nan_policy: drop``) only records which entries are kept: a branch is cut when it is
    first needed, with one particle mask per counts array.
    """

    def __init__(self, arrays: ak.Array, config: DataConfig, path: Path) -> None:
        self.arrays, self.path, self.n = arrays, path, len(arrays)
        self._fields = set(arrays.fields)
        self._new = config.new_variable_exprs
        self._cache: dict[str, Any] = {}
        self._resolving: set[str] = set()
        self._keep: np.ndarray | None = None  # over the chunk's entries; None: all
        self._counts: list[np.ndarray] = []  # distinct counts of the chunk's branches
        # id(counts before) -> (counts before, particles kept, counts after) for _keep
        self._cuts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._cache:
            return self._cache[name]
        if name in self._resolving:
            raise ConfigError(f"'{name}' refers to itself", f"new_variables.{name}")
        self._resolving.add(name)
        std = feature(name)
        if name in self._new:
            value = self.evaluate(self._new[name])
        elif name in self._fields:
            value = self._branch(name)
        elif std is not None:
            value = self.evaluate(std)
        else:
            raise DataError("branch not found", self.path, name)
        self._resolving.discard(name)
        self._cache[name] = value
        return value

    def _branch(self, name: str) -> Any:
        layout = self.arrays.layout  # skips ak.Array.__getitem__'s overhead (~1 ms a call)
        field = layout.content(name) if isinstance(layout, ak.contents.RecordArray) else None
        value = from_awkward(self.arrays[name] if field is None else field)
        if isinstance(value, JaggedColumn):
            same = next((c for c in self._counts if np.array_equal(c, value.counts)), None)
            if same is None:
                self._counts.append(value.counts)
            else:
                value = JaggedColumn(value.content, same)
        return value if self._keep is None else self._cut(value, self._keep)

    def _cut(self, value: Any, keep: np.ndarray) -> Any:
        if not isinstance(value, JaggedColumn):
            return value[keep]
        cut = self._cuts.get(id(value.counts))
        if cut is None:
            cut = (value.counts, np.repeat(keep, value.counts), value.counts[keep])
            self._cuts[id(value.counts)] = cut
        return JaggedColumn(value.content[cut[1]], cut[2])

    def evaluate(self, expr: Expr) -> Any:
        return _per_entry(expr.evaluate(self.__getitem__, columns=True), self.n)

    def filter(self, keep: np.ndarray) -> _Namespace:
        """The same namespace restricted to the entries where ``keep`` is true."""
        out = _Namespace.__new__(_Namespace)
        out.arrays, out.path, out.n = self.arrays, self.path, int(keep.sum())
        out._fields = self._fields
        out._new, out._resolving, out._counts, out._cuts = self._new, set(), self._counts, {}
        if self._keep is None:
            out._keep = keep
        else:
            out._keep = self._keep.copy()
            out._keep[self._keep] = keep
        out._cache = {k: out._cut(v, keep) for k, v in self._cache.items()}
        return out


def _flat(value: Any, path: Path, name: str, what: str = "a value") -> np.ndarray:
    """``value`` as a numpy array of one value per entry, or a DataError."""
    if isinstance(value, (ak.Array, JaggedColumn)):
        if value.ndim != 1:
            raise DataError(
                f"expected {what} per entry, found a jagged array (reduce it, e.g. max(...))",
                path,
                name,
            )
        return np.asarray(ak.to_numpy(value))
    return np.asarray(value)


def _jagged(value: Any, path: Path, name: str) -> JaggedColumn:
    """``value`` as a jagged (per particle) column, or a DataError."""
    if isinstance(value, JaggedColumn):
        return value
    if not isinstance(value, ak.Array) or value.ndim != 2:
        found = "one value per entry" if value.ndim == 1 else f"{value.ndim} dimensions"
        raise DataError(f"expected a jagged (per-particle) array, found {found}", path, name)
    return JaggedColumn(ak.to_numpy(ak.flatten(value, axis=1)), ak.to_numpy(ak.num(value, axis=1)))


class Transform:
    """Turns a :class:`~heptagon.data.io.Chunk` into a :class:`Table`.

    ``preprocess=None`` gives raw (unstandardised) inputs and weights of one (or the
    ``reweight_basewgt`` values of flat reweighting), for computing the preprocessing
    itself. ``split_name`` keeps only that split (``None``: every entry). The training and
    validation splits take ``selection``; the test split and ``None`` (evaluation,
    inference) take ``test_time_selection`` where set, as weaver's training and test
    loaders do. ``truncate=False`` keeps every particle of an entry, not only the first
    ``length`` (the sample ``auto`` standardisation is computed on, as weaver's). Counts of
    entries read / in the split / selected are kept so that :meth:`check_selected` can
    tell an empty selection.
    """

    def __init__(
        self,
        config: DataConfig,
        preprocess: Preprocess | None,
        *,
        split: Split | None = None,
        split_name: SplitName | None = None,
        with_labels: bool = True,
        truncate: bool = True,
    ) -> None:
        if preprocess is not None:
            preprocess.check(config)
        self.config, self.preprocess = config, preprocess
        self.split, self.split_name = split or Split(), split_name
        self.selection = config.selection_expr(training=split_name in ("train", "val"))
        self.with_labels = with_labels and config.labels is not None
        self.truncate = truncate
        # entries read, in the split, passing the selection, and then kept by nan_policy
        self.n_read = self.n_split = self.n_passed = self.n_selected = 0
        self.nan_counts: dict[tuple[str, str], int] = {}  # (group, variable) -> NaN/inf seen
        self._files: set[str] = set()

    def roots(self) -> list[str]:
        """Every name the config refers to directly."""
        c = self.config
        names = [v.name for g in c.inputs.values() for v in g.vars] + c.entry_observers
        exprs = [self.selection] if self.selection is not None else []
        exprs += c.weight_exprs
        if self.with_labels:
            exprs += c.label_exprs
            if c.weights is not None and not c.weights.use_precomputed_weights:
                names += list(c.weights.reweight_vars)
                exprs += [] if c.basewgt_expr is None else [c.basewgt_expr]
        for expr in exprs:
            names += sorted(expr.names)
        return names

    def branches(self, available: Iterable[str]) -> list[str]:
        """The file branches to read, given the branches a file has. A name that is
        neither defined nor in the file is returned too, for the reader to report."""
        available = set(available)
        new = self.config.new_variable_exprs
        needed: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            std = feature(name)
            if name in new:
                deps: Iterable[str] = new[name].names
            elif name in available or std is None:
                needed.append(name)
                return
            else:
                deps = std.names
            for dep in sorted(deps):
                visit(dep)

        for name in self.roots():
            visit(name)
        if self.split_name is not None and self.config.event_branch in available:
            visit(self.config.event_branch)
        return needed

    def __call__(self, chunk: Chunk) -> Table:
        arrays, path = chunk.arrays, chunk.path
        self._files.add(path.name)
        self.n_read += len(arrays)
        ns = _Namespace(arrays, self.config, path)
        if self.split_name is not None:
            if self.config.event_branch in arrays.fields:
                keys = _flat(arrays[self.config.event_branch], path, self.config.event_branch)
                if not np.issubdtype(keys.dtype, np.integer):
                    raise DataError("expected an integer event number", path, "event")
            else:
                keys = np.arange(chunk.start, chunk.start + len(arrays))
            ns = ns.filter(self.split.mask(self.split_name, path.stem, keys))
        self.n_split += ns.n
        if self.selection is not None:
            key = self.selection.key
            keep = _flat(ns.evaluate(self.selection), path, key)
            if keep.dtype != np.bool_:
                raise ConfigError(f"must give a boolean per entry, not {keep.dtype}", key)
            ns = ns.filter(keep)
        self.n_passed += ns.n
        ns, raw = self._raw_inputs(ns)
        self.n_selected += ns.n
        label = self._labels(ns) if self.with_labels else None
        weight = self._weights(ns, label)
        observers = {name: _flat(ns[name], path, name) for name in self.config.entry_observers}
        return self._finish(raw, label, weight, observers)

    def check_selected(self) -> None:
        """Raise :class:`DataError` if entries were read but none passed the selection."""
        files = ", ".join(sorted(self._files))
        if self.n_read and not self.n_split:
            raise DataError(f"no entries in the '{self.split_name}' split", files)
        if self.n_split and not self.n_passed:
            text = None if self.selection is None else self.selection.text
            raise DataError(f"no entries pass the selection {text!r}", files)
        if self.n_passed and not self.n_selected:
            bad = sorted({var for (_, var), n in self.nan_counts.items() if n})
            raise DataError(
                "every entry has NaN/inf values (nan_policy: drop)", files, ",".join(bad)
            )

    def _raw_inputs(
        self, ns: _Namespace
    ) -> tuple[_Namespace, dict[str, tuple[np.ndarray | None, list[np.ndarray]]]]:
        """Each group's counts (None for per-entry groups) and flat float32 columns,
        type-checked, with the NaN policy applied (``drop`` filters the namespace too)."""
        path, policy = ns.path, self.config.nan_policy
        raw: dict[str, tuple[np.ndarray | None, list[np.ndarray]]] = {}
        bad_rows = np.zeros(ns.n, dtype=bool)
        for group, spec in self.config.inputs.items():
            counts, columns = None, []
            for var in spec.vars:
                if spec.length is None:
                    column = _flat(ns[var.name], path, var.name)
                else:
                    jagged = _jagged(ns[var.name], path, var.name)
                    if not (
                        counts is None
                        or jagged.counts is counts
                        or np.array_equal(jagged.counts, counts)
                    ):
                        raise DataError(
                            f"has a different number of particles than '{spec.vars[0].name}' "
                            f"(both in input group '{group}')",
                            path,
                            var.name,
                        )
                    counts, column = jagged.counts, jagged.content
                column = column.astype(np.float32, copy=False)  # read only from here on
                finite = np.isfinite(column)
                n_bad = len(column) - int(np.count_nonzero(finite))
                key = (group, var.name)
                self.nan_counts[key] = self.nan_counts.get(key, 0) + n_bad
                if n_bad and policy == "error":
                    raise DataError(
                        f"{n_bad} NaN/inf values (set nan_policy: zero or drop to allow)",
                        path,
                        var.name,
                    )
                if n_bad and policy == "zero":
                    column = np.where(finite, column, np.float32(0))
                if n_bad and policy == "drop":
                    rows = np.arange(ns.n) if counts is None else owner_index(counts)
                    bad_rows[rows[~finite]] = True
                columns.append(column)
            raw[group] = (counts, columns)
        if bad_rows.any():
            keep = ~bad_rows
            ns = ns.filter(keep)
            for group, (counts, columns) in raw.items():
                if counts is None:
                    raw[group] = (None, [c[keep] for c in columns])
                else:
                    particles = np.repeat(keep, counts)
                    raw[group] = (counts[keep], [c[particles] for c in columns])
        return ns, raw

    def _labels(self, ns: _Namespace) -> np.ndarray:
        labels = self.config.labels
        assert labels is not None
        exprs = self.config.label_exprs
        values = [_flat(ns.evaluate(e), ns.path, e.text, "a label") for e in exprs]
        if labels.type == "custom":
            target = np.stack(values, axis=1).astype(np.float32)
            if not np.isfinite(target).all():
                raise DataError("NaN/inf regression targets", ns.path, ",".join(labels.names))
            return target
        onehot = np.stack(values, axis=1).astype(np.int64)
        bad = int(np.sum((onehot.sum(axis=1) != 1) | ((onehot != 0) & (onehot != 1)).any(axis=1)))
        if bad:
            raise DataError(
                f"{bad} of {len(onehot)} entries are not one-hot (exactly one label must be 1)",
                ns.path,
                ",".join(e.text for e in exprs),
            )
        return np.asarray(np.argmax(onehot, axis=1))

    def _weights(self, ns: _Namespace, label: np.ndarray | None) -> np.ndarray:
        spec = self.config.weights
        weight = np.ones(ns.n, dtype=np.float64)
        if spec is None:
            return weight.astype(np.float32)
        if spec.use_precomputed_weights:
            for expr in self.config.weight_exprs:
                value = _flat(ns.evaluate(expr), ns.path, expr.text, "a weight")
                if not np.isfinite(value).all():
                    raise DataError("NaN/inf weights", ns.path, expr.text)
                weight *= value
        elif label is not None:
            basewgt = self.config.basewgt_expr
            if basewgt is not None:
                weight = _flat(ns.evaluate(basewgt), ns.path, basewgt.key, "a weight")
                if not np.isfinite(weight).all():
                    raise DataError("NaN/inf weights", ns.path, basewgt.key)
            if self.preprocess is not None and self.preprocess.reweight is not None:
                x, y = (_flat(ns[v], ns.path, v) for v in self.preprocess.reweight.vars)
                weight = weight * self.preprocess.reweight(x, y, label) * inside_bins(spec, x, y)
        return weight.astype(np.float32)

    def _finish(
        self,
        raw: dict[str, tuple[np.ndarray | None, list[np.ndarray]]],
        label: np.ndarray | None,
        weight: np.ndarray,
        observers: dict[str, np.ndarray],
    ) -> Table:
        inputs: dict[str, Jagged | np.ndarray] = {}
        multiplicity = np.zeros(len(weight), dtype=np.int64)
        for group, (counts, columns) in raw.items():
            if self.preprocess is not None:
                params = self.preprocess.inputs[group].vars
                columns = [_standardise(c, p) for c, p in zip(columns, params, strict=True)]
            if counts is None:
                inputs[group] = interleave(columns)
                continue
            length = self.config.inputs[group].length
            assert length is not None  # jagged groups have one
            jagged = Jagged.from_columns(columns, counts)
            if self.truncate:
                jagged = jagged.truncate(length)
            inputs[group] = jagged
            multiplicity = np.maximum(multiplicity, jagged.counts)
        return Table(inputs, label, weight, observers, multiplicity)


def _standardise(column: np.ndarray, params: VarParams) -> np.ndarray:
    """:meth:`VarParams.apply` on a float32 column, in float32, with one new array at most
    (``column`` itself may be shared, e.g. with an observer, so it is never written)."""
    out = column
    if params.center != 0:
        out = np.subtract(column, np.float32(params.center))
    if params.scale != 1:
        out = np.multiply(out, np.float32(params.scale), out=None if out is column else out)
    if params.clip is not None:
        out = np.maximum(out, np.float32(params.clip[0]), out=None if out is column else out)
        np.minimum(out, np.float32(params.clip[1]), out=out)
    return out
