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
        with ProcessPoolExecutor(
            max_workers=min(self.workers, len(items)),
            mp_context=ctx,
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
            try:
                yield from track(pool.map(fn, items), len(items), description or "map")
            except BaseException:
                _stop_now(pool)
                raise


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """On an error or an interrupt, kill the workers instead of letting them finish their current item.

    (`ProcessPoolExecutor.terminate_workers` only exists from Python 3.14, hence the private `_processes`.)"""
    for process in list((pool._processes or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the parent is gone (SIGKILL, OOM killer), instead of idling forever."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="mixlab-exit-with-parent", daemon=True).start()
