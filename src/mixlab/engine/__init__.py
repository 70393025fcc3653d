"""How a pass over the corpus runs: a per-shard map whose results are merged in shard order.

The steps (a map function over shards, a merge) are the same whichever executor runs them:

    engine = get_engine("local", workers=2)          # or get_engine("ray", ray_address="auto")
    total = engine.map_reduce(count_shard, corpus.shards(), merge=add, description="counting")

Map functions must be picklable (module-level functions or functools.partial of them). Results are
yielded in input order, so a deterministic merge gives identical output on every engine.
"""

from __future__ import annotations

from mixlab.engine.base import Engine
from mixlab.engine.local import LocalEngine
from mixlab.errors import BadInput

__all__ = ["Engine", "LocalEngine", "get_engine"]


def get_engine(name: str = "local", workers: int | None = None, ray_address: str | None = None) -> Engine:
    """An engine by name: 'local' (process pool; inline when workers == 1) or 'ray' (Ray Data)."""
    if name == "local":
        return LocalEngine(workers)
    if name == "ray":
        from mixlab.engine.ray import RayEngine  # imports ray: only when asked for

        return RayEngine(workers, ray_address)
    raise BadInput(f"`engine` {name}: unknown engine (expected 'local' or 'ray')")
