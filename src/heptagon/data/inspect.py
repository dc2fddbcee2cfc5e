"""``heptagon data inspect FILES --config CFG``: what the files hold, seen through a config.

:func:`inspect_files` returns an :class:`Inspection` (branches, entries, class counts, a
summary of each input variable before standardisation) and draws one histogram per input
into ``out_dir``; :meth:`Inspection.table` renders the summary with rich.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table as RichTable

from heptagon.data.config import DataConfig
from heptagon.data.io import expand_files, open_reader
from heptagon.data.jagged import Jagged
from heptagon.data.pipeline import iter_tables
from heptagon.data.transform import Table, Transform

__all__ = ["Inspection", "VariableSummary", "inspect_files"]


@dataclass(frozen=True)
class VariableSummary:
    """Raw values of one input variable (all particles pooled for jagged groups);
    ``nan`` counts NaN/inf values, the other numbers cover entries without any."""

    group: str
    name: str
    count: int
    nan: int
    minimum: float
    median: float
    maximum: float


@dataclass(frozen=True)
class Inspection:
    """The result of :func:`inspect_files`."""

    branches: dict[str, list[str]]
    entries: dict[str, int]
    selected: int
    class_counts: dict[str, int]
    variables: list[VariableSummary]
    plots: list[Path] = field(default_factory=list)

    def table(self) -> RichTable:
        """The per-input summary as a rich table."""
        total = sum(self.entries.values())
        title = f"{len(self.entries)} file(s), {total} entries, {self.selected} selected"
        if self.class_counts:
            title += " | " + ", ".join(f"{k}: {v}" for k, v in self.class_counts.items())
        out = RichTable(title=title)
        for column in ("group", "variable", "values", "NaN/inf", "min", "median", "max"):
            out.add_column(column, justify="left" if column in ("group", "variable") else "right")
        for v in self.variables:
            out.add_row(
                v.group,
                v.name,
                str(v.count),
                str(v.nan),
                f"{v.minimum:.4g}",
                f"{v.median:.4g}",
                f"{v.maximum:.4g}",
            )
        return out


def _plot(values: np.ndarray, name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    from heptagon.io import atomic_path

    fig, ax = plt.subplots(figsize=(5, 4))
    counts, edges = np.histogram(values, bins=50)
    mplhep.histplot(counts, edges, ax=ax)
    ax.set_xlabel(name)
    ax.set_ylabel("entries")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def inspect_files(
    files: str | Path | Sequence[str | Path],
    config: DataConfig,
    out_dir: str | Path | None = None,
    *,
    max_entries: int | None = None,
    chunk_size: int = 10_000,
) -> Inspection:
    """Inspect ``files`` through ``config``: every entry (all splits), or about the first
    ``max_entries`` entries passing the selection.

    NaN/inf values are counted, not rejected, whatever the config's ``nan_policy``; the
    statistics, class counts and histograms (``out_dir/<group>.<variable>.png``, when
    given) cover the entries without any. Values are raw (before standardisation)."""
    paths = expand_files(files)
    branches, entries, units = {}, {}, []
    for path in paths:
        with open_reader(path, config.treename) as reader:
            branches[str(path)] = reader.branches
            entries[str(path)] = reader.num_entries
            units.extend(reader.units(chunk_size))
    transform = Transform(config.model_copy(update={"nan_policy": "drop"}), None)
    tables, n = [], 0
    for table in iter_tables(units, transform, chunk_size, files_at_once=1):
        tables.append(table)
        n += len(table)
        if max_entries is not None and n >= max_entries:
            break
    transform.check_selected()
    sample = Table.concatenate(tables)
    labels = config.labels
    class_counts = {}
    if labels is not None and labels.type == "simple" and sample.label is not None:
        found = np.bincount(sample.label, minlength=len(labels.names))
        class_counts = {name: int(c) for name, c in zip(labels.names, found, strict=True)}
    summaries, plots = [], []
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for group, spec in config.inputs.items():
        matrix = sample.inputs[group]
        matrix = matrix.values if isinstance(matrix, Jagged) else matrix
        for i, var in enumerate(spec.vars):
            values = matrix[:, i]
            stats = np.quantile(values, [0, 0.5, 1]) if len(values) else [np.nan] * 3
            nan = transform.nan_counts.get((group, var.name), 0)
            summaries.append(VariableSummary(group, var.name, len(values), nan, *map(float, stats)))
            if out is not None and len(values):
                path = out / f"{group}.{var.name}.png"
                _plot(values, var.name, path)
                plots.append(path)
    return Inspection(branches, entries, len(sample), class_counts, summaries, plots)
