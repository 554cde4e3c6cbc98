"""Pieces of work spread over threads, stopped within one piece when the caller stops.

The one way poolcli runs work on threads (tiles of the engine and the fast paths, bands
of the PNG encoder). NumPy releases the GIL, so the threads compute while the calling
thread waits; a Ctrl-C reaches that waiting thread as KeyboardInterrupt (and a failed
piece comes back as its exception). Then no thread starts another piece: each finishes
the one it is on and the exception goes on up, so an interrupted run stops in about
one piece's time instead of finishing every thread's share first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM blocked for the block (pending, not lost), then delivered: a
    step that must not be cut in two runs whole. C code importing would report a signal
    its own way; a finished job's record must be counted once, with its output on disk.
    Only on the main thread, where Python handles signals; elsewhere, or where the
    system has no signal mask, nothing is held."""
    import signal

    if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a pending signal lands now


def run_on_threads(fn: Callable[..., Any], items: Sequence[Any], threads: int, *,
                   state: Callable[[], Any] | None = None) -> list[Any]:
    """``[fn(item) for item in items]`` on ``min(threads, len(items))`` threads.

    Thread i takes items i, i + n, i + 2n, ...: one task per thread, since a future per
    item costs more than a small tile's work, and interleaving balances ragged last
    items. ``state``, if given, makes one object per thread (reused scratch buffers),
    passed as ``fn(item, state)``. The work runs off the calling thread even on one
    thread: glibc gives the main thread's multi-MiB temporaries fresh mmap'd pages each
    time, and page faults cost several times the work.
    """
    items = list(items)
    n = max(1, min(threads, len(items)))
    results: list[Any] = [None] * len(items)
    stop = threading.Event()

    def share(first: int) -> None:
        try:
            own = state() if state is not None else None
            for k in range(first, len(items), n):
                if stop.is_set():
                    return
                results[k] = fn(items[k]) if state is None else fn(items[k], own)
        except BaseException:
            stop.set()  # a failed piece: the other threads stop too
            raise

    with ThreadPoolExecutor(n) as ex:
        futures = [ex.submit(share, i) for i in range(n)]
        try:
            for f in futures:
                f.result()
        except BaseException:
            # leaving the with-block waits for the pieces under way, and no others
            stop.set()
            raise
    return results
