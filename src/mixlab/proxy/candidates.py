"""Candidate mixtures for a sweep: Dirichlet draws around a prior (as RegMix and olmix do).

Pure numpy: `random_mixtures(prior, n, ...)` returns an array [n, n_domains] of proportions.
"""

from __future__ import annotations

import numpy as np

from mixlab.errors import BadInput


def random_mixtures(
    prior: np.ndarray,
    n: int,
    *,
    concentration: float = 1.0,
    min_weight: float = 0.0,
    min_distance: float = 0.05,
    rng: np.random.Generator | None = None,
    max_tries: int | None = None,
) -> np.ndarray:
    """`n` distinct mixtures drawn from Dirichlet(concentration · k · prior) around `prior`, shape [n, k].

    prior: proportions over k domains (normalised here); domains with prior 0 always get 0.
    concentration: 1 with a uniform prior is the flat distribution on the simplex; larger values
        concentrate the draws around the prior, smaller ones spread them towards the corners.
    min_weight: weights below it are set to 0 and the rest renormalised (a domain is in or clearly out).
    min_distance: a draw whose L1 distance to an accepted mixture is below it is rejected as a
        near-duplicate (L1 ranges over [0, 2]).
    Raises BadInput when fewer than `n` distinct mixtures are found in `max_tries` draws (default 1000 n).
    """
    prior = np.asarray(prior, dtype=float)
    if prior.ndim != 1 or prior.size < 2:
        raise BadInput("mixtures random: the prior needs at least 2 domains")
    if np.any(~np.isfinite(prior)) or np.any(prior < 0) or prior.sum() <= 0:
        raise BadInput("mixtures random: the prior must be non-negative with a positive sum")
    if concentration <= 0:
        raise BadInput(f"`concentration` {concentration}: must be positive")
    if not 0 <= min_weight < 1:
        raise BadInput(f"`min_weight` {min_weight}: must be in [0, 1)")
    if n < 1:
        raise BadInput(f"`n` {n}: must be positive")
    rng = rng if rng is not None else np.random.default_rng()
    prior = prior / prior.sum()
    support = np.flatnonzero(prior > 0)
    alpha = concentration * len(prior) * prior[support]
    max_tries = max_tries or 1000 * n
    accepted: list[np.ndarray] = []
    for _ in range(max_tries):
        w = np.zeros_like(prior)
        w[support] = rng.dirichlet(alpha)
        w[w < min_weight] = 0.0
        if w.sum() <= 0:
            continue
        w /= w.sum()
        if accepted and np.min(np.abs(np.asarray(accepted) - w).sum(axis=1)) < min_distance:
            continue
        accepted.append(w)
        if len(accepted) == n:
            return np.asarray(accepted)
    raise BadInput(
        f"mixtures random: only {len(accepted)} of {n} mixtures at L1 distance >= {min_distance} "
        f"in {max_tries} draws; lower `min_distance` or `min_weight`, or raise `concentration`"
    )
