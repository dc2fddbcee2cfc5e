"""The top-tagging landscape HDF5 layout (arXiv:1902.09914), read with h5py.

A pandas ``table`` with ``E_i, PX_i, PY_i, PZ_i`` for ``i < 200``, zero-padded, and
``is_signal_new`` -> the JetClass branches of :mod:`~heptagon.data.readers.layouts`
(``part_*``, ``jet_*``, ``event``, soft-drop mass and N-subjettiness of R = 0.8 jets) and
``label_Tbqq, label_QCD``.
"""

from __future__ import annotations

import pickletools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from heptagon.data.readers.base import RangeReader
from heptagon.data.readers.layouts import EVENT, JET, PARTICLE, SUBSTRUCTURE, jet_branches
from heptagon.errors import DataError

__all__ = ["TopLandscapeReader", "pickled_names"]


# The opcodes of a pickle that builds only lists and tuples of str, int, bool and None.
# Every other opcode (GLOBAL, STACK_GLOBAL, REDUCE, INST, OBJ, NEWOBJ, BUILD, EXT1/2/4, ...)
# can name or call an arbitrary Python object: a stream holding one is rejected unread.
_PLAIN_OPCODES = frozenset(
    {
        *("PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK"),
        *("EMPTY_LIST", "LIST", "APPEND", "APPENDS"),
        *("EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"),
        *("UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"),
        *("STRING", "BINSTRING", "SHORT_BINSTRING"),
        *("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "NONE", "NEWTRUE", "NEWFALSE"),
        *("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET"),
    }
)
_TUPLE_SIZES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


class _PlainStack:
    """The stack machine of :func:`pickled_names`: one small method per opcode family,
    applied to the opcodes of :data:`_PLAIN_OPCODES` only."""

    def __init__(self, refuse: Callable[[str], DataError]) -> None:
        self.refuse = refuse
        self.mark = object()
        self.stack: list[Any] = []
        self.memo: dict[Any, Any] = {}
        self.ops: dict[str, Callable[[str, Any], None]] = {
            "MARK": self.push_mark,
            **dict.fromkeys(("POP", "POP_MARK"), self.discard),
            **dict.fromkeys(("EMPTY_LIST", "EMPTY_TUPLE"), self.empty),
            **dict.fromkeys(("LIST", "TUPLE"), self.collect),
            **dict.fromkeys(_TUPLE_SIZES, self.small_tuple),
            **dict.fromkeys(("APPEND", "APPENDS"), self.append),
            **dict.fromkeys(("NONE", "NEWTRUE", "NEWFALSE"), self.singleton),
            **dict.fromkeys(("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"), self.put),
            **dict.fromkeys(("GET", "BINGET", "LONG_BINGET"), self.get),
        }

    def push_mark(self, _name: str, _arg: Any) -> None:
        self.stack.append(self.mark)

    def discard(self, name: str, _arg: Any) -> None:
        if name == "POP":
            self.stack.pop()
        else:
            self.pop_mark()

    def empty(self, name: str, _arg: Any) -> None:
        self.stack.append([] if name == "EMPTY_LIST" else ())

    def collect(self, name: str, _arg: Any) -> None:
        items = self.pop_mark()
        self.stack.append(items if name == "LIST" else tuple(items))

    def pop_mark(self) -> list[Any]:
        if self.mark not in self.stack:
            raise self.refuse("malformed pickle (no MARK)")
        i = len(self.stack) - 1 - self.stack[::-1].index(self.mark)
        items = self.stack[i + 1 :]
        del self.stack[i:]
        return items

    def small_tuple(self, name: str, _arg: Any) -> None:
        n = _TUPLE_SIZES[name]
        items = self.stack[len(self.stack) - n :]
        del self.stack[len(self.stack) - n :]
        self.stack.append(tuple(items))

    def append(self, name: str, _arg: Any) -> None:
        items = [self.stack.pop()] if name == "APPEND" else self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, list):
            raise self.refuse("malformed pickle (APPEND to a non-list)")
        target.extend(items)

    def singleton(self, name: str, _arg: Any) -> None:
        self.stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])

    def put(self, name: str, arg: Any) -> None:
        self.memo[len(self.memo) if name == "MEMOIZE" else arg] = self.stack[-1]

    def get(self, _name: str, arg: Any) -> None:
        self.stack.append(self.memo[arg])

    def step(self, name: str, arg: Any) -> None:
        """Apply one opcode; a str or int constant (decoded by genops) is pushed."""
        op = self.ops.get(name)
        if op is None:
            self.stack.append(arg)
        else:
            op(name, arg)


def pickled_names(raw: bytes, path: Path, attr: str) -> list[str]:
    """The list of str that the pickle ``raw`` (a PyTables attribute) holds, read WITHOUT
    unpickling: PyTables stores pandas' column names as pickles, and ``pickle.loads`` would
    run whatever a crafted file asks for. :func:`pickletools.genops` only disassembles the
    stream; a tiny stack machine (:class:`_PlainStack`) then builds the lists and tuples of
    plain constants that the opcodes in :data:`_PLAIN_OPCODES` describe. Any other opcode, a
    malformed stream or a result other than a list of str is a :class:`DataError` naming
    the file and attribute.
    """

    def refuse(why: str) -> DataError:
        return DataError(f"attribute '{attr}': {why}", path)

    machine = _PlainStack(refuse)
    try:
        for opcode, arg, _ in pickletools.genops(raw):
            name = opcode.name
            if name not in _PLAIN_OPCODES:
                raise refuse(f"pickle opcode {name} refused (only plain lists of names are read)")
            if name == "STOP":
                break
            if name not in ("PROTO", "FRAME"):
                machine.step(name, arg)
    except DataError:
        raise
    except (ValueError, IndexError, KeyError) as err:
        raise refuse(f"malformed pickle ({err})") from None
    stack = machine.stack
    result = stack[-1] if len(stack) == 1 else None
    if not (isinstance(result, list) and all(isinstance(x, str) for x in result)):
        raise refuse("expected a pickled list of column names")
    return result


class TopLandscapeReader(RangeReader):
    """The top-tagging landscape HDF5 layout, a pandas ``format='table'`` store (needs the
    ``hdf5`` extra: h5py).

    Read with h5py, which never unpickles: the rows are the compound dataset
    ``/<key>/table`` (fields ``index``, ``values_block_<k>`` and any data columns), and the
    column names of each field come from its ``<field>_kind`` attribute, decoded by
    :func:`pickled_names` without executing anything. pandas and PyTables are not used:
    they unpickle attributes, and a crafted file would run code on opening.
    """

    #: the landscape's jets: anti-kT R = 0.8 (arXiv:1902.09914)
    RADIUS = 0.8

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            import h5py
            import hdf5plugin  # noqa: F401  (registers PyTables' filters: blosc, ...)
        except ImportError:
            raise DataError(
                "reading HDF5 needs h5py and hdf5plugin: pip install 'heptagon[hdf5]'", path
            ) from None
        try:
            self._file = h5py.File(self._open_source(), "r")
        except OSError as err:
            self._close_remote()
            raise DataError(f"not a readable HDF5 file ({err})", path) from None
        try:
            self._table, self._where = self._layout(h5py)
        except OSError as err:
            self.close()
            raise DataError(f"not a readable HDF5 file ({err})", path) from None
        except DataError:
            self.close()
            raise
        self._n = sum(1 for name in self._where if name.startswith("E_"))
        if self._n == 0:
            self.close()
            raise DataError("no E_0.. columns: not the top-landscape layout", path, "E_0")
        self._has_label = "is_signal_new" in self._where
        self._momenta = {
            key: self._gather([f"{key}_{i}" for i in range(self._n)])
            for key in ("E", "PX", "PY", "PZ")
        }
        self._label = self._gather(["is_signal_new"]) if self._has_label else None
        plans = [*self._momenta.values(), *([self._label] if self._label else [])]
        self._fields = sorted({field for plan in plans for field, _, _ in plan})

    def _layout(self, h5py: Any) -> tuple[Any, dict[str, tuple[str, int]]]:
        """The store's row dataset and, for each column, its (field, position)."""
        path = self.path
        keys = [
            name
            for name, node in self._file.items()
            if isinstance(node, h5py.Group) and "pandas_type" in node.attrs
        ]
        if len(keys) != 1:
            raise DataError(f"expected one pandas table, found {keys or 'none'}", path)
        group = self._file[keys[0]]
        table = group.get("table")
        if group.attrs["pandas_type"] != b"frame_table" or not isinstance(table, h5py.Dataset):
            raise DataError("expected a pandas HDF5 'table' (format='table')", path, keys[0])
        if table.dtype.names is None or table.ndim != 1:
            raise DataError("the table's rows are not a 1-d record array", path, keys[0])
        where: dict[str, tuple[str, int]] = {}
        for field in table.dtype.names:
            if field == "index":
                continue
            attr = f"{field}_kind"
            raw = table.attrs.get(attr)
            if not isinstance(raw, bytes):
                raise DataError(f"no column names (attribute '{attr}')", path, field)
            names = pickled_names(raw, path, attr)
            dtype = table.dtype.fields[field][0]
            width = int(np.prod(dtype.shape, dtype=np.int64))
            if len(names) != width:
                raise DataError(
                    f"{len(names)} column names for a field of {width} columns", path, field
                )
            numeric = np.issubdtype(dtype.base, np.number) or dtype.base == np.bool_
            for i, name in enumerate(names):
                if numeric:  # a text column is never one of the layout's
                    where[name] = (field, i)
        return table, where

    def _gather(self, names: list[str]) -> list[tuple[str, list[int], list[int]]]:
        """How to assemble ``names`` as columns: per field, the output and field positions."""
        plan: dict[str, tuple[list[int], list[int]]] = {}
        for j, name in enumerate(names):
            if name not in self._where:
                self.close()
                raise DataError("column missing from the top-landscape layout", self.path, name)
            field, pos = self._where[name]
            out, at = plan.setdefault(field, ([], []))
            out.append(j)
            at.append(pos)
        return [(field, out, at) for field, (out, at) in plan.items()]

    def close(self) -> None:
        self._file.close()
        self._close_remote()

    @property
    def branches(self) -> list[str]:
        labels = ["label_Tbqq", "label_QCD"] if self._has_label else []
        return [*PARTICLE, *JET, *SUBSTRUCTURE, EVENT, *labels]

    @property
    def num_entries(self) -> int:
        return int(self._table.shape[0])

    def _read(self, branches: list[str], start: int, stop: int) -> ak.Array:
        try:
            rows = self._table.fields(self._fields)[start:stop]
        except (OSError, ValueError) as err:
            raise DataError(
                f"cannot read entries {start}-{stop} (truncated or corrupt? {err})", self.path
            ) from None

        def columns(plan: list[tuple[str, list[int], list[int]]]) -> np.ndarray:
            width = sum(len(out) for _, out, _ in plan)
            result = np.empty((stop - start, width), dtype=np.float64)
            for field, out, at in plan:
                result[:, out] = rows[field].reshape(stop - start, -1)[:, at]
            return result

        cols = {key: columns(plan) for key, plan in self._momenta.items()}
        out = jet_branches(
            cols["PX"], cols["PY"], cols["PZ"], cols["E"], cols["E"] > 0,
            start=start, radius=self.RADIUS, wanted=branches,
        )  # fmt: skip
        if self._label is not None:
            signal = columns(self._label)[:, 0] == 1
            out |= {"label_Tbqq": signal, "label_QCD": ~signal}
        return ak.zip({b: out[b] for b in branches}, depth_limit=1)
