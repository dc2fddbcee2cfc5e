"""ROOT TTrees, read with uproot (a remote file by its URL: uproot streams the baskets)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import uproot

from heptagon.data.readers.base import RangeReader
from heptagon.data.sources import RemoteFile
from heptagon.errors import DataError

__all__ = ["RootReader"]

# what uproot raises on a truncated or corrupt file
_ROOT_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    uproot.deserialization.DeserializationError,
)


class RootReader(RangeReader):
    """A TTree in a ROOT file (``treename``, or the file's only TTree)."""

    def __init__(self, path: Path, treename: str | None = None) -> None:
        super().__init__(path)
        try:
            if isinstance(path, RemoteFile):
                path.check_support()
                # the dict form: a URL's colons are not an object path
                self._file = uproot.open({path.url: None})
            else:
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
