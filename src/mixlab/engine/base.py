"""The engine interface."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mixlab.progress import track

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class TaskResources:
    """What one task holds while it runs: CPU cores (its threads) and GPUs. A cluster places the task on a
    node where they are free; an engine whose tasks run in this process holds nothing for them."""

    cpus: int = 1
    gpus: int = 0


class Engine(ABC):
    """Runs `fn` over items (usually shards) and hands results back in input order."""

    name: str = "engine"
    # Whether `imap_tasks` runs its tasks here, one after another (callbacks and progress then work as in
    # any local call); False where tasks run in other processes (a cluster).
    tasks_in_process: bool = True

    @abstractmethod
    def imap(self, fn: Callable[[T], R], items: Sequence[T], description: str = "") -> Iterator[R]:
        """Lazily yield fn(item) for each item, in input order, with a progress display."""

    def map(self, fn: Callable[[T], R], items: Sequence[T], description: str = "") -> list[R]:
        return list(self.imap(fn, items, description))

    def map_reduce(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        merge: Callable[[R, R], R],
        description: str = "",
        initial: R | None = None,
    ) -> R | None:
        """Fold the results in input order with `merge` as they arrive (bounded memory)."""
        acc = initial
        for result in self.imap(fn, items, description):
            acc = result if acc is None else merge(acc, result)
        return acc

    def imap_tasks(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        resources: TaskResources | None = None,
        names: Sequence[str] | None = None,
        description: str = "",
    ) -> Iterator[tuple[int, R]]:
        """Run fn(item) as one whole task per item (a training run, not a shard), each task holding
        `resources` (default: one CPU); yield (index of the item, result) as each task finishes, in any
        order on a cluster. `names` label the tasks (a cluster's process titles and task lists).
        Here: in this process, in input order."""
        for i, item in enumerate(items):
            yield i, fn(item)

    def check_resources(self, resources: TaskResources) -> None:  # noqa: B027 - nothing held here
        """BadInput when no place this engine runs tasks can hold `resources` (here: nothing to hold)."""

    def task_gpus(self) -> int:
        """How many GPUs this engine's tasks can be given (0 where tasks run in this process: it has
        whatever devices this machine has, and holds none of them for a task)."""
        return 0

    def pays_to_spread(self, serial_seconds: float) -> bool:
        """Whether work that takes about `serial_seconds` of CPU inline is worth handing to the workers."""
        return True

    def close(self) -> None:  # noqa: B027 - engines without resources need nothing
        """Release workers or cluster connections."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def map_where_it_pays(
    engine: Engine | None, fn: Callable[[T], R], items: Sequence[T], description: str = ""
) -> list[R]:
    """fn over items, in input order: the first here, its CPU time taken; the rest on `engine`'s workers where
    the engine says they pay for their start-up (`Engine.pays_to_spread`), else here too. For work whose size
    is only known once one item has run (a law's fits: a second for a power law, a minute for transfer).

    CPU time, not wall time: a loaded machine stretches both the item and a worker's start."""
    items = list(items)
    if not items:
        return []
    start = time.process_time()
    first = fn(items[0])
    rest = items[1:]
    serial_seconds = (time.process_time() - start) * len(rest)
    if rest and engine is not None and engine.pays_to_spread(serial_seconds):
        return [first, *engine.map(fn, rest, description)]
    return [first, *track((fn(item) for item in rest), len(rest), description or "map")]
