"""Progress display for long passes (rich, on stderr so stdout stays machine-readable)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(stderr=True)


def quiet() -> bool:
    """True when progress and chatter are switched off (`--quiet` sets MIXLAB_QUIET=1)."""
    return os.environ.get("MIXLAB_QUIET", "") not in ("", "0")


def new_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet(),
        transient=False,
    )


def track(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Iterate over `items` with a progress bar (nothing is drawn when quiet)."""
    with new_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner for a step of unknown length."""
    if quiet():
        yield
        return
    with console.status(message):
        yield


def log(message: str) -> None:
    """A line of chatter on stderr, suppressed by --quiet."""
    if not quiet():
        console.print(message)


def warn(message: str) -> None:
    """A warning on stderr, suppressed by --quiet (errors only)."""
    if not quiet():
        console.print(f"[yellow]warning:[/yellow] {message}")
