"""How a pass over the corpus runs: a per-shard map whose results are merged in shard order.

The steps (a map function over shards, a merge) are the same whichever executor runs them:

    engine = get_engine("local", workers=2)          # or get_engine("ray", ray_address="auto")
    total = engine.map_reduce(count_shard, corpus.shards(), merge=add, description="counting")

Map functions must be picklable (module-level functions or functools.partial of them). Results are
yielded in input order, so a deterministic merge gives identical output on every engine.
"""

from __future__ import annotations

from collections.abc import Callable

from mixlab.engine.base import Engine, map_where_it_pays
from mixlab.engine.local import LocalEngine
from mixlab.errors import BadInput

__all__ = ["ENGINES", "Engine", "LocalEngine", "get_engine", "map_where_it_pays"]


def _ray_engine(workers: int | None, ray_address: str | None) -> Engine:
    from mixlab.engine.ray import RayEngine  # imports ray: only when asked for

    return RayEngine(workers, ray_address)


ENGINES: dict[str, Callable[[int | None, str | None], Engine]] = {
    "local": lambda workers, _address: LocalEngine(workers),
    "ray": _ray_engine,
}


def get_engine(name: str = "local", workers: int | None = None, ray_address: str | None = None) -> Engine:
    """An engine by name: 'local' (process pool; inline when workers == 1) or 'ray' (Ray Data)."""
    if name not in ENGINES:
        raise BadInput(f"`engine` {name}: unknown engine (expected 'local' or 'ray')")
    return ENGINES[name](workers, ray_address)
