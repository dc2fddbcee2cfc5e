"""`heptagon generate`: sharded, reproducible, resumable jet samples.

A sample is split into shards of at most ``shard_size`` jets of one class. Each shard is
an independent Pythia run whose seed is derived from (seed, class, shard index), so the
same seed gives the same files whatever ``jobs`` is and under Dask. A finished shard is
written atomically with a sidecar record (entries, sha256, Pythia's cross section);
re-running the same command verifies and skips finished shards. ``manifest.json`` is
written last.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from importlib.metadata import version
from multiprocessing import get_context
from multiprocessing.managers import SyncManager
from pathlib import Path
from queue import Empty
from typing import Any, Literal, Protocol

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from heptagon.errors import ConfigError, DataError, Interrupted
from heptagon.generate.detector import DetectorConfig, apply_detector
from heptagon.generate.jets import FLAVOURS, JETS_PER_EVENT, JetSelection, build_jets
from heptagon.generate.options import GenerateOptions
from heptagon.generate.processes import Process, SampleSet, get_process
from heptagon.generate.truth import EventRecord, flavour_ghosts, truth_objects
from heptagon.io import atomic_path, read_json, sha256sum, write_json_atomic
from heptagon.logs import get_logger

__all__ = [
    "GenerateOptions",
    "Shard",
    "ShardResults",
    "Summary",
    "branch_names",
    "generate",
    "load_manifest",
    "make_pythia",
    "prepare_out",
    "pythia_settings",
    "run_shards",
    "versions",
    "write_table",
]

SCHEMA_VERSION = 1
ECM_GEV = 14000.0
#: Pythia events per ``nextBatch`` call (fixed: part of what makes a seed reproducible)
BATCH_EVENTS = 100
#: consecutive batches without a selected jet before the run gives up
MAX_EMPTY_BATCHES = 50
_MB_TO_PB = 1e9
_SEED_MAX = 900_000_000  # Pythia's Random:seed range
_log = get_logger("generate")

COMMON_SETTINGS = (
    f"Beams:eCM = {ECM_GEV}",
    "Print:quiet = on",
    "Random:setSeed = on",
    # particles with c*tau > 10 mm are stable (the LHC convention): K0S, Lambda reach the
    # calorimeters, b/c hadrons decay and displace their products
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10",
)


def pythia_settings(process: Process, pt_min: float, mpi: bool, seed: int) -> list[str]:
    """The full Pythia configuration of one shard. ``PhaseSpace:pTHatMin`` is 0.8 times the
    lower edge of the jet-pT window: a cut at the edge would sculpt the jet spectrum."""
    return [
        *COMMON_SETTINGS,
        f"PartonLevel:MPI = {'on' if mpi else 'off'}",
        f"PhaseSpace:pTHatMin = {0.8 * pt_min:g}",
        *process.settings,
        f"Random:seed = {seed}",
    ]


def shard_seed(seed: int, cls: str, index: int) -> int:
    """A Pythia seed in [1, 9e8) derived from the sample seed, class and shard index."""
    digest = hashlib.blake2b(f"{seed}:{cls}:{index}".encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (_SEED_MAX - 1)


@dataclass(frozen=True)
class ShardSpec:
    """One unit of work: ``n_jets`` jets of class ``cls`` written to ``path``."""

    cls: str
    label: str
    labels: tuple[str, ...]
    index: int
    n_jets: int
    seed: int
    settings: tuple[str, ...]
    selection: JetSelection
    detector: dict[str, Any] | None
    path: str
    format: str
    pileup: float = 0.0
    mitigation: Literal["none", "chs", "puppi"] = "none"
    library: str | None = None  # the minimum-bias library; None: no pile-up

    @property
    def entries(self) -> int:
        """Entries (jets) the shard holds."""
        return self.n_jets


class Shard(Protocol):
    """What the shard machinery needs of a unit of work (jet or event shard)."""

    @property
    def path(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def entries(self) -> int: ...


#: generates and writes one shard, calling ``report(n)`` as entries are made
ShardWorker = Callable[[Any, Callable[[int], None] | None], dict[str, Any]]


def write_table(table: dict[str, Any], path: Path, fmt: str) -> None:
    """Write flat or jagged columns atomically as Parquet, or as a ROOT TTree ``tree``
    where jagged branches sharing a prefix (``part_*``, ``Jet_*``) become one counted
    group (``npart``, ``nJet``)."""
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            ak.to_parquet(ak.zip(table, depth_limit=1), tmp, compression="zstd")
        else:
            import uproot

            groups: dict[str, dict[str, Any]] = {}
            flat: dict[str, Any] = {}
            for name, values in table.items():
                prefix = name.split("_", 1)[0]
                if values.ndim == 2:
                    groups.setdefault(prefix, {})[name.split("_", 1)[1]] = values
                else:
                    flat[name] = values
            branches = {**flat, **{g: ak.zip(v) for g, v in groups.items()}}
            types = {
                k: v.type.content if isinstance(v, ak.Array) else v.dtype
                for k, v in branches.items()
            }
            with uproot.recreate(tmp) as f:  # a TTree (not RNTuple) so older readers work
                f.mktree("tree", types).extend(branches)


def make_pythia(settings: tuple[str, ...]) -> Any:
    """An initialised, quiet ``pythia8mc.Pythia`` with ``settings`` (one string each);
    :class:`ConfigError` if Pythia rejects a setting or fails to initialise."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in settings:
        if not pythia.readString(line):
            raise ConfigError(f"Pythia rejected the setting '{line}'", key="settings")
    if not pythia.init():
        raise ConfigError("Pythia failed to initialise with these settings", key="settings")
    return pythia


def run_shard(spec: ShardSpec, report: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate and write one shard; return its record for the manifest."""
    process = get_process(spec.cls)
    pythia = make_pythia(spec.settings)
    rng = np.random.default_rng(spec.seed)
    det = None if spec.detector is None else DetectorConfig(**spec.detector)
    flavour = FLAVOURS.index(spec.label) if process.truth.kind == "flavour" else None
    library = None
    if spec.library is not None:
        from heptagon.generate.pileup import read_library, reconstruct  # it imports this module

        library = read_library(Path(spec.library))
    parts: list[dict[str, Any]] = []
    n_jets = n_events = empty = 0
    while n_jets < spec.n_jets:
        batch = pythia.nextBatch(BATCH_EVENTS)
        record = EventRecord.from_batch(batch.prt)
        columns, rho_from = None, None
        if library is None:
            candidates = apply_detector(record.final_state(), det, rng)
        else:
            assert det is not None  # GenerateOptions refuses pile-up without the detector
            pu = reconstruct(record.final_state(), library, spec.pileup, spec.mitigation, det, rng)
            candidates, columns, rho_from = pu.candidates, pu.columns, pu.unmitigated
        truth = (
            truth_objects(record, process.truth)
            if process.truth.kind in ("resonance", "parton")
            else None
        )
        ghosts = flavour_ghosts(record) if flavour is not None else None
        jets = build_jets(
            candidates,
            spec.selection,
            truth=truth,
            ghosts=ghosts,
            flavour=flavour,
            with_sv=flavour is not None,
            truth_id=process.truth.kind == "parton",
            columns=columns,
            rho_from=rho_from,
        )
        jets["event"] = jets["event"] + n_events
        n_events += len(batch)
        got = len(jets["jet_pt"])
        empty = 0 if got else empty + 1
        if empty >= MAX_EMPTY_BATCHES:
            raise ConfigError(
                f"no {spec.cls} jet passed the selection in {empty * BATCH_EVENTS} events; "
                "check the pT window, radius and |eta| cut",
                key="pt_min",
            )
        parts.append(jets)
        n_jets += got
        if report is not None:
            report(min(got, spec.n_jets - (n_jets - got)))
    selected = n_jets
    table = {k: ak.concatenate([p[k] for p in parts])[: spec.n_jets] for k in parts[0]}
    for label in spec.labels:
        table[f"label_{label}"] = np.full(spec.n_jets, label == spec.label)
    path = Path(spec.path)
    write_table(table, path, spec.format)
    info = pythia.infoPython()
    return {
        "file": f"shards/{path.name}",
        "class": spec.cls,
        "entries": spec.n_jets,
        "sha256": sha256sum(path),
        "seed": spec.seed,
        "events_generated": n_events,
        "jets_selected": selected,
        "sigma_gen_pb": info.sigmaGen() * _MB_TO_PB,
        "sigma_err_pb": info.sigmaErr() * _MB_TO_PB,
        "n_tried": int(info.nTried()),
        "n_accepted": int(info.nAccepted()),
    }


def _run_shard_queued(worker: ShardWorker, spec: Shard, queue: Any) -> dict[str, Any]:
    return worker(spec, queue.put)


def _drop_temporaries(specs: Sequence[Shard]) -> None:
    """Remove what stopped workers left of ``specs`` (their atomic writers' ``*.tmp``)."""
    for spec in specs:
        path = Path(spec.path)
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _sidecar(spec: Shard) -> Path:
    p = Path(spec.path)
    return p.with_name(f".{p.name}.json")


def _finished(spec: Shard) -> dict[str, Any] | None:
    """The record of a shard already written by an earlier run, if its checksum holds."""
    side = _sidecar(spec)
    if not (side.exists() and Path(spec.path).exists()):
        return None
    record = read_json(side, "shard record")
    if record.get("seed") != spec.seed or sha256sum(spec.path) != record.get("sha256"):
        return None
    return record


def _plan(opts: GenerateOptions) -> tuple[list[ShardSpec], dict[str, Any]]:
    pileup = None
    if opts.pileup is not None:
        from heptagon.generate.pileup import pileup_settings  # it imports this module

        pileup = pileup_settings(
            opts.pileup, opts.mitigation, opts.pileup_library, shard_seed(opts.seed, "minbias", 0)
        )
    sample = opts.sample_set
    sel = opts.selection()
    det = None if opts.detector == "none" else DetectorConfig()
    labels = tuple(sample.label_of(c) for c in sample.classes)
    ext = "parquet" if opts.format == "parquet" else "root"
    specs = []
    for cls in sample.classes:
        process = get_process(cls)
        n_shards = -(-opts.jets // opts.shard_size)
        for i in range(n_shards):
            seed = shard_seed(opts.seed, cls, i)
            specs.append(
                ShardSpec(
                    cls=cls,
                    label=sample.label_of(cls),
                    labels=labels,
                    index=i,
                    n_jets=min(opts.shard_size, opts.jets - i * opts.shard_size),
                    seed=seed,
                    settings=tuple(pythia_settings(process, sel.pt_min, opts.use_mpi(), seed)),
                    selection=sel,
                    detector=None if det is None else det.model_dump(),
                    path=str(opts.out / "shards" / f"{cls}_{i:04d}.{ext}"),
                    format=opts.format,
                    pileup=opts.pileup or 0.0,
                    mitigation=opts.mitigation,
                    library=None if pileup is None else str(opts.out / pileup["library"]["file"]),
                )
            )
    settings = {
        "sample": opts.sample,
        "jets_per_class": opts.jets,
        "seed": opts.seed,
        "format": opts.format,
        "shard_size": opts.shard_size,
        "selection": asdict(sel) | {"jets_per_event": JETS_PER_EVENT},
        "mpi": opts.use_mpi(),
        "detector": None if det is None else det.model_dump(),
    }
    if pileup is not None:
        settings["pileup"] = pileup
    return specs, settings


def prepare_out(out: Path, settings: dict[str, Any]) -> None:
    """Create ``out/shards``, drop stale temporary files, and refuse a dir made with other
    ``settings`` (recorded in ``out/.generate.json`` by the first run)."""
    shards = out / "shards"
    try:
        shards.mkdir(parents=True, exist_ok=True)
        probe = shards / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write to '{out}': {err.strerror}", key="out") from None
    for stale in shards.glob(".*.tmp"):  # left by a killed run; finished shards are kept
        stale.unlink()
    marker = out / ".generate.json"
    if marker.exists():
        old = read_json(marker, "sample settings")
        if old != json.loads(json.dumps(settings)):
            diff = sorted(k for k in settings if old.get(k) != json.loads(json.dumps(settings[k])))
            raise ConfigError(
                f"'{out}' holds a sample made with other settings ({', '.join(diff)}); "
                "use another --out",
                key="out",
            )
    else:
        write_json_atomic(marker, settings)


@dataclass(frozen=True)
class Summary:
    """What a generate run made."""

    out: Path
    manifest: dict[str, Any]
    wall_s: float
    jets_per_s: float
    skipped_shards: int


def _execute(
    todo: list[Shard],
    worker: ShardWorker,
    jobs: int,
    scheduler: str | None,
    progress: Callable[[int], None],
) -> Iterator[dict[str, Any]]:
    if scheduler:
        try:
            from distributed import Client
            from distributed import as_completed as dask_completed
        except ImportError:
            raise ConfigError(
                "--scheduler needs dask.distributed: pip install 'heptagon[dask]'", key="scheduler"
            ) from None
        with Client(scheduler) as client:
            futures = client.map(worker, todo, pure=False)
            for fut in dask_completed(futures):
                record = fut.result()
                progress(record["entries"])
                yield record
        return
    if jobs == 1:
        for spec in todo:
            yield worker(spec, progress)
        return
    # a fresh server process forks the workers: no inherited threads, imports paid once
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["heptagon.generate.run", worker.__module__])
    manager = SyncManager(ctx=ctx)
    manager.start(_init_helper, (os.getpid(),))
    with manager:
        queue = manager.Queue()
        pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_init_helper, initargs=(os.getpid(),)
        )
        try:
            pending = {pool.submit(_run_shard_queued, worker, spec, queue) for spec in todo}
            while pending:
                done = {f for f in pending if f.done()}
                for fut in done:
                    pending.discard(fut)
                    yield fut.result()
                try:
                    while True:
                        progress(queue.get(timeout=0.2 if not done else 0.0))
                except Empty:
                    pass
            while not queue.empty():
                progress(queue.get())
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown()


def _init_helper(parent: int) -> None:
    """Set up a worker (or the progress manager) of process ``parent``: it ignores Ctrl-C,
    which a terminal sends to the whole process group (the parent alone decides, then
    stops it: :func:`_stop`), and exits once the parent is gone (a SIGKILL cannot be
    handled: without this its helpers would run on, and wait, forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_after, args=(parent,), daemon=True).start()


def _exit_after(parent: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now (an interrupt or a failed shard): queued shards are dropped
    and running ones killed; their temporary files are removed by the caller."""
    workers = list(pool._processes.values())  # no public way before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.terminate()
    for process in workers:
        process.join()


def versions() -> dict[str, str]:
    """Versions of heptagon and the generation toolchain, for the manifest."""
    from heptagon import __version__

    return {
        "heptagon": __version__,
        **{pkg: version(pkg) for pkg in ("pythia8mc", "fastjet", "awkward", "numpy", "uproot")},
    }


def _class_summary(records: list[dict[str, Any]], sample: SampleSet) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cls in sample.classes:
        rs = [r for r in records if r["class"] == cls]
        w = np.array([r["n_accepted"] for r in rs], dtype=float)
        sig = np.array([r["sigma_gen_pb"] for r in rs])
        err = np.array([r["sigma_err_pb"] for r in rs])
        process = get_process(cls)
        out[cls] = {
            "label": f"label_{sample.label_of(cls)}",
            "description": process.description,
            "truth_rule": asdict(process.truth),
            "pythia_settings": list(process.settings),
            "jets": int(sum(r["entries"] for r in rs)),
            "jets_selected": int(sum(r["jets_selected"] for r in rs)),
            "events_generated": int(sum(r["events_generated"] for r in rs)),
            "n_tried": int(sum(r["n_tried"] for r in rs)),
            "n_accepted": int(w.sum()),
            # shards are independent estimates: combine them weighted by accepted events
            "sigma_gen_pb": float((w * sig).sum() / w.sum()),
            "sigma_err_pb": float(np.sqrt(((w * err) ** 2).sum()) / w.sum()),
        }
    return out


@dataclass(frozen=True)
class ShardResults:
    """The records of every planned shard (in plan order) and what this run did."""

    records: list[dict[str, Any]]
    wall_s: float
    made: int
    skipped: int


def run_shards(
    specs: Sequence[Shard],
    worker: ShardWorker,
    *,
    jobs: int,
    scheduler: str | None,
    title: str,
    unit: str,
    show_progress: bool,
) -> ShardResults:
    """Run ``worker`` on every shard not already finished (checksum verified), in ``jobs``
    processes or on a Dask ``scheduler``, with a progress bar counting ``unit``; each
    finished shard's record is written beside it as it completes."""
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for spec in specs:
        rec = _finished(spec)
        if rec is None:
            todo.append(spec)
        else:
            records[spec.path] = rec
    total = sum(s.entries for s in todo)
    start = time.perf_counter()
    with Progress(
        TextColumn(title),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{{task.fields[rate]}} {unit}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not show_progress,
        transient=False,
    ) as bar:
        task = bar.add_task(unit, total=total, rate="-")

        def advance(n: int) -> None:
            done = bar.tasks[task].completed + n
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=n, rate=f"{rate:.0f}")

        by_file = {Path(s.path).name: s for s in todo}
        try:
            for record in _execute(todo, worker, jobs, scheduler, advance):
                spec = by_file[Path(record["file"]).name]
                write_json_atomic(_sidecar(spec), record)
                records[spec.path] = record
                _log.info(
                    "shard %d/%d done: %s, %d %s, %.1f s",
                    len(records), len(specs), Path(spec.path).name, record["entries"], unit,
                    time.perf_counter() - start,
                )  # fmt: skip
        except BaseException as err:
            _drop_temporaries(todo)
            if isinstance(err, KeyboardInterrupt):
                where = Path(specs[0].path).parent.parent
                raise Interrupted(
                    f"{len(records)} of {len(specs)} shards are complete in {where}; run the "
                    "same command again to resume"
                ) from None
            raise
    return ShardResults(
        records=[records[s.path] for s in specs],
        wall_s=time.perf_counter() - start,
        made=total,
        skipped=len(specs) - len(todo),
    )


def generate(opts: GenerateOptions, *, show_progress: bool = True) -> Summary:
    """Generate (or finish generating) the sample described by ``opts`` in ``opts.out``."""
    specs, settings = _plan(opts)
    prepare_out(opts.out, settings)
    if opts.pileup is not None:
        from heptagon.generate.pileup import minbias_library

        lib = settings["pileup"]["library"]
        minbias_library(opts.out / lib["file"], lib["events"], lib["seed"])
    done = run_shards(
        specs,
        run_shard,
        jobs=opts.jobs,
        scheduler=opts.scheduler,
        title=f"generate {opts.sample}",
        unit="jets",
        show_progress=show_progress,
    )
    ordered = done.records
    wall = done.wall_s
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": "jets",
        "sample": opts.sample,
        "description": opts.sample_set.description,
        "versions": versions(),
        "generator": {
            "beams_ecm_gev": ECM_GEV,
            "common_settings": list(COMMON_SETTINGS),
            "mpi": opts.use_mpi(),
            "pthat_min_gev": 0.8 * settings["selection"]["pt_min"],
            "batch_events": BATCH_EVENTS,
        },
        **{k: settings[k] for k in ("seed", "jets_per_class", "format", "shard_size")},
        "selection": settings["selection"],
        "detector": settings["detector"],
        **(
            {"pileup": _with_library_checksum(opts.out, settings["pileup"])}
            if opts.pileup is not None
            else {}
        ),
        "classes": _class_summary(ordered, opts.sample_set),
        "files": [
            {k: r[k] for k in ("file", "class", "entries", "sha256", "seed")} for r in ordered
        ],
        "branches": branch_names(opts.out / ordered[0]["file"], opts.format),
    }
    write_json_atomic(opts.out / "manifest.json", manifest)
    return Summary(
        out=opts.out,
        manifest=manifest,
        wall_s=wall,
        jets_per_s=done.made / wall if wall > 0 else 0.0,
        skipped_shards=done.skipped,
    )


def _with_library_checksum(out: Path, pileup: dict[str, Any]) -> dict[str, Any]:
    """The pile-up settings of a sample with its minimum-bias library's sha256."""
    lib = pileup["library"]
    return pileup | {"library": lib | {"sha256": sha256sum(out / lib["file"])}}


def branch_names(path: Path, fmt: str) -> list[str]:
    """The branch (column) names of a written shard."""
    if fmt == "parquet":
        return list(pq.read_schema(path).names)
    import uproot

    with uproot.open(path) as f:
        return list(f["tree"].keys())


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read a dataset's ``manifest.json`` (``path`` is the dataset dir or the file)."""
    p = Path(path)
    p = p / "manifest.json" if p.is_dir() else p
    if not p.exists():
        raise DataError("no manifest.json (not a heptagon dataset dir?)", file=p)
    return read_json(p, "dataset manifest")
