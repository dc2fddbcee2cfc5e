"""Score raw files with a heptagon ONNX export: ``predict(model.onnx, files, out_dir)``.

Only the ONNX file is needed: its metadata holds the data config and the pre-processing
(:mod:`heptagon.publish.onnx`), so a file is read exactly as in training, through the data
stage (:class:`~heptagon.data.transform.Transform`, :func:`~heptagon.data.loader.pad_table`),
except that

- every entry is scored: the training ``selection`` is not applied (it is in the
  metadata, to apply to the output), and labels and weights are not read;
- ``nan_policy: drop`` becomes ``error`` (dropping entries would break row alignment);
  ``zero`` and ``error`` are kept.

Each input file gives ``out_dir/<stem>.parquet``, row-aligned with the input, with one
float32 ``score_<Class>`` column per model output and the requested observer branches
(any name the data config can resolve: a branch, a ``new_variables`` entry or a standard
feature). A model carrying a DDT map (:mod:`heptagon.physics.ddt`) adds a ``ddt_score``
column, its signal score minus the map's threshold at the jet's (rho, pT): positive
passes (the file needs ``jet_sdmass`` and ``jet_pt``). With a scale-factor table
(``scale_factors``: ``heptagon sf measure``'s ``scale_factors.json``, docs/scale-factors.md)
the output gets the per-jet weights ``sf_weight``, ``sf_weight_up``, ``sf_weight_down``
(:func:`heptagon.physics.scale_factors.jet_weights`, from the jet's pT and whether its score
passes the table's cut; the pT branch is written too). Entries are read in file order in
chunks; within a chunk they are bucketed by particle multiplicity (each batch padded only
to its longest jet) and the scores put back in file order.

Every input is checked before anything is written: the model file (a bundle's checksums
included, unless ``verify=False``: :func:`heptagon.publish.onnx.model_file`), each file's
branches, and the shapes of its first entries (jagged where the model wants particles, one
value per entry for flat groups and observers), and the output directory is created
(parents included). Outputs are written atomically, one file at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uproot
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from heptagon.artifacts.scale_factors import ScaleFactorTable
from heptagon.data.config import DataConfig
from heptagon.data.io import expand_files, open_reader
from heptagon.data.loader import mask_name, pad_table
from heptagon.data.pipeline import iter_tables
from heptagon.data.transform import Table, Transform
from heptagon.errors import ConfigError, DataError
from heptagon.io import atomic_path, make_dir
from heptagon.logs import get_logger
from heptagon.physics.ddt import DDT_OBSERVERS
from heptagon.physics.scale_factors import jet_weights
from heptagon.publish.onnx import OnnxModel, load_onnx

__all__ = [
    "DDT_COLUMN",
    "DEFAULT_BATCH_SIZE",
    "FORMATS",
    "FileJob",
    "Scorer",
    "plan_predictions",
    "predict",
    "predict_file",
    "progress_bar",
    "reading_config",
    "score_columns",
    "truth_branches",
    "write_output",
]

DEFAULT_BATCH_SIZE = 256
#: output format (``--format``) -> file suffix
FORMATS: dict[str, str] = {"parquet": ".parquet", "root": ".root"}
#: the TTree name of a ROOT output whose input is not a ROOT file (heptagon's shards' name)
_DEFAULT_TREE = "tree"
#: the output column of a model with a DDT map
DDT_COLUMN = "ddt_score"
#: entries read (and bucketed) at once
_CHUNK_SIZE = 10_000
#: entries of each file read up front to check shapes
_PROBE_ENTRIES = 16
_log = get_logger("predict")


@dataclass(frozen=True)
class FileJob:
    """One input file, its output path, and its number of entries."""

    source: Path
    output: Path
    entries: int


def score_columns(model: OnnxModel) -> list[str]:
    """The output's score column names: ``score_<Class>`` per model output."""
    return [f"score_{name}" for name in model.class_names]


def truth_branches(model: OnnxModel) -> list[str]:
    """The one-hot label branches of the model's data config (``label_QCD``...), copied to
    the output when a file has them all; none for label expressions or a regression."""
    labels = model.data_config.labels
    if labels is None or labels.type != "simple" or isinstance(labels.value, dict):
        return []
    return list(labels.value)


def reading_config(
    model: OnnxModel, observers: Sequence[str] = (), truth: Sequence[str] = ()
) -> DataConfig:
    """The export's data config as predict reads with it (see the module docstring); a
    DDT map's observers and the ``truth`` label branches are read too."""
    read = list(observers)
    for extra in ((*DDT_OBSERVERS,) if model.ddt is not None else ()) + tuple(truth):
        if extra not in read:
            read.append(extra)
    data = model.data_config.model_dump(mode="json")
    data.update(selection=None, labels=None, weights=None, observers=read)
    if data["nan_policy"] == "drop":
        data["nan_policy"] = "error"
    return DataConfig.model_validate(data)


def plan_predictions(
    model: OnnxModel,
    files: Sequence[Path],
    out_dir: Path,
    observers: Sequence[str] = (),
    fmt: str = "parquet",
) -> list[FileJob]:
    """Check every input against the model and name the outputs (``<stem>.parquet`` or
    ``<stem>.root`` by ``fmt``); writes nothing.

    Raises :class:`DataError` naming the file (and branch) for a missing or unreadable
    file, a missing branch, a value of the wrong shape in the first entries, an observer
    clashing with a score column, or two inputs (or an input and an output) sharing a path;
    :class:`ConfigError` for an unknown ``fmt``.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown output format {fmt!r} (one of {', '.join(FORMATS)})", "format")
    clash = set(observers) & {*score_columns(model), DDT_COLUMN}
    if clash:
        raise DataError(f"observer(s) {sorted(clash)} clash with the score columns", model.path)
    config = reading_config(model, observers)
    transform = Transform(config, model.preprocess, with_labels=False)
    jobs: list[FileJob] = []
    outputs: dict[Path, Path] = {}
    sources = {path.resolve() for path in files}
    for path in files:
        output = out_dir / f"{path.stem}{FORMATS[fmt]}"
        if output.resolve() in outputs:
            raise DataError(
                f"has the same stem as {outputs[output.resolve()]}: both would write {output}",
                path,
            )
        if output.resolve() in sources:
            raise DataError(f"the output {output} would overwrite an input", path)
        outputs[output.resolve()] = path
        with open_reader(path, config.treename) as reader:
            branches = transform.branches(reader.branches)
            reader.check_branches(branches)
            units = reader.units(_CHUNK_SIZE)
            if units:  # the shapes: jagged vs one value per entry, NaN in the first entries
                transform(next(reader.read(units[0], branches, _PROBE_ENTRIES)))
            jobs.append(FileJob(path, output, reader.num_entries))
    return jobs


class Scorer:
    """An ONNX Runtime session on a heptagon export (a bundle's checksums verified unless
    ``verify`` is false) and the reading set-up for it."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        observers: Sequence[str] = (),
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        verify: bool = True,
        scale_factors: ScaleFactorTable | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = load_onnx(model_path, verify=verify)
        self.scale_factors = scale_factors
        if scale_factors is not None:
            if scale_factors.score not in score_columns(self.model):
                raise DataError(
                    f"the scale factors cut on {scale_factors.score!r}, not a score of this "
                    f"model ({', '.join(score_columns(self.model))})",
                    self.model.path,
                )
            if scale_factors.pt_variable not in observers:
                observers = (*observers, scale_factors.pt_variable)
        self.observers = tuple(observers)
        self.config = reading_config(self.model, observers)
        self.batch_size = batch_size
        produced = set(self.model.preprocess.inputs) | {
            mask_name(group)
            for group, params in self.model.preprocess.inputs.items()
            if params.length is not None and params.mask
        }
        missing = [name for name in self.model.input_names if name not in produced]
        if missing:
            raise DataError(
                f"the model takes inputs {missing} that its pre-processing does not produce",
                self.model.path,
            )
        self.session = self.model.session(threads)

    def score_table(self, table: Table) -> np.ndarray:
        """``(len(table), n_outputs)`` float32 scores, in the table's order."""
        out = np.empty((len(table), len(self.model.class_names)), dtype=np.float32)
        order = np.argsort(table.multiplicity, kind="stable")
        for start in range(0, len(table), self.batch_size):
            index = order[start : start + self.batch_size]
            tensors = pad_table(table.take(index), self.model.preprocess).tensors()
            feed = {name: tensors[name].numpy() for name in self.model.input_names}
            (out[index],) = self.session.run([self.model.output_name], feed)
        return out

    def score_file(
        self, source: Path, output: Path, advance: Callable[[int], None] | None = None
    ) -> Path:
        """Score every entry of ``source`` and write ``output`` atomically (ROOT for a
        ``.root`` output, else Parquet: :func:`write_output`)."""
        with open_reader(source, self.config.treename) as reader:
            units = reader.units(_CHUNK_SIZE)
            truth = truth_branches(self.model)
            truth = truth if set(truth) <= set(reader.branches) else []
        config = reading_config(self.model, self.observers, truth)
        transform = Transform(config, self.model.preprocess, with_labels=False)
        scores, observers = [], []
        for table in iter_tables(units, transform, _CHUNK_SIZE, files_at_once=1):
            scores.append(self.score_table(table))
            observers.append(table.observers)
            if advance is not None:
                advance(len(table))
        n_out = len(self.model.class_names)
        matrix = np.concatenate(scores) if scores else np.empty((0, n_out), dtype=np.float32)
        columns: dict[str, np.ndarray] = dict(zip(score_columns(self.model), matrix.T, strict=True))
        read = {
            name: np.concatenate(parts) if (parts := [o[name] for o in observers]) else np.empty(0)
            for name in config.observers
        }
        ddt = self.model.ddt
        if ddt is not None:
            signal = matrix[:, self.model.class_names.index(ddt.score)]
            ddt_score = ddt(signal, read["jet_sdmass"], read["jet_pt"]).astype(np.float32)
            columns[DDT_COLUMN] = ddt_score
        columns.update((name, read[name]) for name in (*truth, *self.observers))
        sf = self.scale_factors
        if sf is not None:
            columns.update(
                jet_weights(
                    read[sf.pt_variable],
                    columns[sf.score] > sf.threshold,
                    sf.pt_edges,
                    [b.sf for b in sf.bins],
                    [b.sf_err for b in sf.bins],
                    [b.eff_sim for b in sf.bins],
                )
            )
        return write_output(columns, output, _tree_name(source, config))


def _tree_name(source: Path, config: DataConfig) -> str:
    """The TTree a ROOT output is named after: the input's (the config's ``treename``, or a
    ROOT file's only TTree, which its reader has checked), else heptagon's ``tree``."""
    if config.treename is not None:
        return config.treename
    if source.suffix.lower() != ".root":
        return _DEFAULT_TREE
    with uproot.open(source) as file:
        (name,) = {
            str(key).rsplit(";", 1)[0] for key, cls in file.classnames().items() if cls == "TTree"
        }
    return name


def write_output(columns: Mapping[str, np.ndarray], output: Path, tree: str) -> Path:
    """Write one predict output atomically: a TTree ``tree`` (one entry per input entry, in
    order: a friend of the input tree) when ``output`` ends in ``.root``, else a Parquet
    table. Raises :class:`DataError` naming ``output`` when it cannot be written."""
    make_dir(output.parent)
    try:
        with atomic_path(output) as tmp:
            if output.suffix == FORMATS["root"]:
                arrays = {name: np.asarray(value) for name, value in columns.items()}
                with uproot.recreate(tmp) as file:  # mktree: a TTree (uproot's default: RNTuple)
                    types = {name: value.dtype for name, value in arrays.items()}
                    file.mktree(tree, types).extend(arrays)
            else:
                pq.write_table(pa.table(dict(columns)), tmp)
    except OSError as err:
        raise DataError(f"cannot write the output ({err})", output) from None
    return output


def predict_file(
    model_path: str | Path,
    source: str | Path,
    output: str | Path,
    *,
    observers: Sequence[str] = (),
    threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    verify: bool = True,
) -> Path:
    """Score one file into ``output`` (the task :mod:`heptagon.infer.distributed` runs)."""
    scorer = Scorer(
        model_path, observers=observers, threads=threads, batch_size=batch_size, verify=verify
    )
    return scorer.score_file(Path(source), Path(output))


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over ``total`` jets; yields ``advance(n)``."""
    with Progress(
        TextColumn("predict"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("jets"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    ) as bar:
        task = bar.add_task("jets", total=total)
        yield lambda n: bar.advance(task, n)


def predict(
    model_path: str | Path,
    files: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    observers: Sequence[str] = (),
    progress: bool = True,
    verify: bool = True,
    fmt: str = "parquet",
    scale_factors: str | Path | None = None,
) -> list[Path]:
    """Score ``files`` (paths, globs, dataset dirs) with the ONNX export at ``model_path``
    (a file, or a bundle directory).

    Writes ``out_dir/<stem>.parquet`` (``fmt="root"``: ``<stem>.root``) per input (see the
    module docstring) and returns their paths in input order. ``threads``: ONNX Runtime
    intra-op threads (None: :func:`heptagon.cpu.thread_count`); ``verify``: check a bundle's
    ``SHA256SUMS`` first; ``scale_factors``: a scale-factor table whose per-jet weights are
    added (module docstring). Everything is checked (:func:`plan_predictions`) before the
    first output is written.
    """
    table = None if scale_factors is None else ScaleFactorTable.read(scale_factors)
    scorer = Scorer(
        model_path,
        observers=observers,
        threads=threads,
        batch_size=batch_size,
        verify=verify,
        scale_factors=table,
    )
    jobs = plan_predictions(scorer.model, expand_files(files), Path(out_dir), scorer.observers, fmt)
    make_dir(Path(out_dir))
    start = time.perf_counter()
    outputs: list[Path] = []
    with progress_bar(sum(job.entries for job in jobs), progress) as advance:
        for i, job in enumerate(jobs, 1):
            outputs.append(scorer.score_file(job.source, job.output, advance))
            _log.info(
                "file %d/%d done: %s -> %s, %d jets, %.1f s",
                i, len(jobs), job.source, job.output, job.entries, time.perf_counter() - start,
            )  # fmt: skip
    return outputs
