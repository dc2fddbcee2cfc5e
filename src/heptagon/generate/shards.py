"""The shard engine every sample generator shares (jets, events, detector elements).

A sample is cut into shards, each an independent unit of work with its own seed
(:func:`shard_seed`). :func:`run_shards` runs a worker on every shard not already finished,
in processes or on a Dask scheduler, with a progress bar; each finished shard is written
atomically with its sidecar record (:class:`~heptagon.artifacts.manifest.ShardRecord`,
``shards/.<shard>.json``), so a rerun verifies the checksums and makes only what is
missing. :func:`prepare_out` refuses an output directory made with other settings.
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
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.managers import SyncManager
from pathlib import Path
from queue import Empty
from typing import Any, Protocol

import awkward as ak
import pyarrow.parquet as pq
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from heptagon.artifacts.manifest import SampleSettings, ShardRecord
from heptagon.errors import ConfigError, Interrupted
from heptagon.io import atomic_path, sha256sum
from heptagon.logs import get_logger

__all__ = [
    "Shard",
    "ShardResults",
    "ShardWorker",
    "branch_names",
    "prepare_out",
    "run_shards",
    "shard_seed",
    "write_table",
]

_SEED_MAX = 900_000_000  # Pythia's Random:seed range
_log = get_logger("generate")


def shard_seed(seed: int, cls: str, index: int) -> int:
    """A Pythia seed in [1, 9e8) derived from the sample seed, class and shard index."""
    digest = hashlib.blake2b(f"{seed}:{cls}:{index}".encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (_SEED_MAX - 1)


class Shard(Protocol):
    """What the shard machinery needs of a unit of work (jet or event shard)."""

    @property
    def path(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def entries(self) -> int: ...


#: generates and writes one shard, calling ``report(n)`` as entries are made
ShardWorker = Callable[[Any, Callable[[int], None] | None], ShardRecord]


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


def _run_shard_queued(worker: ShardWorker, spec: Shard, queue: Any) -> ShardRecord:
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


def _finished(spec: Shard) -> ShardRecord | None:
    """The record of a shard already written by an earlier run, if its checksum holds."""
    side = _sidecar(spec)
    if not (side.exists() and Path(spec.path).exists()):
        return None
    record = ShardRecord.read(side)
    if record.seed != spec.seed or sha256sum(spec.path) != record.sha256:
        return None
    return record


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
    wanted = SampleSettings(settings=json.loads(json.dumps(settings)))
    if marker.exists():
        old = SampleSettings.read(marker).settings
        if old != wanted.settings:
            diff = sorted(k for k in settings if old.get(k) != wanted.settings[k])
            raise ConfigError(
                f"'{out}' holds a sample made with other settings ({', '.join(diff)}); "
                "use another --out",
                key="out",
            )
    else:
        wanted.write(marker)


def _execute(
    todo: list[Shard],
    worker: ShardWorker,
    jobs: int,
    scheduler: str | None,
    progress: Callable[[int], None],
) -> Iterator[ShardRecord]:
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
                progress(record.entries)
                yield record
        return
    if jobs == 1:
        for spec in todo:
            yield worker(spec, progress)
        return
    # a fresh server process forks the workers: no inherited threads, imports paid once
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["heptagon.generate.shards", worker.__module__])
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


@dataclass(frozen=True)
class ShardResults:
    """The records of every planned shard (in plan order) and what this run did."""

    records: list[ShardRecord]
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
    records: dict[str, ShardRecord] = {}
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
                spec = by_file[Path(record.file).name]
                record.write(_sidecar(spec))
                records[spec.path] = record
                _log.info(
                    "shard %d/%d done: %s, %d %s, %.1f s",
                    len(records), len(specs), Path(spec.path).name, record.entries, unit,
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


def branch_names(path: Path, fmt: str) -> list[str]:
    """The branch (column) names of a written shard."""
    if fmt == "parquet":
        return list(pq.read_schema(path).names)
    import uproot

    with uproot.open(path) as f:
        return list(f["tree"].keys())
