"""Bootstrap over runs: how much to trust coefficients, predicted losses and optima fitted from few runs.

Each replicate resamples the runs with replacement (all evaluations of a picked run come along), refits
the law with the same hyper-parameters and records what the caller asks for. Intervals are percentile
intervals (default 95 %). Replicates whose fit fails (e.g. a resample with a single distinct mixture
leaves α unidentifiable for a fixed-step law) are counted and left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mixlab.errors import BadInput
from mixlab.laws.base import Law
from mixlab.laws.observations import Observations
from mixlab.progress import track


def bootstrap_laws(
    make_law: Callable[[], Law], obs: Observations, n: int, seed: int = 0
) -> tuple[list[Law], int]:
    """(fitted laws, number of failed replicates) from `n` run-resampled replicates."""
    if n < 2:
        raise BadInput(f"`bootstrap` needs at least 2 replicates, got {n}")
    rng = np.random.default_rng(seed)
    n_runs = len(obs.runs)
    laws, failed = [], 0
    for _ in track(range(n), n, "bootstrap"):
        picks = rng.integers(0, n_runs, size=n_runs)
        try:
            laws.append(make_law().fit(obs.resample_runs(picks)))
        except BadInput:
            failed += 1
    if len(laws) < 2:
        raise BadInput(
            f"bootstrap: only {len(laws)} of {n} replicates could be fitted (too few distinct runs?)"
        )
    return laws, failed


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """{"mean", "lo", "hi"} over axis 0 of samples [N, ...] (lists for array-valued samples)."""
    q = (1 - level) / 2 * 100
    samples = np.asarray(samples, dtype=float)
    lo, hi = np.nanpercentile(samples, [q, 100 - q], axis=0)
    mean = np.nanmean(samples, axis=0)
    if samples.ndim == 1:
        return {"mean": float(mean), "lo": float(lo), "hi": float(hi)}
    return {"mean": mean.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}


def coefficient_intervals(laws: list[Law], level: float = 0.95) -> dict[str, dict[str, float]]:
    """Percentile intervals of every named coefficient the replicates share."""
    coefs = [law.coefficients() for law in laws]
    names = [k for k in coefs[0] if all(k in c for c in coefs)]
    return {k: percentile_interval(np.array([c[k] for c in coefs]), level) for k in names}
