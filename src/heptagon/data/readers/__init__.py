"""One reader per input format, behind :func:`heptagon.data.io.open_reader`.

Every reader splits a file into :class:`Unit` s (Parquet: row groups; the others: ranges
of ``chunk_size`` entries), the pieces the loader deals out to workers, and reads a unit
as awkward arrays of at most ``chunk_size`` entries:

- :mod:`~heptagon.data.readers.root`: ROOT TTrees (uproot);
- :mod:`~heptagon.data.readers.parquet`: Parquet (pyarrow);
- :mod:`~heptagon.data.readers.hdf5`: the top-tagging landscape HDF5 layout (h5py);
- :mod:`~heptagon.data.readers.npz`: the quark/gluon ``.npz`` layout.

The two public layouts are converted on the fly to the JetClass branch names
(:mod:`~heptagon.data.readers.layouts`). Every failure is a :class:`DataError` naming the
file and, where one is at fault, the branch.
"""

from heptagon.data.readers.base import Chunk, Reader, Unit

__all__ = ["Chunk", "Reader", "Unit"]
