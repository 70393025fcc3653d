"""The engine interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

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

    def pays_to_spread(self, serial_seconds: float) -> bool:
        """Whether work that takes about `serial_seconds` of CPU inline is worth handing to the workers."""
        return True

    def close(self) -> None:  # noqa: B027 - engines without resources need nothing
        """Release workers or cluster connections."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
