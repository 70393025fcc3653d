"""Synthetic observations drawn from a known BiMix law: the ground truth for tests and law comparisons."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixlab.laws.bimix import bimix_loss
from mixlab.laws.observations import Observations
from mixlab.proxy.schedule import LRSchedule


def synthetic_bimix(
    proportions: np.ndarray,
    steps: Sequence[float],
    alpha: Sequence[float],
    B: Sequence[float],
    beta: Sequence[float],
    C: Sequence[float],
    noise: float = 0.002,
    seed: int = 0,
    domains: Sequence[str] | None = None,
    runs: Sequence[str] | None = None,
    D: Sequence[float] | None = None,
    schedule: LRSchedule | None = None,
) -> Observations:
    """Observations of runs with `proportions` [n_runs, m] at every step of `steps`, losses from BiMix
    (A = 1, coefficients [m]) times multiplicative noise exp(N(0, noise)) — noise 0.002 = 0.2 %.
    With `schedule` and `D` [m], the schedule-aware step term (the floor C falls by D·(1 − η(s))); the
    observations then carry the schedule.
    A share of 0 gives an infinite loss (the law is undefined there); set such losses explicitly."""
    proportions = np.asarray(proportions, dtype=float)
    n_runs, m = proportions.shape
    domains = tuple(domains or (f"d{i}" for i in range(m)))
    runs = tuple(runs or (f"run{k}" for k in range(n_runs)))
    steps = np.asarray(steps, dtype=float)
    point_run = np.repeat(np.arange(n_runs), steps.size)
    point_steps = np.tile(steps, n_runs)
    if (D is None) != (schedule is None):
        raise ValueError("`D` and `schedule` go together")
    anneal = 0.0 if schedule is None else (1.0 - schedule.multipliers(point_steps))[:, None]
    clean = bimix_loss(
        proportions[point_run],
        point_steps[:, None],
        np.asarray(alpha),
        np.asarray(B),
        np.asarray(beta),
        np.asarray(C),
        0.0 if D is None else np.asarray(D),
        anneal,
    )
    rng = np.random.default_rng(seed)
    losses = clean * np.exp(rng.normal(0.0, noise, clean.shape))
    return Observations(
        domains,
        domains,
        runs,
        proportions,
        point_run,
        point_steps,
        point_steps * 0 + np.nan,
        losses,
        schedule=schedule,
    )


def dirichlet_mixtures(
    n: int, m: int, seed: int = 0, concentration: float = 2.0, floor: float = 0.02
) -> np.ndarray:
    """n random mixtures [n, m] from a symmetric Dirichlet, every share at least `floor` (renormalised)."""
    rng = np.random.default_rng(seed)
    r = rng.dirichlet(np.full(m, concentration), size=n)
    r = np.maximum(r, floor)
    return r / r.sum(axis=1, keepdims=True)
