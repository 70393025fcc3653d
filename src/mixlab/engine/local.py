"""The local engine: a process pool on this machine (or inline with one worker)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from mixlab.engine.base import Engine
from mixlab.progress import track

T = TypeVar("T")
R = TypeVar("R")


_installed: Callable | None = None


def _install(fn: Callable) -> None:
    """Pool initializer: keep the map function in the worker process."""
    global _installed
    _installed = fn


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
            max_workers=min(self.workers, len(items)), mp_context=ctx, initializer=_install, initargs=(fn,)
        )
        try:
            yield from track(pool.map(_call_installed, items), len(items), description or "map")
        finally:  # on an error (or an abandoned generator) drop the queued items instead of running them
            pool.shutdown(wait=True, cancel_futures=True)
