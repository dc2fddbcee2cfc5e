"""Parquet files, read with pyarrow by row group (a remote file through fsspec)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import awkward as ak
import pyarrow as pa
import pyarrow.parquet as pq

from heptagon.data.readers.base import Chunk, Reader, Unit
from heptagon.errors import DataError

__all__ = ["ParquetReader"]


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


class ParquetReader(Reader):
    """A Parquet file, one row per entry; units are row groups."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._file = pq.ParquetFile(self._open_source(cache_type="none"))
        except (OSError, pa.ArrowException) as err:
            self._close_remote()
            raise DataError(f"not a readable Parquet file ({err})", path) from None

    def close(self) -> None:
        self._file.close()
        self._close_remote()

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
