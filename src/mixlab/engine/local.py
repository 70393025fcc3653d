"""The local engine: a process pool on this machine (or inline with one worker)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

from mixlab.engine.base import Engine
from mixlab.progress import track

T = TypeVar("T")
R = TypeVar("R")


DEFERRED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# A spawned worker imports numpy, scipy, pandas and mixlab before its first item: 1.6-1.9 s of CPU each
# (mixlab.laws; 5-8 s of wall on 2 loaded cores). Two workers save half the work's time and start together,
# so they break even near 2x that; work of fewer CPU seconds than this runs inline.
WORKER_START_SECONDS = 5.0
_loaded: tuple[str, Callable] | None = None  # (path, fn): the map function of the current call, per worker


def _call(path: str, item):  # noqa: ANN001, ANN202 - any item, any result
    """Worker side: load the map function pickled at `path` once per call, then apply it to `item`."""
    global _loaded
    if _loaded is None or _loaded[0] != path:
        _loaded = (path, pickle.loads(Path(path).read_bytes()))
    return _loaded[1](item)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class LocalEngine(Engine):
    """Process pool of `workers` processes (spawned, so threads in torch/tokenizers are safe).

    The pool starts on the first map that needs it and serves every later map until `close()` (or until
    the engine is garbage-collected), so the passes of one command pay the worker start-up (interpreter,
    imports, per-process caches such as tokenizers) once. With one worker, or one item, the map runs inline
    in this process. An error or an interrupt kills the workers; the next map starts a fresh pool.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None

    def imap(self, fn: Callable[[T], R], items: Sequence[T], description: str = "") -> Iterator[R]:
        items = list(items)
        if self.workers == 1 or len(items) <= 1:
            yield from track((fn(item) for item in items), len(items), description or "map")
            return
        pool = self._started_pool()
        fn_path = None
        try:
            # map() submits every item, spawning the workers as it goes: no interrupt in the middle
            with _interrupts_deferred():
                # fn (often a partial holding a tokenizer of a few MB) is pickled once to a file that each
                # worker reads once, not sent with every item; workers key it by the path, hence the uuid
                handle, fn_path = tempfile.mkstemp(prefix=f"mixlab-map-{uuid.uuid4().hex}-", suffix=".pkl")
                with os.fdopen(handle, "wb") as fh:
                    pickle.dump(fn, fh, protocol=pickle.HIGHEST_PROTOCOL)
                results = pool.map(_call, [fn_path] * len(items), items)
            yield from track(results, len(items), description or "map")
        except BaseException:  # an error, an interrupt (SIGTERM) or an abandoned generator
            self._discard_pool()
            raise
        finally:
            if fn_path is not None:
                os.unlink(fn_path)

    def pays_to_spread(self, serial_seconds: float) -> bool:
        """True with more than one worker when the pool is already running or the work outlasts starting it."""
        return self.workers > 1 and (self._pool is not None or serial_seconds >= WORKER_START_SECONDS)

    def close(self) -> None:
        """Stop the workers (waiting for them); the engine can still be used and starts a new pool."""
        if self._finalizer is not None:
            self._finalizer()  # pool.shutdown(wait=True), once
        self._pool = self._finalizer = None

    def _started_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
            self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=True, cancel_futures=True)
        return self._pool

    def _discard_pool(self) -> None:
        """Kill the workers instead of letting them finish their current item, then drop the queued items
        and join the pool's manager thread (one blocking `shutdown`).

        (No `shutdown(wait=False)` first: it forgets the manager thread, so the later shutdown cannot join it
        and the thread outlives the command, racing concurrent.futures' exit hook on its wake-up pipe — "Bad
        file descriptor" tracebacks at exit. `terminate_workers` only exists from Python 3.14, hence
        `_processes`.)"""
        if self._pool is None:
            return
        for process in list((self._pool._processes or {}).values()):
            process.terminate()
        # A worker killed while sending its result leaves half a message in the result pipe, and the pool's
        # manager thread would wait for the rest forever (the join below, and the exit hook, with it). The
        # parent never writes to that pipe: with its copy of the write end closed, the read ends at EOF once
        # the workers are gone, and the manager thread winds down as for a crashed worker.
        self._pool._result_queue._writer.close()
        self.close()


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGINT until the block ends, then deliver them. Spawning a worker writes its start-up
    data down a pipe; an interrupt raised in the middle leaves a child that reads half of it and prints an
    EOFError traceback, and a process the pool does not know about. (Main thread only: elsewhere no-op.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _: held.append(signum)) for sig in DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(held):
            signal.raise_signal(sig)


def _exit_with_parent(parent_pid: int) -> None:
    """Pool initializer: exit this worker when the parent is gone (SIGKILL, OOM killer), instead of idling."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="mixlab-exit-with-parent", daemon=True).start()
