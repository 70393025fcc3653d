"""Data Mixing Laws (Ye et al. 2024): L_i(r) = c_i + k_i · exp(Σ_j t_ij · r_j), per eval domain and step.

Fitted with SciPy TRF on relative residuals L̂/L − 1 under a Huber loss (`huber_delta`, in relative units)
from `restarts` seeded starting points; the best cost wins. Because Σ_j r_j = 1, adding a constant to
every t_ij is absorbed by k_i; a small ridge penalty (`ridge`) on t picks the smallest such t and keeps
fits with fewer runs than coefficients (m + 2 per domain) well posed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import least_squares

from mixlab.laws.base import register_law
from mixlab.laws.fixed_step import FixedStepLaw
from mixlab.laws.observations import Observations

T_BOUND = 20.0


def dml_loss(r: np.ndarray, c: float, k: float, t: np.ndarray) -> np.ndarray:
    """c + k·exp(r @ t) for proportions r [n, m]; returns [n]."""
    return c + k * np.exp(r @ t)


def fit_dml_domain(
    r: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    restarts: int = 4,
    huber_delta: float = 0.01,
    ridge: float = 1e-4,
    warm: np.ndarray | None = None,
) -> tuple[float, float, np.ndarray, float]:
    """(c, k, t [m], cost) for losses y [n] of runs with proportions r [n, m].

    Starts: t = `warm` (e.g. the neighbouring step's solution) if given, t = 0, then random normal t."""
    n, m = r.shape
    y_min = float(y.min())
    lo = np.concatenate([[0.0, 1e-9], np.full(m, -T_BOUND)])
    hi = np.concatenate([[0.999 * y_min, 1e4], np.full(m, T_BOUND)])
    sqrt_ridge = np.sqrt(ridge)

    def fun(x: np.ndarray) -> np.ndarray:
        return np.concatenate([dml_loss(r, x[0], x[1], x[2:]) / y - 1.0, sqrt_ridge * x[2:]])

    def jac(x: np.ndarray) -> np.ndarray:
        e = np.exp(r @ x[2:])
        top = np.column_stack([np.ones(n), e, x[1] * e[:, None] * r]) / y[:, None]
        bottom = np.hstack([np.zeros((m, 2)), sqrt_ridge * np.eye(m)])
        return np.vstack([top, bottom])

    best = None
    for attempt in range(restarts):
        if attempt == 0 and warm is not None:
            t0 = warm
        elif attempt <= (warm is not None):
            t0 = np.zeros(m)
        else:
            t0 = rng.normal(0.0, 1.5, m)
        c0 = 0.5 * y_min
        k0 = float(np.clip(np.mean((y - c0) / np.exp(r @ t0)), 1e-6, 1e3))
        x0 = np.clip(np.concatenate([[c0, k0], t0]), lo + 1e-12, hi - 1e-12)
        res = least_squares(
            fun, x0, jac=jac, bounds=(lo, hi), method="trf", loss="huber", f_scale=huber_delta, max_nfev=300
        )
        if best is None or res.cost < best.cost:
            best = res
    x = best.x
    return float(x[0]), float(x[1]), x[2:].copy(), float(best.cost)


@register_law
class DataMixingLaw(FixedStepLaw):
    """Ye et al.'s law per eval domain and step. Hyper-parameters: step, min_runs, restarts, huber_delta,
    ridge, seed."""

    name = "dml"
    solver = "dml"

    def __init__(
        self,
        step: float | None = None,
        min_runs: int = 2,
        restarts: int = 4,
        huber_delta: float = 0.01,
        ridge: float = 1e-4,
        seed: int = 0,
    ) -> None:
        super().__init__(step, min_runs)
        self.restarts = restarts
        self.huber_delta = huber_delta
        self.ridge = ridge
        self.seed = seed

    def _fit(self, obs: Observations) -> None:
        # fit-time scratch of _fit_one: the random starts and each domain's previous step's solution
        self._rng = np.random.default_rng(int(self.seed))
        self._warm: dict[int, np.ndarray] = {}
        super()._fit(obs)

    def _fit_one(self, r: np.ndarray, y: np.ndarray, j: int, obs: Observations) -> Any:
        c, k, t, _ = fit_dml_domain(
            r, y, self._rng, int(self.restarts), float(self.huber_delta), float(self.ridge), self._warm.get(j)
        )
        self._warm[j] = t
        return (c, k, t)

    def _predict_one(self, model: Any, r: np.ndarray, j: int) -> np.ndarray:
        c, k, t = model
        return dml_loss(r, c, k, t)

    def coefficients_at(self, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(c [e], k [e], t [e, m]) at a fitted step."""
        models = self.models_[self.step_index(step)]
        return (
            np.array([m[0] for m in models]),
            np.array([m[1] for m in models]),
            np.array([m[2] for m in models]),
        )

    def coefficients(self) -> dict[str, float]:
        out = {}
        for k, step in enumerate(self.steps_):
            for d, (c, kk, t) in zip(self.eval_domains_, self.models_[k], strict=True):
                out[f"c[{d}]@{step:g}"] = c
                out[f"k[{d}]@{step:g}"] = kk
                for src, v in zip(self.domains_, t, strict=True):
                    out[f"t[{d},{src}]@{step:g}"] = float(v)
        return out

    def _state(self) -> dict[str, Any]:
        return {
            "steps": [float(s) for s in self.steps_],
            "per_step": [
                {d: {"c": c, "k": k, "t": dict(zip(self.domains_, map(float, t), strict=True))}
                 for d, (c, k, t) in zip(self.eval_domains_, models, strict=True)}
                for models in self.models_
            ],
        }  # fmt: skip

    def _load(self, state: dict[str, Any]) -> None:
        self.steps_ = np.array(state["steps"], dtype=float)
        self.models_ = [
            [(float(p[d]["c"]), float(p[d]["k"]), np.array([float(p[d]["t"][s]) for s in self.domains_]))
             for d in self.eval_domains_]
            for p in state["per_step"]
        ]  # fmt: skip
