"""The local engine: a process pool on this machine (or inline with one worker)."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from mixlab.engine.base import Engine
from mixlab.progress import track

T = TypeVar("T")
R = TypeVar("R")


_installed: Callable | None = None


def _install(fn: Callable, parent_pid: int) -> None:
    """Pool initializer: keep the map function in the worker process; exit with the parent."""
    global _installed
    _installed = fn
    _exit_with_parent(parent_pid)


def _call_installed(item):  # noqa: ANN001, ANN202 - any item, any result
    assert _installed is not None, "worker started without a map function"
    return _installed(item)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class LocalEngine(Engine):
    """Process pool of `workers` processes (spawned, so threads in torch/tokenizers are safe).

    With one worker, or one item, the map runs inline in this process: no start-up cost.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()

    def imap(self, fn: Callable[[T], R], items: Sequence[T], description: str = "") -> Iterator[R]:
        items = list(items)
        if self.workers == 1 or len(items) <= 1:
            yield from track((fn(item) for item in items), len(items), description or "map")
            return
        ctx = multiprocessing.get_context("spawn")
        # fn (often a partial holding a tokenizer of a few MB) is sent once per worker, not once per item
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(items)),
            mp_context=ctx,
            initializer=_install,
            initargs=(fn, os.getpid()),
        )
        try:
            yield from track(pool.map(_call_installed, items), len(items), description or "map")
        except BaseException:  # an error, an interrupt (SIGTERM) or an abandoned generator
            _stop_now(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """Kill the workers instead of letting them finish their current item; the caller's
    `shutdown(wait=True, cancel_futures=True)` then drops the queued items and joins the pool's manager thread.

    (No `shutdown(wait=False)` here: it forgets the manager thread, so the later shutdown cannot join it and
    the thread outlives the command, racing concurrent.futures' exit hook on its wake-up pipe — "Bad file
    descriptor" tracebacks at exit. `terminate_workers` only exists from Python 3.14, hence `_processes`.)"""
    for process in list((pool._processes or {}).values()):
        process.terminate()


def _exit_with_parent(parent_pid: int) -> None:
    """Exit this worker when the parent is gone (SIGKILL, OOM killer), instead of idling forever."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="mixlab-exit-with-parent", daemon=True).start()
