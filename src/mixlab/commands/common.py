"""What every CLI verb shares: global settings, the engine they select, consoles and output helpers."""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.console import Console

from mixlab.engine import Engine, get_engine

out_console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


@dataclass(frozen=True)
class Settings:
    """The global options (`mixlab --engine ray --workers 4 --seed 1 VERB ...`)."""

    engine: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    seed: int = 0
    quiet: bool = False


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def engine(ctx: typer.Context) -> Engine:
    s = settings(ctx)
    return get_engine(s.engine, s.workers, s.ray_address)
