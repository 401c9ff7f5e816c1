"""``audit verify`` on every core: the lines of a long export parsed, hashed and checked for
their own place and link in worker processes, a chunk at a time.

``broker.audit.verify`` stays pure (no processes); this module is the ``prepare`` it takes.
Invariants (tests/unit/test_audit_verify_workers.py):
- the walk over the lines — every chunk's first link, the tree, the checkpoints, and every
  line a worker did not find clean — stays one pass in the calling process, so the verdict,
  the event it names and its message are those of ``prepare_here``;
- below ``WORKERS_FROM`` events, and on one core, nothing leaves this process;
- a few chunks are held ahead of the walk (memory bounded); stopping early (a problem found)
  cancels what is queued;
- workers that cannot start (spawn imports the caller's ``__main__``, which may not be a file)
  leave their part to this process, in order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import chain, islice

from broker.audit.verify import Chunk, Clean, Prepare, Prepared, chunk_items, prepare_chunk
from broker.audit.verify import prepare_here as here

WORKERS_FROM = 50_000  # events; below, a pool costs more than it saves
CHUNK = 8_192  # lines a worker takes at a time
MAX_WORKERS = 3  # past three the walk in the calling process is what limits


def on_every_core(*, workers_from: int = WORKERS_FROM, chunk: int = CHUNK) -> Prepare:
    """A ``prepare`` for ``verify_export`` that uses the cores this process may use (a
    container's, not the host's) for an export of ``workers_from`` events or more."""

    def prepare(lines: Iterable[bytes]) -> Iterator[Prepared | Clean]:
        iterator = iter(lines)
        head = list(islice(iterator, workers_from))
        cores = min(len(os.sched_getaffinity(0)), MAX_WORKERS)
        if len(head) < workers_from or cores < 2:
            return here(chain(head, iterator))
        return _by_workers(chain(head, iterator), cores, chunk)

    return prepare


def _by_workers(lines: Iterator[bytes], workers: int, size: int) -> Iterator[Prepared | Clean]:
    # spawn, not fork: the caller may hold threads (a CLI's event loop, a test's pool).
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    pending: deque[tuple[list[bytes], Future[Chunk] | None]] = deque()
    start, broken = 1, False
    try:
        while not broken:
            chunk = [raw.rstrip(b"\n") for raw in islice(lines, size)]
            if chunk:
                try:
                    pending.append((chunk, pool.submit(prepare_chunk, chunk, start)))
                except BrokenProcessPool:
                    pending.append((chunk, None))
                    break
                start += len(chunk)
            elif not pending:
                return
            while pending and (not chunk or len(pending) > 2 * workers):
                done, future = pending[0]
                try:
                    prepared = future.result() if future is not None else None
                except BrokenProcessPool:
                    prepared = None
                if prepared is None:
                    broken = True
                    break
                pending.popleft()
                yield from chunk_items(done, prepared)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    yield from here(line for done, _ in pending for line in done)
    yield from here(lines)
