"""BiMix (Ge et al. 2024): L_i(r_i, s) = A_i / r_i^{α_i} · (B_i / s^{β_i} + C_i), fitted per domain.

Scale degeneracy: (A, B, C) → (kA, B/k, C/k) leaves L unchanged, so A_i = 1 here.
Fitting works in an equivalent, better-conditioned reparametrisation θ = (α, b, β, c) with the step scaled
by the largest fitted step s_ref:  log L = −α·log r + log(e^b·(s/s_ref)^{−β} + e^c),
so B = e^b·s_ref^β and C = e^c are positive by construction.

Residual space (hyper-parameter `residual`): "log" (default) fits log L̂ − log L; "relative" fits L̂/L − 1;
"absolute" fits L̂ − L. Measured with `benchmarks/laws_compare.py` (5 domains, 16 runs × 20 steps, 0.2 %
multiplicative noise): the three agree to the noise level — extrapolation rel. error 0.169 / 0.169 / 0.171 %,
unseen-mixture R² 0.99917 / 0.99916 / 0.99918, max |α − α_true| 1.3e-4 / 1.3e-4 / 1.1e-4, max |β − β_true|
0.0050 / 0.0050 / 0.0054 (log / relative / absolute). Log is the default because it is scale-free across
domains (absolute residuals let the large early losses dominate) and matches the R²-on-log-loss metric.
Tuples with r_i = 0 (loss undefined under the law) and steps ≤ 0 are excluded and counted in `fit_report`.
A coefficient that ends on its bound is listed per domain in `fit_report` (`at_bound`).

Step term (hyper-parameter `step_term`): "plain" is the paper's B/s^β + C. "schedule" knows the runs'
learning-rate schedule (a mixlab sweep's `sweep.json`, `Observations.schedule`) and lets the floor fall as the
learning rate anneals: B/s^β + C·(1 − D·(1 − η(s))), η(s) the multiplier of the peak rate at step s, D in
[0, 0.99] per domain. A decaying schedule bends the loss curve down at its end, which the plain term reads as a
lower floor reached slowly; at a constant rate (η = 1) the two terms are the same law. Measured on mixlab's own
sweeps (`benchmarks/laws_compare.py`, horizon protocol) and chosen over an LR-area step axis (Tissue et al.'s
S1), which measured no better.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import least_squares

from mixlab.errors import BadInput
from mixlab.laws.base import Law, ScheduleAwareStep, anneal_free, check_is_fitted, register_law
from mixlab.laws.metrics import residual_report
from mixlab.laws.observations import Observations

RESIDUALS = ("log", "relative", "absolute")
ALPHA_BOUNDS = (-2.0, 4.0)
BETA_BOUNDS = (0.0, 3.0)
D_BOUNDS = (0.0, 0.99)  # D < 1 keeps the floor C·(1 − D·(1 − η)) positive for every η in [0, 1]
LOG_FLOOR = -25.0  # e^-25 ≈ 1e-11: a B or C this small is zero for practical purposes


def bimix_loss(
    r: np.ndarray,
    s: np.ndarray,
    alpha: np.ndarray,
    B: np.ndarray,
    beta: np.ndarray,
    C: np.ndarray,
    D: np.ndarray | float = 0.0,
    anneal: np.ndarray | float = 0.0,
) -> np.ndarray:
    """L = r^{−α}·(B·s^{−β} + C·(1 − D·anneal)) with A = 1; anneal = 1 − η(s) for the schedule-aware step
    term (0 for the plain term); all arguments broadcast (r: share in (0, 1], s: steps > 0)."""
    r = np.asarray(r, dtype=float)
    floor = C * (1.0 - np.asarray(D) * np.asarray(anneal, dtype=float))
    with np.errstate(divide="ignore"):
        return r ** (-np.asarray(alpha)) * (B * np.asarray(s, dtype=float) ** (-np.asarray(beta)) + floor)


def step_term(
    b: float | np.ndarray, beta: float | np.ndarray, c: float | np.ndarray, logs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log(e^b·(s/s_ref)^{−β} + e^c) from logs = log(s/s_ref), with its derivatives with respect to b and c
    (w_b, w_c; the derivative with respect to β is −logs·w_b)."""
    u = b - beta * logs
    g = np.logaddexp(u, c)
    return g, np.exp(u - g), np.exp(c - g)


def _log_model(
    theta: np.ndarray, logr: np.ndarray, logs: np.ndarray, anneal: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """log L̂ [n] and its Jacobian [n, 5] with respect to θ = (α, b, β, c, D); logs = log(s/s_ref)."""
    a, b, beta, c, d = theta
    shrink = 1.0 - d * anneal
    g, w_b, w_c = step_term(b, beta, c + np.log(shrink), logs)
    jac = np.column_stack([-logr, w_b, -logs * w_b, w_c, -w_c * anneal / shrink])
    return -a * logr + g, jac


def fit_bimix_domain(
    r: np.ndarray,
    s: np.ndarray,
    loss: np.ndarray,
    residual: str = "log",
    max_nfev: int = 400,
    anneal: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit one domain's (α, B, β, C) on tuples r [n] (> 0), s [n] (> 0), loss [n] (nats); with `anneal`
    [n] (1 − η(s) of each tuple's step) also D of the schedule-aware step term.

    Multiple starts (β grid × splits of the loss between B and C), TRF with bounds; the best cost wins.
    α is fixed to 0 when all r are equal (not identifiable from one mixture); β = 0, B = 0 when fewer
    than 3 distinct steps (the step dependence is not identifiable); D = 0 when the schedule does not change
    over the tuples' steps.
    """
    if residual not in RESIDUALS:
        raise BadInput(f"bimix: residual must be one of {', '.join(RESIDUALS)} (got '{residual}')")
    logr, logl = np.log(r), np.log(loss)
    s_ref = float(s.max())
    logs = np.log(s / s_ref)
    alpha_free = np.unique(np.round(r, 12)).size >= 2
    steps_free = np.unique(s).size >= 3
    d_free = anneal_free(s, anneal)
    anneal = np.zeros_like(s, dtype=float) if anneal is None else np.asarray(anneal, dtype=float)
    free = np.array([alpha_free, steps_free, steps_free, True, d_free])

    alpha0 = _pooled_slope(logr, logl, s) if alpha_free else 0.0
    alpha0 = float(np.clip(alpha0, ALPHA_BOUNDS[0] + 0.01, ALPHA_BOUNDS[1] - 0.01))
    y = logl + alpha0 * logr
    late = float(np.exp(y[s == s.max()].mean()))
    early = float(np.exp(y[s == s.min()].mean()))
    # log C = log L + α·log r over the points: with α < 0 it exceeds log L by up to |α|·(−log r_min)
    upper = float(logl.max() + abs(alpha0) * max(0.0, -logr.min()) + 5.0)
    lo = np.array([ALPHA_BOUNDS[0], LOG_FLOOR, BETA_BOUNDS[0], LOG_FLOOR, D_BOUNDS[0]])
    hi = np.array([ALPHA_BOUNDS[1], upper, BETA_BOUNDS[1], upper, D_BOUNDS[1]])

    starts = []
    d_starts = (0.0, 0.3) if d_free else (0.0,)
    if steps_free:
        smin = float(np.exp(logs.min()))
        for beta0 in (0.15, 0.4, 0.8, 1.5):
            denom = smin ** (-beta0) - 1.0
            b_lin = max(early - late, 0.01 * late) / max(denom, 1e-9)
            c_lin = max(late - b_lin, 0.05 * late)
            starts.extend([alpha0, np.log(b_lin), beta0, np.log(c_lin), d0] for d0 in d_starts)
        starts.extend([alpha0, np.log(0.95 * late), 0.3, np.log(0.05 * late), d0] for d0 in d_starts)
    else:
        starts.append([alpha0, LOG_FLOOR, 0.0, np.log(late), 0.0])
    fixed = np.array(starts[0], dtype=float)

    def full(x: np.ndarray) -> np.ndarray:
        theta = fixed.copy()
        theta[free] = x
        return theta

    def fun(x: np.ndarray) -> np.ndarray:
        pred, _ = _log_model(full(x), logr, logs, anneal)
        if residual == "log":
            return pred - logl
        ratio = np.exp(pred - logl)
        return ratio - 1.0 if residual == "relative" else loss * (ratio - 1.0)

    def jac(x: np.ndarray) -> np.ndarray:
        pred, j = _log_model(full(x), logr, logs, anneal)
        j = j[:, free]
        if residual == "log":
            return j
        scale = np.exp(pred - logl) if residual == "relative" else np.exp(pred)
        return j * scale[:, None]

    best = None
    for x0 in starts:
        x0 = np.clip(np.array(x0, dtype=float), lo + 1e-9, hi - 1e-9)
        fixed[~free] = x0[~free]
        res = least_squares(
            fun, x0[free], jac=jac, bounds=(lo[free], hi[free]), method="trf", x_scale="jac",
            ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=max_nfev,
        )  # fmt: skip
        if best is None or res.cost < best[0].cost:
            best = (res, fixed.copy())
    res, fixed = best
    theta = fixed.copy()
    theta[free] = res.x
    a, b, beta, c, d = (float(v) for v in theta)
    on_bound = free & (np.isclose(theta, lo, rtol=0, atol=1e-6) | np.isclose(theta, hi, rtol=0, atol=1e-6))
    # D = 0 sits on its lower bound by design where the schedule does not bend the curve: not a fit problem
    on_bound[4] &= bool(np.isclose(d, D_BOUNDS[1], rtol=0, atol=1e-6))
    big_b = float(np.exp(b) * s_ref**beta) if steps_free else 0.0
    d = d if d_free else 0.0
    pred = bimix_loss(r, s, a, big_b, beta, float(np.exp(c)), d, anneal)
    return {
        "alpha": a,
        "B": big_b,
        "beta": beta if steps_free else 0.0,
        "C": float(np.exp(c)),
        "D": d,
        "report": {
            **residual_report(loss, pred),
            "cost": float(res.cost),
            "starts": len(starts),
            "alpha_identified": bool(alpha_free),
            "steps_identified": bool(steps_free),
            "at_bound": [
                name for name, hit in zip(("alpha", "B", "beta", "C", "D"), on_bound, strict=True) if hit
            ],
        },
    }


def _pooled_slope(logr: np.ndarray, logl: np.ndarray, s: np.ndarray) -> float:
    """−slope of log L on log r pooled within steps (the α a straight log–log line gives)."""
    num = den = 0.0
    for step in np.unique(s):
        sel = s == step
        if sel.sum() < 2:
            continue
        x = logr[sel] - logr[sel].mean()
        num += float((x * (logl[sel] - logl[sel].mean())).sum())
        den += float((x * x).sum())
    return -num / den if den > 0 else 0.0


@register_law
class BiMixLaw(ScheduleAwareStep, Law):
    """The bivariate law per domain. Hyper-parameters: residual ("log" | "relative" | "absolute"),
    step_term ("plain" | "schedule": see the module docstring)."""

    name = "bimix"
    fixed_step = False
    solver = "power"
    own_share = True

    def __init__(self, residual: str = "log", step_term: str = "plain") -> None:
        self.residual = residual
        self.step_term = step_term

    def check_params(self) -> None:
        if self.residual not in RESIDUALS:
            raise BadInput(f"bimix: residual must be one of {', '.join(RESIDUALS)} (got '{self.residual}')")
        self.check_step_term()

    def _tuples(self, obs: Observations, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks [n_points] of eval domain j's usable tuples, those with share 0, those with step ≤ 0."""
        y, r, s = obs.losses[:, j], obs.point_proportions[:, obs.eval_index[j]], obs.steps
        seen = np.isfinite(y)
        return seen & (r > 0) & (s > 0), seen & (r <= 0), seen & (r > 0) & (s <= 0)

    def unfittable_domains(self, obs: Observations) -> dict[str, str]:
        out = {}
        for j, domain in enumerate(obs.eval_domains):
            use, zero_share, bad_step = self._tuples(obs, j)
            if use.sum() < 2:
                out[domain] = (
                    f"{int(use.sum())} usable tuples (need ≥ 2 with share > 0 and field 'step' > 0; "
                    f"{int(zero_share.sum())} had share 0, {int(bad_step.sum())} had step ≤ 0)"
                )
        return out

    def _fit(self, obs: Observations) -> None:
        unfittable = self.unfittable_domains(obs)
        if unfittable:
            domain, why = next(iter(unfittable.items()))
            raise BadInput(f"{obs.source}: bimix: domain '{domain}' has {why}")
        self.fit_schedule(obs)
        coef = {k: np.zeros(len(obs.eval_domains)) for k in ("alpha", "B", "beta", "C", "D")}
        report = {}
        for j, domain in enumerate(obs.eval_domains):
            use, zero_share, bad_step = self._tuples(obs, j)
            y, s = obs.losses[use, j], obs.steps[use]
            fit = fit_bimix_domain(
                obs.point_proportions[use, obs.eval_index[j]], s, y, self.residual, anneal=self.anneal(s)
            )
            for k in coef:
                coef[k][j] = fit[k]
            report[domain] = {
                **fit["report"],
                "excluded_zero_share": int(zero_share.sum()),
                "excluded_nonpositive_step": int(bad_step.sum()),
            }
        self.alpha_, self.B_, self.beta_, self.C_ = coef["alpha"], coef["B"], coef["beta"], coef["C"]
        self.D_ = coef["D"]
        at_bound = {d: rep["at_bound"] for d, rep in report.items() if rep["at_bound"]}
        self.fit_report_ = {"residual": self.residual, "domains": report, "at_bound": at_bound}

    def _predict(self, r: np.ndarray, s: np.ndarray) -> np.ndarray:
        idx = [self.domains_.index(d) for d in self.eval_domains_]
        anneal = self.anneal(s)
        anneal = 0.0 if anneal is None else anneal[:, None]
        return bimix_loss(r[:, idx], s[:, None], self.alpha_, self.B_, self.beta_, self.C_, self.D_, anneal)

    def separable_power(self, step: float) -> tuple[np.ndarray, np.ndarray]:
        """(α [e], K [e]) with L_i = K_i · r_i^{−α_i} at `step`: K_i = B_i·s^{−β_i} + C_i·(1 − D_i·(1 − η(s)))."""
        check_is_fitted(self)
        anneal = self.anneal(np.array([step]))
        floor = self.C_ if anneal is None else self.C_ * (1.0 - self.D_ * anneal[0])
        return self.alpha_.copy(), self.B_ * float(step) ** (-self.beta_) + floor

    def _names(self) -> tuple[str, ...]:
        return ("alpha", "beta", "B", "C") if self.schedule_ is None else ("alpha", "beta", "B", "C", "D")

    def coefficients(self) -> dict[str, float]:
        out = {}
        for k in self._names():
            for d, v in zip(self.eval_domains_, getattr(self, f"{k}_"), strict=True):
                out[f"{k}[{d}]"] = float(v)
        return out

    def _state(self) -> dict[str, Any]:
        names = self._names()
        state: dict[str, Any] = {"A": 1.0, **self.schedule_state()}
        for j, d in enumerate(self.eval_domains_):
            state[d] = {
                k: float(getattr(self, f"{k}_")[j]) for k in ("alpha", "B", "beta", "C", "D") if k in names
            }
        return state

    def _load(self, state: dict[str, Any]) -> None:
        self.load_schedule(state)
        self.alpha_, self.B_, self.beta_, self.C_, self.D_ = (
            np.array([float(state[d].get(k, 0.0) if k == "D" else state[d][k]) for d in self.eval_domains_])
            for k in ("alpha", "B", "beta", "C", "D")
        )
