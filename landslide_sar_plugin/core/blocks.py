"""Block-parallel passes: a pool of worker threads over the blocks of a grid, results in block order.

A pass over the grid computes each block independently (reads, medians,
filters) and writes it into one output file.  :func:`map_blocks` runs the
computations in ``workers`` threads and yields the results **in input order**,
so the single writer (the caller) writes exactly what and where a serial run
would: the output does not depend on the number of workers.

* Each worker thread opens its own state (raster readers: a GDAL dataset
  must not be shared between threads) on its first block and closes it when
  the pass ends, whether it ends normally, by an error or by a cancel.
* At most ``in_flight`` blocks (default two per worker) are computed ahead of
  the writer, so memory stays bounded by the block size, not the grid size.
* numpy, scipy.ndimage and GDAL release the GIL in their heavy loops, so
  threads use the cores without the cost of copying blocks between processes.
* After each block the freed memory is handed back to the system
  (:func:`release_free_memory`): with several threads allocating blocks, the
  allocator otherwise keeps the pages, and peak memory crept up with the
  number of blocks (8192^2: 928 MB, 809 MB with it; 2048^2: 702 / 644 MB).

``workers=1`` runs everything in the calling thread (no pool), unless ``threaded``.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere: macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Return the allocator's free pages to the system (glibc ``malloc_trim(0)``; a no-op elsewhere)."""
    if _TRIM is not None:
        _TRIM(0)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """The number of worker threads for a setting: ``None`` or 0 = every available core."""
    if workers is None or workers == 0:
        return available_cores()
    if workers < 0:
        raise ValueError(f"workers must be 0 (all cores) or positive, not {workers}")
    return int(workers)


def map_blocks(items: Iterable[T], compute: Callable[[Any, T], R], *, workers: int,
               open_state: Callable[[], Any] = lambda: None, close_state: Callable[[Any], None] = lambda s: None,
               in_flight: int | None = None, threaded: bool | None = None) -> Iterator[R]:
    """Yield ``compute(state, item)`` for every item, in order, computed by ``workers`` threads.

    ``open_state()`` is called once in each thread that computes (readers for
    that thread), ``close_state(state)`` once for each state when the
    iteration ends or is abandoned (close the generator, or use it in a
    ``with contextlib.closing(...)`` block, to end it early).  An exception in
    ``compute`` is raised here at that item's turn; the pool is then drained.
    ``threaded`` (default: ``workers > 1``) set True with ``workers=1`` runs the
    computations in one background thread, overlapping them with the caller's work.
    """
    if not (workers > 1 if threaded is None else threaded):
        yield from _serial(items, compute, open_state, close_state)
        return
    local = threading.local()
    states: list = []
    lock = threading.Lock()

    def task(item):
        state = getattr(local, "state", None)
        if state is None:
            state = open_state()
            local.state = state
            with lock:
                states.append(state)
        return compute(state, item)

    ahead = in_flight or 2 * workers
    source = iter(items)
    pending: deque = deque()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="landslide-block")
    try:
        for item in source:
            pending.append(pool.submit(task, item))
            if len(pending) >= ahead:
                break
        while pending:
            result = pending.popleft().result()
            for item in source:  # keep the pool busy while the caller writes this result
                pending.append(pool.submit(task, item))
                break
            yield result
            del result  # the caller is done with it
            release_free_memory()
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)
        for state in states:
            close_state(state)


def _serial(items, compute, open_state, close_state):
    state = open_state()
    try:
        for item in items:
            yield compute(state, item)
            release_free_memory()
    finally:
        close_state(state)
