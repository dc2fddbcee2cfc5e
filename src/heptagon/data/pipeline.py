"""The background pipeline from units of files to transformed tables.

:func:`iter_tables` reads ``files_at_once`` units at a time, a chunk from each in turn,
in one daemon thread and transforms the chunks (:class:`~heptagon.data.transform.Transform`)
in another, so that reading, transforming and the consumer's batching overlap.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from queue import Full, Queue
from typing import TypeVar, cast

from heptagon.data.io import Chunk, Unit, open_reader
from heptagon.data.transform import Table, Transform

__all__ = ["iter_tables"]


def _unit_chunks(unit: Unit, transform: Transform, chunk_size: int) -> Iterator[Chunk]:
    with open_reader(unit.path, transform.config.treename) as reader:
        branches = transform.branches(reader.branches)
        yield from reader.read(unit, branches, chunk_size)


def _iter_chunks(
    units: Iterable[Unit], transform: Transform, chunk_size: int, files_at_once: int
) -> Generator[Chunk, None, None]:
    """Chunks of ``units``, ``files_at_once`` units at a time, a chunk from each in turn."""
    pending = iter(units)
    active: deque[Iterator[Chunk]] = deque()
    for unit in pending:
        active.append(_unit_chunks(unit, transform, chunk_size))
        if len(active) == files_at_once:
            break
    while active:
        current = active.popleft()
        chunk = next(current, None)
        if chunk is None:
            following = next(pending, None)
            if following is not None:
                active.append(_unit_chunks(following, transform, chunk_size))
            continue
        active.append(current)
        yield chunk
        del chunk  # not pinned while the consumer works


#: items each background stage of :func:`iter_tables` holds ready for the next
_READ_AHEAD = 1

_T = TypeVar("_T")


def _in_background(items: Iterator[_T], name: str) -> Generator[_T, None, None]:
    """The items of ``items``, produced by a daemon thread ``_READ_AHEAD`` items ahead of
    the consumer. An exception in the thread is raised in the consumer; closing the
    returned generator stops the thread (and closes ``items``)."""
    queue: Queue[tuple[_T | BaseException | None]] = Queue(maxsize=_READ_AHEAD)
    stop = threading.Event()

    def put(item: _T | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                queue.put((item,), timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
                del item  # not pinned while the consumer works
            put(None)
        except BaseException as err:  # handed to the consumer, raised there
            put(err)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            box = list(queue.get())  # popped into the call: nothing pinned while suspended
            if box[0] is None:
                return
            if isinstance(box[0], BaseException):
                raise box[0]
            yield cast(_T, box.pop())
    finally:
        stop.set()
        thread.join()


def iter_tables(
    units: Iterable[Unit], transform: Transform, chunk_size: int, files_at_once: int
) -> Iterator[Table]:
    """Tables of ``units``, reading ``files_at_once`` units at a time, a chunk from each in
    turn (so consecutive tables come from different files).

    A pipeline of two background threads: one reads the next chunk while another
    transforms the previous one and the consumer batches the one before (file reading,
    decompression and numpy's large operations release the GIL, so the stages overlap on
    several cores). The order is that of reading in turn; memory grows by two chunks."""
    chunks = _in_background(
        _iter_chunks(units, transform, chunk_size, files_at_once), "heptagon-reader"
    )

    def tables() -> Iterator[Table]:
        try:
            for chunk in chunks:
                yield transform(chunk)
        finally:
            chunks.close()  # stops the reader

    return _in_background(tables(), "heptagon-transform")
