"""The quark/gluon ``.npz`` layout (arXiv:1810.05165), read member by member.

``X``: jets x particles x (pT, rapidity, phi, PDG id), zero-padded; ``y``: 1 quark,
0 gluon -> the JetClass branches of :mod:`~heptagon.data.readers.layouts` (``part_*``,
``jet_*``, ``event``, soft-drop mass and N-subjettiness of R = 0.4 jets), ``part_charge``
and the ``part_is*`` flags from the PDG id (via ``particle``), ``label_q, label_g``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

import awkward as ak
import numpy as np

from heptagon.data.readers.base import RangeReader
from heptagon.data.readers.layouts import EVENT, JET, PARTICLE, SUBSTRUCTURE, jet_branches
from heptagon.errors import DataError
from heptagon.physics.kinematics import wrap_phi
from heptagon.physics.pdg import categories, charges, masses, type_flags

__all__ = ["QuarkGluonReader"]


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


class QuarkGluonReader(RangeReader):
    """The quark/gluon ``.npz`` layout (``X``: pT, rapidity, phi, PDG id; ``y``)."""

    #: the dataset's jets: anti-kT R = 0.4 (arXiv:1810.05165)
    RADIUS = 0.4

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
            self._zip = zipfile.ZipFile(self._open_source())
            members = {n.removesuffix(".npy") for n in self._zip.namelist()}
            if "X" not in members:
                raise DataError("no array 'X' (jets x particles x (pT, y, phi, pid))", path, "X")
            self._x = _NpyInZip(self._zip, "X", path)
            self._y = _NpyInZip(self._zip, "y", path) if "y" in members else None
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            self._close_remote()
            raise DataError(f"not a readable .npz file ({err})", path) from None
        if len(self._x.shape) != 3 or self._x.shape[2] < 4:
            shape = self._x.shape
            raise DataError(f"X has shape {shape}, expected (jets, particles, 4)", path, "X")

    def close(self) -> None:
        self._zip.close()
        self._close_remote()

    @property
    def branches(self) -> list[str]:
        labels = ["label_q", "label_g"] if self._y is not None else []
        return [*PARTICLE, *self._FLAGS, *JET, *SUBSTRUCTURE, EVENT, *labels]

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
        out = jet_branches(
            pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(rapidity), mt * np.cosh(rapidity),
            real, start=start, radius=self.RADIUS, wanted=branches,
        )  # fmt: skip
        counts = real.sum(axis=1)
        for name in self._FLAGS:
            out[name] = ak.unflatten(info[name].astype(np.float32), counts)
        if self._y is not None:
            quark = self._y.rows(start, stop) == 1
            out |= {"label_q": quark, "label_g": ~quark}
        return ak.zip({b: out[b] for b in branches}, depth_limit=1)
