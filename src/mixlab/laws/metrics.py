"""Goodness of fit on log loss, shared by the fit reports and the evaluation protocols."""

from __future__ import annotations

import numpy as np


def r2_log(observed: np.ndarray, predicted: np.ndarray) -> float | None:
    """R² = 1 − SS_res/SS_tot on log loss; None with < 2 points or no variance."""
    ly, lp = np.log(observed), np.log(predicted)
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    if ly.size < 2 or ss_tot <= 0:
        return None
    return float(1.0 - ((ly - lp) ** 2).sum() / ss_tot)


def residual_report(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Fit residuals of observed y [n] vs predicted [n]: RMSE of log loss, relative errors %, R² on log."""
    ly, lp = np.log(y), np.log(pred)
    rel = np.abs(pred - y) / y * 100
    return {
        "n_points": int(y.size),
        "rmse_log": float(np.sqrt(np.mean((lp - ly) ** 2))),
        "mean_rel_error_pct": float(rel.mean()),
        "max_rel_error_pct": float(rel.max()),
        "r2_log": r2_log(y, pred),
    }
