"""Laws fitted separately at each evaluation step (DML, RegMix, the simple power law).

Each (eval domain, step) gets its own model fitted across the runs evaluated at that step. Such a law
predicts only at the steps it was fitted on and raises BadInput for any other step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixlab.errors import BadInput
from mixlab.laws.base import Law
from mixlab.laws.metrics import residual_report
from mixlab.laws.observations import Observations


class FixedStepLaw(Law):
    """Hyper-parameters: `step` (fit only this step; default every step with ≥ `min_runs` runs)."""

    fixed_step = True

    def __init__(self, step: float | None = None, min_runs: int = 2) -> None:
        self.step = step
        self.min_runs = min_runs

    @property
    def fitted_steps(self) -> np.ndarray:
        return self.steps_

    def _fit(self, obs: Observations) -> None:
        step = None if self.step is None else float(self.step)
        min_runs = int(self.min_runs)
        candidates = obs.distinct_steps if step is None else np.array([step])
        if step is not None and not np.any(np.isclose(obs.distinct_steps, step)):
            shown = ", ".join(f"{s:g}" for s in obs.distinct_steps[:12])
            raise BadInput(f"{self.name}: step {step:g} is not an evaluation step of the runs ({shown} ...)")
        r_all = obs.point_proportions
        steps, models, skipped = [], [], []
        for step in candidates:
            at = np.isclose(obs.steps, step)
            per_domain = []
            for j in range(len(obs.eval_domains)):
                sel = at & np.isfinite(obs.losses[:, j])
                if sel.sum() < min_runs:
                    break
                per_domain.append(self._fit_one(r_all[sel], obs.losses[sel, j], j, obs))
            else:
                steps.append(float(step))
                models.append(per_domain)
                continue
            skipped.append(float(step))
        if not steps:
            raise BadInput(
                f"{self.name}: no step has ≥ {min_runs} runs evaluated on every domain "
                f"({len(obs.runs)} runs given)"
            )
        self.steps_ = np.array(steps)
        self.models_ = models  # [n_steps][e]
        self.fit_report_ = {
            "steps": steps,
            "skipped_steps": skipped,
            "n_runs": len(obs.runs),
            **self._report(obs),
        }

    def _predict(self, r: np.ndarray, s: np.ndarray) -> np.ndarray:
        out = np.empty((r.shape[0], len(self.eval_domains_)))
        for step in np.unique(s):
            k = int(np.argmin(np.abs(self.steps_ - step)))
            rows = s == step
            for j in range(len(self.eval_domains_)):
                out[rows, j] = self._predict_one(self.models_[k][j], r[rows], j)
        return out

    def _report(self, obs: Observations) -> dict[str, Any]:
        """Residuals on the training points, per domain (RMSE of log loss, mean relative error %)."""
        mask = np.isin(obs.steps, self.steps_)
        pred = self._predict(obs.point_proportions[mask], obs.steps[mask])
        out = {}
        for j, d in enumerate(obs.eval_domains):
            y = obs.losses[mask, j]
            measured = np.isfinite(y)
            # A power law predicts inf (or 0) at a zero share: such points have no residual; count them.
            defined = measured & np.isfinite(pred[:, j]) & (pred[:, j] > 0)
            out[d] = {
                **residual_report(y[defined], pred[defined, j]),
                "n_undefined": int((measured & ~defined).sum()),
            }
        return {"domains": out}

    def _fit_one(self, r: np.ndarray, y: np.ndarray, j: int, obs: Observations) -> Any:
        raise NotImplementedError

    def _predict_one(self, model: Any, r: np.ndarray, j: int) -> np.ndarray:
        """Loss of eval domain j for proportions r [n, m] (all domains) under one fitted model."""
        raise NotImplementedError
