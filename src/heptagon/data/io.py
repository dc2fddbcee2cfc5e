"""Readers: ROOT TTrees, Parquet, and the two public benchmark layouts, in chunks.

Every reader splits a file into :class:`Unit` s (Parquet: row groups; the others: ranges
of ``chunk_size`` entries), the pieces the loader deals out to workers, and reads a unit
as awkward arrays of at most ``chunk_size`` entries. The benchmark layouts are converted
on the fly to the JetClass branch names:

- top-tagging landscape HDF5 (a pandas ``table`` with ``E_i, PX_i, PY_i, PZ_i`` for
  ``i < 200``, zero-padded, and ``is_signal_new``) -> ``part_px, part_py, part_pz,
  part_energy, part_deta, part_dphi``, ``jet_pt, jet_eta, jet_phi, jet_energy, jet_mass,
  jet_nparticles`` (the jet is the sum of its constituents), ``label_Tbqq, label_QCD``;
- quark/gluon ``.npz`` (``X``: jets x particles x (pT, rapidity, phi, PDG id), zero-padded;
  ``y``: 1 quark, 0 gluon) -> the same plus ``part_charge`` and ``part_is*`` flags from
  the PDG id (via ``particle``), ``label_q, label_g``.

Every failure is a :class:`DataError` naming the file and, where one is at fault, the branch.
"""

from __future__ import annotations

import difflib
import glob
import pickletools
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uproot
import vector

from heptagon.errors import DataError
from heptagon.physics.kinematics import delta_phi, wrap_phi
from heptagon.physics.pdg import categories, charges, masses, type_flags

__all__ = ["SUFFIXES", "Chunk", "Reader", "Unit", "expand_files", "open_reader"]

#: file suffixes the readers handle
SUFFIXES = (".root", ".parquet", ".parq", ".h5", ".hdf5", ".npz")

# what uproot raises on a truncated or corrupt file
_ROOT_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    uproot.deserialization.DeserializationError,
)


@dataclass(frozen=True)
class Unit:
    """A piece of one file: entries ``[start, stop)``; ``index`` is the Parquet row group."""

    path: Path
    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class Chunk:
    """Arrays of entries ``[start, start + len(arrays))`` of ``path``."""

    path: Path
    start: int
    arrays: ak.Array


class Reader(ABC):
    """An open input file. Use as a context manager; :func:`open_reader` picks the class."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - most readers hold nothing open
        """Release the file."""

    @property
    @abstractmethod
    def branches(self) -> list[str]:
        """The branch (column) names the file provides."""

    @property
    @abstractmethod
    def num_entries(self) -> int:
        """The number of entries (jets or events)."""

    @abstractmethod
    def units(self, chunk_size: int) -> list[Unit]:
        """The pieces of the file the loader deals out, in entry order."""

    @abstractmethod
    def read(self, unit: Unit, branches: Sequence[str], chunk_size: int) -> Iterator[Chunk]:
        """Read ``branches`` of ``unit`` in chunks of at most ``chunk_size`` entries."""

    def check_branches(self, branches: Sequence[str]) -> None:
        """Raise :class:`DataError` naming the first of ``branches`` the file lacks."""
        have = set(self.branches)
        for name in branches:
            if name not in have:
                close = difflib.get_close_matches(name, self.branches, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise DataError(f"branch not found{hint}", self.path, name)


class _RangeReader(Reader):
    """A reader that can read any range of entries; units are ``chunk_size`` ranges."""

    def units(self, chunk_size: int) -> list[Unit]:
        n = self.num_entries
        return [
            Unit(self.path, i, start, min(start + chunk_size, n))
            for i, start in enumerate(range(0, n, chunk_size))
        ]

    def read(self, unit: Unit, branches: Sequence[str], chunk_size: int) -> Iterator[Chunk]:
        self.check_branches(branches)
        for start in range(unit.start, unit.stop, chunk_size):
            stop = min(start + chunk_size, unit.stop)
            yield Chunk(self.path, start, self._read(list(branches), start, stop))

    @abstractmethod
    def _read(self, branches: list[str], start: int, stop: int) -> ak.Array:
        """Entries ``[start, stop)`` of ``branches`` as a record array."""


def _has_option(form: ak.forms.Form) -> bool:
    if form.is_option:
        return True
    if isinstance(form, (ak.forms.RecordForm, ak.forms.UnionForm)):
        return any(_has_option(c) for c in form.contents)
    content = getattr(form, "content", None)
    return content is not None and _has_option(content)


def _no_options(arrays: ak.Array, path: Path) -> ak.Array:
    """Strip option types (nullable Parquet columns); a real null is an error."""
    if not _has_option(arrays.layout.form):  # the common case, checked cheaply
        return arrays
    out = {}
    for name in arrays.fields:
        column = arrays[name]
        if "?" in str(column.type) or "option" in str(column.type):
            nulls = sum(int(ak.sum(ak.is_none(column, axis=a))) for a in range(column.ndim))
            if nulls:
                raise DataError(f"{nulls} null (missing) values", path, name)
            column = ak.drop_none(column)
        out[name] = column
    return ak.zip(out, depth_limit=1)


class RootReader(_RangeReader):
    """A TTree in a ROOT file (``treename``, or the file's only TTree)."""

    def __init__(self, path: Path, treename: str | None = None) -> None:
        super().__init__(path)
        try:
            self._file = uproot.open(path)
            classes = self._file.classnames(recursive=True)
        except _ROOT_ERRORS as err:
            raise DataError(f"not a readable ROOT file ({err})".replace("\n", " "), path) from None
        objects = {key.rsplit(";", 1)[0]: cls for key, cls in classes.items()}
        trees = sorted(k for k, cls in objects.items() if cls == "TTree")
        if treename is None:
            if len(trees) != 1:
                found = ", ".join(f"{k} ({c})" for k, c in objects.items()) or "nothing"
                raise DataError(
                    f"expected exactly one TTree, found {found}; set treename in the data config",
                    path,
                )
            treename = trees[0]
        elif objects.get(treename, "").endswith("RNTuple"):
            raise DataError(
                f"'{treename}' is an RNTuple; heptagon reads TTrees (convert it, e.g. with "
                "ROOT's RNTupleImporter in reverse or uproot -> Parquet)",
                path,
            )
        elif treename not in trees:
            raise DataError(f"no TTree '{treename}' (TTrees: {', '.join(trees) or 'none'})", path)
        self._tree = self._file[treename]

    def close(self) -> None:
        self._file.close()

    @property
    def branches(self) -> list[str]:
        return list(self._tree.keys(recursive=False))

    @property
    def num_entries(self) -> int:
        return int(self._tree.num_entries)

    def _read(self, branches: list[str], start: int, stop: int) -> ak.Array:
        try:
            return self._tree.arrays(branches, entry_start=start, entry_stop=stop)
        except _ROOT_ERRORS as err:
            raise DataError(
                f"cannot read entries {start}-{stop} (truncated or corrupt? {err})".replace(
                    "\n", " "
                ),
                self.path,
            ) from None


class ParquetReader(Reader):
    """A Parquet file, one row per entry; units are row groups."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._file = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"not a readable Parquet file ({err})", path) from None

    def close(self) -> None:
        self._file.close()

    @property
    def branches(self) -> list[str]:
        return list(self._file.schema_arrow.names)

    @property
    def num_entries(self) -> int:
        return int(self._file.metadata.num_rows)

    def units(self, chunk_size: int) -> list[Unit]:
        units, start = [], 0
        for i in range(self._file.metadata.num_row_groups):
            stop = start + self._file.metadata.row_group(i).num_rows
            units.append(Unit(self.path, i, start, stop))
            start = stop
        return units

    def read(self, unit: Unit, branches: Sequence[str], chunk_size: int) -> Iterator[Chunk]:
        self.check_branches(branches)
        try:
            if unit.stop - unit.start <= chunk_size:  # one read: faster than iter_batches
                # (yielded straight from the expression: the suspended generator pins nothing)
                yield Chunk(
                    self.path,
                    unit.start,
                    self._arrays(self._file.read_row_group(unit.index, columns=list(branches))),
                )
                return
            start = unit.start  # streamed: memory follows chunk_size, not the row group
            batches = self._file.iter_batches(
                batch_size=chunk_size, row_groups=[unit.index], columns=list(branches)
            )
            for batch in batches:
                yield Chunk(self.path, start, self._arrays(batch))
                start += batch.num_rows
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"cannot read row group {unit.index} ({err})", self.path) from None

    def _arrays(self, data: pa.Table | pa.RecordBatch) -> ak.Array:
        return _no_options(ak.from_arrow(data), self.path)


def _jets_from_particles(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray, real: np.ndarray
) -> dict[str, Any]:
    """JetClass branches from zero-padded ``(jets, particles)`` momenta; ``real`` marks
    the particles. The jet is the four-vector sum of its particles."""
    counts = real.sum(axis=1)
    jet: Any = vector.array(
        {
            "px": (px * real).sum(axis=1),
            "py": (py * real).sum(axis=1),
            "pz": (pz * real).sum(axis=1),
            "E": (energy * real).sum(axis=1),
        }
    )
    part: Any = vector.array({"px": px[real], "py": py[real], "pz": pz[real], "E": energy[real]})
    jet_eta, jet_phi = np.repeat(jet.eta, counts), np.repeat(jet.phi, counts)

    def jagged(flat: np.ndarray) -> ak.Array:
        return ak.unflatten(np.asarray(flat, dtype=np.float32), counts)

    return {
        "part_px": jagged(part.px),
        "part_py": jagged(part.py),
        "part_pz": jagged(part.pz),
        "part_energy": jagged(part.E),
        "part_deta": jagged(part.eta - jet_eta),
        "part_dphi": jagged(delta_phi(part.phi, jet_phi)),
        "jet_pt": jet.pt.astype(np.float32),
        "jet_eta": jet.eta.astype(np.float32),
        "jet_phi": jet.phi.astype(np.float32),
        "jet_energy": jet.E.astype(np.float32),
        "jet_mass": jet.mass.astype(np.float32),
        "jet_nparticles": counts.astype(np.float32),
    }


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


def _pickled_names(raw: bytes, path: Path, attr: str) -> list[str]:
    """The list of str that the pickle ``raw`` (a PyTables attribute) holds, read WITHOUT
    unpickling: PyTables stores pandas' column names as pickles, and ``pickle.loads`` would
    run whatever a crafted file asks for. :func:`pickletools.genops` only disassembles the
    stream; a tiny stack machine then builds the lists and tuples of plain constants that
    the opcodes in :data:`_PLAIN_OPCODES` describe. Any other opcode, a malformed stream or
    a result other than a list of str is a :class:`DataError` naming the file and attribute.
    """

    def refuse(why: str) -> DataError:
        return DataError(f"attribute '{attr}': {why}", path)

    mark = object()
    stack: list[Any] = []
    memo: dict[Any, Any] = {}

    def pop_mark() -> list[Any]:
        if mark not in stack:
            raise refuse("malformed pickle (no MARK)")
        i = len(stack) - 1 - stack[::-1].index(mark)
        items = stack[i + 1 :]
        del stack[i:]
        return items

    try:
        for opcode, arg, _ in pickletools.genops(raw):
            name = opcode.name
            if name not in _PLAIN_OPCODES:
                raise refuse(f"pickle opcode {name} refused (only plain lists of names are read)")
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                break
            if name == "MARK":
                stack.append(mark)
            elif name == "POP":
                stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "LIST":
                stack.append(pop_mark())
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name in _TUPLE_SIZES:
                n = _TUPLE_SIZES[name]
                items = stack[len(stack) - n :]
                del stack[len(stack) - n :]
                stack.append(tuple(items))
            elif name in ("APPEND", "APPENDS"):
                items = [stack.pop()] if name == "APPEND" else pop_mark()
                target = stack[-1]
                if not isinstance(target, list):
                    raise refuse("malformed pickle (APPEND to a non-list)")
                target.extend(items)
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            else:  # a str or int constant: genops has decoded it
                stack.append(arg)
    except DataError:
        raise
    except (ValueError, IndexError, KeyError) as err:
        raise refuse(f"malformed pickle ({err})") from None
    result = stack[-1] if len(stack) == 1 else None
    if not (isinstance(result, list) and all(isinstance(x, str) for x in result)):
        raise refuse("expected a pickled list of column names")
    return result


class TopLandscapeReader(_RangeReader):
    """The top-tagging landscape HDF5 layout, a pandas ``format='table'`` store (needs the
    ``hdf5`` extra: h5py).

    Read with h5py, which never unpickles: the rows are the compound dataset
    ``/<key>/table`` (fields ``index``, ``values_block_<k>`` and any data columns), and the
    column names of each field come from its ``<field>_kind`` attribute, decoded by
    :func:`_pickled_names` without executing anything. pandas and PyTables are not used:
    they unpickle attributes, and a crafted file would run code on opening.
    """

    _PARTICLE = ("part_px", "part_py", "part_pz", "part_energy", "part_deta", "part_dphi")
    _JET = ("jet_pt", "jet_eta", "jet_phi", "jet_energy", "jet_mass", "jet_nparticles")

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
            self._file = h5py.File(path, "r")
        except OSError as err:
            raise DataError(f"not a readable HDF5 file ({err})", path) from None
        try:
            self._table, self._where = self._layout(h5py)
        except OSError as err:
            self._file.close()
            raise DataError(f"not a readable HDF5 file ({err})", path) from None
        except DataError:
            self._file.close()
            raise
        self._n = sum(1 for name in self._where if name.startswith("E_"))
        if self._n == 0:
            self._file.close()
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
            names = _pickled_names(raw, path, attr)
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
                self._file.close()
                raise DataError("column missing from the top-landscape layout", self.path, name)
            field, pos = self._where[name]
            out, at = plan.setdefault(field, ([], []))
            out.append(j)
            at.append(pos)
        return [(field, out, at) for field, (out, at) in plan.items()]

    def close(self) -> None:
        self._file.close()

    @property
    def branches(self) -> list[str]:
        labels = ["label_Tbqq", "label_QCD"] if self._has_label else []
        return [*self._PARTICLE, *self._JET, *labels]

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
        out = _jets_from_particles(cols["PX"], cols["PY"], cols["PZ"], cols["E"], cols["E"] > 0)
        if self._label is not None:
            signal = columns(self._label)[:, 0] == 1
            out |= {"label_Tbqq": signal, "label_QCD": ~signal}
        return ak.zip({b: out[b] for b in branches}, depth_limit=1)


class _NpyInZip:
    """Row ranges of one C-ordered ``.npy`` member of an ``.npz``, without loading it all."""

    def __init__(self, archive: zipfile.ZipFile, name: str, path: Path) -> None:
        self._archive, self._name, self._path = archive, name, path
        with self._open() as f:
            version = np.lib.format.read_magic(f)
            header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            self.shape, fortran, self.dtype = header(f)
            self._offset = f.tell()
        if fortran:
            raise DataError("Fortran-ordered arrays are not supported", path, name)
        self._row = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def _open(self) -> IO[bytes]:
        return self._archive.open(f"{self._name}.npy")

    def rows(self, start: int, stop: int) -> np.ndarray:
        with self._open() as f:
            f.seek(self._offset + start * self._row)
            buf = f.read((stop - start) * self._row)
        if len(buf) != (stop - start) * self._row:
            raise DataError(f"truncated: rows {start}-{stop} missing", self._path, self._name)
        return np.frombuffer(buf, self.dtype).reshape((stop - start, *self.shape[1:]))


def _pdg_table(pids: np.ndarray, path: Path) -> dict[str, np.ndarray]:
    """Mass (GeV), charge and JetClass particle-type flags for each PDG id in ``pids``."""
    try:
        mass = masses(pids)
    except KeyError as err:
        raise DataError(f"unknown PDG id {err.args[0]}", path, "X") from None
    charge = charges(pids)
    return {"mass": mass, "part_charge": charge, **type_flags(categories(pids, charge))}


class QuarkGluonReader(_RangeReader):
    """The quark/gluon ``.npz`` layout (``X``: pT, rapidity, phi, PDG id; ``y``)."""

    _FLAGS = (
        "part_charge",
        "part_isChargedHadron",
        "part_isNeutralHadron",
        "part_isPhoton",
        "part_isElectron",
        "part_isMuon",
    )

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._zip = zipfile.ZipFile(path)
            members = {n.removesuffix(".npy") for n in self._zip.namelist()}
            if "X" not in members:
                raise DataError("no array 'X' (jets x particles x (pT, y, phi, pid))", path, "X")
            self._x = _NpyInZip(self._zip, "X", path)
            self._y = _NpyInZip(self._zip, "y", path) if "y" in members else None
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise DataError(f"not a readable .npz file ({err})", path) from None
        if len(self._x.shape) != 3 or self._x.shape[2] < 4:
            shape = self._x.shape
            raise DataError(f"X has shape {shape}, expected (jets, particles, 4)", path, "X")

    def close(self) -> None:
        self._zip.close()

    @property
    def branches(self) -> list[str]:
        labels = ["label_q", "label_g"] if self._y is not None else []
        return [*TopLandscapeReader._PARTICLE, *self._FLAGS, *TopLandscapeReader._JET, *labels]

    @property
    def num_entries(self) -> int:
        return int(self._x.shape[0])

    def _read(self, branches: list[str], start: int, stop: int) -> ak.Array:
        x = self._x.rows(start, stop).astype(np.float64)
        pt, rapidity, phi, pid = (x[..., i] for i in range(4))
        real = pt > 0
        info = _pdg_table(pid[real], self.path)
        mass = np.zeros_like(pt)
        mass[real] = info["mass"]
        mt = np.hypot(pt, mass)
        phi = wrap_phi(phi)
        out = _jets_from_particles(
            pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(rapidity), mt * np.cosh(rapidity), real
        )
        counts = real.sum(axis=1)
        for name in self._FLAGS:
            out[name] = ak.unflatten(info[name].astype(np.float32), counts)
        if self._y is not None:
            quark = self._y.rows(start, stop) == 1
            out |= {"label_q": quark, "label_g": ~quark}
        return ak.zip({b: out[b] for b in branches}, depth_limit=1)


def open_reader(path: str | Path, treename: str | None = None) -> Reader:
    """Open ``path`` with the reader its suffix calls for (see :data:`SUFFIXES`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    suffix = path.suffix.lower()
    if suffix == ".root":
        return RootReader(path, treename)
    if suffix in (".parquet", ".parq"):
        return ParquetReader(path)
    if suffix in (".h5", ".hdf5"):
        return TopLandscapeReader(path)
    if suffix == ".npz":
        return QuarkGluonReader(path)
    raise DataError(f"unknown file type (expected one of {', '.join(SUFFIXES)})", path)


def expand_files(sources: str | Path | Sequence[str | Path]) -> list[Path]:
    """Input files from paths, glob patterns and dataset dirs (their ``shards/``), sorted
    within each source. Raises :class:`DataError` for a source that matches nothing."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            root = path / "shards" if (path / "shards").is_dir() else path
            found = sorted(p for p in root.iterdir() if p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(str(source)))
        if not found:
            raise DataError("no input files found", source)
        files.extend(found)
    return files
