"""The simplified single-step power law L_i(r) = F_i · r_i^{−α_i} (what AI2's olmix calls "bimix").

Fitted per eval domain and step by ordinary least squares on log L = log F − α·log r over runs with
r_i > 0 (runs with r_i = 0 are skipped: the law is infinite there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixlab.errors import BadInput
from mixlab.laws.base import register_law
from mixlab.laws.fixed_step import FixedStepLaw
from mixlab.laws.observations import Observations


def fit_power(r: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(F, α) of y = F·r^{−α} by least squares in log–log; r [n] > 0, y [n] > 0, ≥ 2 distinct r."""
    x, ly = np.log(r), np.log(y)
    xc = x - x.mean()
    den = float((xc * xc).sum())
    if den <= 0:
        raise BadInput("powerlaw: all runs have the same share of a domain at a step; α is not identifiable")
    alpha = -float((xc * (ly - ly.mean())).sum()) / den
    return float(np.exp(ly.mean() + alpha * x.mean())), alpha


@register_law
class PowerLaw(FixedStepLaw):
    """F_i·r_i^{−α_i} per eval domain and step. Hyper-parameters: step, min_runs."""

    name = "powerlaw"
    solver = "power"
    own_share = True

    def unfittable_domains(self, obs: Observations) -> dict[str, str]:
        """Domains with fewer than 2 distinct positive shares at a step evaluated on ≥ `min_runs` runs."""
        out = {}
        for j, domain in enumerate(obs.eval_domains):
            share = obs.point_proportions[:, obs.eval_index[j]]
            for step in obs.distinct_steps:
                at = np.isclose(obs.steps, step) & np.isfinite(obs.losses[:, j])
                distinct = np.unique(share[at & (share > 0)]).size
                if at.sum() >= int(self.min_runs) and distinct < 2:
                    out[domain] = f"{distinct} distinct positive shares at step {step:g} (need ≥ 2)"
                    break
        return out

    def _fit_one(self, r: np.ndarray, y: np.ndarray, j: int, obs: Observations) -> Any:
        share = r[:, obs.eval_index[j]]
        ok = share > 0
        if ok.sum() < 2:
            raise BadInput(
                f"powerlaw: domain '{obs.eval_domains[j]}' needs ≥ 2 runs with a positive share at each step "
                f"(has {int(ok.sum())})"
            )
        return fit_power(share[ok], y[ok])

    def _predict_one(self, model: Any, r: np.ndarray, j: int) -> np.ndarray:
        F, alpha = model
        with np.errstate(divide="ignore"):
            return F * r[:, self.domains_.index(self.eval_domains_[j])] ** (-alpha)

    def separable_power(self, step: float) -> tuple[np.ndarray, np.ndarray]:
        """(α [e], F [e]) at a fitted step."""
        k = self.step_index(step)
        return np.array([m[1] for m in self.models_[k]]), np.array([m[0] for m in self.models_[k]])

    def coefficients(self) -> dict[str, float]:
        out = {}
        for k, step in enumerate(self.steps_):
            for d, (F, alpha) in zip(self.eval_domains_, self.models_[k], strict=True):
                out[f"F[{d}]@{step:g}"] = F
                out[f"alpha[{d}]@{step:g}"] = alpha
        return out

    def _state(self) -> dict[str, Any]:
        return {
            "steps": [float(s) for s in self.steps_],
            "F": {d: [m[j][0] for m in self.models_] for j, d in enumerate(self.eval_domains_)},
            "alpha": {d: [m[j][1] for m in self.models_] for j, d in enumerate(self.eval_domains_)},
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.steps_ = np.array(state["steps"], dtype=float)
        self.models_ = [
            [(float(state["F"][d][k]), float(state["alpha"][d][k])) for d in self.eval_domains_]
            for k in range(len(self.steps_))
        ]
