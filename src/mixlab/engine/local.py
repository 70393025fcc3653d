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
        with ProcessPoolExecutor(max_workers=min(self.workers, len(items)), mp_context=ctx) as pool:
            yield from track(pool.map(fn, items), len(items), description or "map")
