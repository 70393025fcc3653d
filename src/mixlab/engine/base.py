"""The engine interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from mixlab.errors import BadInput

T = TypeVar("T")
R = TypeVar("R")


class Engine(ABC):
    """Runs `fn` over items (usually shards) and hands results back in input order."""

    name: str = "engine"

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

    def close(self) -> None:  # noqa: B027 - engines without resources need nothing
        """Release workers or cluster connections."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get_engine(name: str = "local", workers: int | None = None, ray_address: str | None = None) -> Engine:
    """An engine by name: 'local' (process pool; inline when workers == 1) or 'ray' (Ray Data)."""
    if name == "local":
        from mixlab.engine.local import LocalEngine

        return LocalEngine(workers)
    if name == "ray":
        from mixlab.engine.ray import RayEngine

        return RayEngine(workers, ray_address)
    raise BadInput(f"--engine {name}: unknown engine (expected 'local' or 'ray')")
