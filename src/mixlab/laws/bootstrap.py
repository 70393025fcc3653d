"""Bootstrap over runs: how much to trust coefficients, predicted losses and optima fitted from few runs.

Each replicate resamples the runs with replacement (all evaluations of a picked run come along), refits
the law with the same hyper-parameters and records what the caller asks for. Intervals are percentile
intervals at `LEVEL` (95 %). Replicates whose fit fails (e.g. a resample with a single distinct mixture
leaves α unidentifiable for a fixed-step law) are counted and left out.

The refits run on an engine's workers. Every replicate's resample is drawn in the calling process, in
replicate order, from the one seeded generator, and the refits are deterministic given their resample, so
the replicates are the same whichever engine or number of workers runs them. The first replicate is
refitted here and its CPU time taken: the rest go to the workers only where the engine says they pay for their start-up
(`Engine.pays_to_spread`; 20 three-domain BiMix refits take ~4 s of CPU, less than two local workers spend
importing scipy and pandas, which made 2 workers 2.3x slower than 1).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mixlab.engine import Engine, map_where_it_pays
from mixlab.errors import BadInput
from mixlab.laws.base import Law
from mixlab.laws.observations import Observations

LEVEL = 0.95  # of every interval in law.json and mixture.json


def bootstrap_laws(
    make_law: Callable[[], Law],
    obs: Observations,
    n: int,
    seed: int = 0,
    engine: Engine | None = None,
) -> tuple[list[Law], int]:
    """(fitted laws, number of failed replicates) from `n` run-resampled replicates, refitted on `engine`'s
    workers (default: in this process). `make_law` and `obs` must pickle for a process or Ray engine."""
    if n < 2:
        raise BadInput(f"`bootstrap` needs at least 2 replicates, got {n}")
    rng = np.random.default_rng(seed)
    n_runs = len(obs.runs)
    picks = [rng.integers(0, n_runs, size=n_runs) for _ in range(n)]
    refits = map_where_it_pays(engine, functools.partial(_refit, make_law, obs), picks, "bootstrap")
    laws = [law for law in refits if law is not None]
    if len(laws) < 2:
        raise BadInput(
            f"bootstrap: only {len(laws)} of {n} replicates could be fitted (too few distinct runs?)"
        )
    return laws, n - len(laws)


def _refit(make_law: Callable[[], Law], obs: Observations, picks: np.ndarray) -> Law | None:
    """A worker's replicate: the law refitted on the runs `picks`, None when that resample cannot be fitted."""
    try:
        return make_law().fit(obs.resample_runs(picks))
    except BadInput:
        return None


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> dict[str, Any]:
    """{"mean", "lo", "hi"} over axis 0 of samples [N, ...] (lists for array-valued samples)."""
    q = (1 - level) / 2 * 100
    samples = np.asarray(samples, dtype=float)
    lo, hi = np.nanpercentile(samples, [q, 100 - q], axis=0)
    mean = np.nanmean(samples, axis=0)
    if samples.ndim == 1:
        return {"mean": float(mean), "lo": float(lo), "hi": float(hi)}
    return {"mean": mean.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}


def coefficient_intervals(laws: list[Law], level: float = LEVEL) -> dict[str, dict[str, float]]:
    """Percentile intervals of every named coefficient the replicates share."""
    coefs = [law.coefficients() for law in laws]
    names = [k for k in coefs[0] if all(k in c for c in coefs)]
    return {k: percentile_interval(np.array([c[k] for c in coefs]), level) for k in names}


def named_intervals(names: Sequence[str], samples: Sequence[np.ndarray]) -> dict[str, dict[str, float]]:
    """{name: {"mean", "lo", "hi"}} from replicates' vectors samples [N][len(names)]."""
    interval = percentile_interval(np.array(samples))
    return {
        name: {"mean": m, "lo": a, "hi": b}
        for name, m, a, b in zip(names, interval["mean"], interval["lo"], interval["hi"], strict=True)
    }


def bootstrap_summary(laws: list[Law], failed: int, **intervals: Any) -> dict[str, Any]:
    """The `bootstrap` block of law.json and mixture.json: replicate counts, the level, the caller's
    `intervals` (in their order), then every coefficient's interval."""
    return {
        "replicates": len(laws),
        "failed": failed,
        "level": LEVEL,
        **intervals,
        "coefficients": coefficient_intervals(laws),
    }
