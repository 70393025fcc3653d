"""Transfer-BiMix: BiMix whose own share becomes an effective share that couples the domains.

    L_i(r, s) = exp(Σ_j u_ij r_j) · e_i(r)^{−α_i} · (B_i s^{−β_i} + C_i)
    e_i(r)    = ε_i + r_i^{δ_i} + Σ_{j≠i} T_ij r_j^{γ_i}          (T_ij ≥ 0, ε_i > 0)

r: proportions over the m mixture domains (rows sum to 1), s: steps > 0, i: an eval domain (its own column
in r). T_ij is the transfer from domain j to domain i (how much a token of j counts as a token of i, with
diminishing returns r^γ); δ bends the own share; u_ij is Ye et al.'s log-linear exp(Σ t_ij r_j) factor;
ε_i keeps the law finite at r_i = 0. With T = 0, u = 0, δ = 1 and ε → 0 it is BiMix (A = 1).
2m + 6 coefficients per eval domain.

Identifiability: the mixture factor has no free scale (A = 1; the step factor carries it). Since Σ_j r_j = 1,
adding a constant to every u_ij equals scaling B_i and C_i: the ridge picks the smallest-norm u. T and u both
act through r_j and are separated only by curvature (log-of-sum vs linear), so with few runs the ridge, not
the data, fixes most of them; T_ij of a domain with share 0 in every fitted run is unidentified (ridge → 0).

Fitting, per eval domain: TRF (scipy least_squares) on log residuals plus ridge rows √(λn)·(T, u), i.e. the
mean squared log residual + λ(‖T_i‖² + ‖u_i‖²) (regularisation toward independence, T = u = 0), analytic
Jacobian, box bounds, two starts (ε₀ = 0.003, 0.03; α₀ from a log–log fit, T₀ = 1e-3, u₀ = 0, γ₀ = 0.7,
δ₀ = 1, the step part as BiMix's); the lower cost wins. The step part is BiMix's reparametrisation
log(e^b (s/s_ref)^{−β} + e^c); with < 3 distinct steps B = 0, β = 0.
Target form, for an eval name that is no mixture domain (a TARGET metric such as a task's BPB: no own share):

    y_t(r, s) = exp(Σ_j u_tj r_j) · e_t(r)^{−α_t} · (B_t s^{−β_t} + C_t)
    e_t(r)    = ε_t + Σ_j T_tj r_j^{γ_t},   T_tj = exp(τ_tj)

Without an own share fixing the scale of e, (τ + k, ε·e^k, C·e^{αk}) leaves y unchanged; the ridge on τ (not T)
picks one point, with prior τ = u = 0: every source transfers equally, y ∝ (ε + Σ_j r_j^γ)^{−α}, a diversity
term. Fitted the same way (θ = (α, log ε, γ, τ [m], u [m], b, β, c), ridge rows √(λn)·(τ, u), starts
ε₀ = 0.01, 0.3 with α₀ = 0.05, τ₀ = u₀ = 0, γ₀ = 0.7). On olmix's DCLM swarm (100 fit / 27 predicted runs, 110
task-BPB targets) "auto" gives λ = 1e-4, the value an inner 4-fold CV over the fit runs picked on each of 3 splits
in the prototype (grid 1e-5, 1e-4, 1e-3).
Step term (hyper-parameter `step_term`): "plain" as above; "schedule" is BiMix's schedule-aware term (see
`mixlab.laws.bimix`): the step factor becomes B s^{−β} + C·(1 − D·(1 − η(s))), D ∈ [0, 0.99] per eval domain,
η from the runs' learning-rate schedule (`Observations.schedule`), one more coefficient in each fit.
λ (hyper-parameter `lam`): "auto" = lam0 / n_runs (strong when runs are few). lam0 = 0.01 was chosen on the
512 RegMix train runs only (a 256-run pool fitted at k = 32…256, scored on the other 256 train runs; flat
over 0.01–0.1). "cv": the lam0 of LAM0_GRID with the smallest inner `folds`-fold squared log error over
runs (noisy per subset, ~16 extra fits); or a number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from mixlab.errors import BadInput
from mixlab.laws.base import Law, ScheduleAwareStep, anneal_free, register_law
from mixlab.laws.bimix import D_BOUNDS, step_term
from mixlab.laws.metrics import residual_report
from mixlab.laws.observations import Observations

ALPHA_BOUNDS = (0.0, 5.0)
TAU_BOUNDS = (-12.0, 5.0)  # target form: log T
LOG_EPS_TARGET_BOUNDS = (float(np.log(1e-5)), float(np.log(10.0)))  # target form: log ε
TARGET_LOG_BOUND = 50.0  # target form: |b|, |c| (the log step factor carries e's free scale)
EPS_BOUNDS = (1e-5, 1.0)
GAMMA_BOUNDS = (0.2, 2.0)  # also δ's
T_MAX = 10.0
U_MAX = 20.0
BETA_BOUNDS = (0.0, 3.0)
LOG_FLOOR = -25.0
LAM0_GRID = (0.01, 0.03, 0.1, 0.32)
N_HEAD = 4  # θ = (α, ε, γ, δ, T [m−1], u [m], b, β, c, D)
N_STEP = 4  # the step part at the end of θ: (b, β, c, D)
COEFS = ("alpha", "eps", "gamma", "delta", "B", "beta", "C", "D")


def _powers(r: np.ndarray, power: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(r^p, log r) elementwise, both 0 where r = 0 (r^p·log r → 0 there, its limit for p > 0)."""
    pos = r > 0
    log_r = np.where(pos, np.log(np.where(pos, r, 1.0)), 0.0)
    return np.where(pos, np.exp(power * log_r), 0.0), log_r


def effective_share(
    r: np.ndarray, own: np.ndarray, eps: np.ndarray, gamma: np.ndarray, delta: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """e [n, e] = ε + r_own^δ + Σ_{j≠own} T_j r_j^γ for proportions r [n, m]; own [e] columns, T [e, m]
    (its own-column entry is ignored); own = −1 marks a target: e = ε + Σ_j T_j r_j^γ (δ unused)."""
    out = np.empty((r.shape[0], own.size))
    for i, c in enumerate(own):
        if c < 0:
            out[:, i] = eps[i] + _powers(r, gamma[i])[0] @ T[i]
            continue
        other = np.arange(r.shape[1]) != c
        own_pow, _ = _powers(r[:, c], delta[i])
        other_pow, _ = _powers(r[:, other], gamma[i])
        out[:, i] = eps[i] + own_pow + other_pow @ T[i, other]
    return out


def transfer_loss(
    r: np.ndarray,
    s: np.ndarray,
    own: np.ndarray,
    coef: dict[str, np.ndarray],
    anneal: np.ndarray | None = None,
) -> np.ndarray:
    """L [n, e] at proportions r [n, m] and steps s [n]; coef: COEFS arrays [e] (D may be absent: 0), "T" and
    "u" [e, m]; anneal [n]: 1 − η(s) for the schedule-aware step term (None: the plain term)."""
    e = effective_share(r, own, coef["eps"], coef["gamma"], coef["delta"], coef["T"])
    floor = coef["C"]
    if anneal is not None:
        floor = floor * (1.0 - coef.get("D", 0.0) * np.asarray(anneal, dtype=float)[:, None])
    step = coef["B"] * np.asarray(s, dtype=float)[:, None] ** (-coef["beta"]) + floor
    return np.exp(r @ coef["u"].T) * e ** (-coef["alpha"]) * step


def _log_step(step_part: np.ndarray, log_s: np.ndarray, anneal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(e^b (s/s_ref)^{−β} + e^c·(1 − D·anneal)) [n] and its Jacobian [n, 4] in (b, β, c, D)."""
    b, beta, c, d = step_part
    shrink = 1.0 - d * anneal
    g, w_b, w_c = step_term(b, beta, c + np.log(shrink), log_s)
    return g, np.column_stack([w_b, -log_s * w_b, w_c, -w_c * anneal / shrink])


def transfer_log_loss(
    theta: np.ndarray, r: np.ndarray, log_s: np.ndarray, own: int, anneal: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """log L̂ [n] and its Jacobian [n, 2m + 7] for one eval domain; θ = (α, ε, γ, δ, T [m−1], u [m], b, β, c,
    D), r [n, m] proportions, log_s [n] = log(s / s_ref), own: the eval domain's column in r, anneal [n]:
    1 − η(s) (None: 0, the plain step term)."""
    m = r.shape[1]
    alpha, eps, gamma, delta = theta[:N_HEAD]
    T = theta[N_HEAD : N_HEAD + m - 1]
    u = theta[N_HEAD + m - 1 : N_HEAD + 2 * m - 1]
    anneal = np.zeros_like(log_s) if anneal is None else anneal
    g, step_jac = _log_step(theta[N_HEAD + 2 * m - 1 :], log_s, anneal)
    other = np.arange(m) != own
    other_pow, log_other = _powers(r[:, other], gamma)
    own_pow, log_own = _powers(r[:, own], delta)
    e = eps + own_pow + other_pow @ T
    log_e = np.log(e)
    d_e = -alpha / e
    jac = np.column_stack(
        [-log_e, d_e, d_e * ((other_pow * log_other) @ T), d_e * own_pow * log_own, d_e[:, None] * other_pow,
         r, step_jac]
    )  # fmt: skip
    return -alpha * log_e + r @ u + g, jac


def target_log_loss(
    theta: np.ndarray, r: np.ndarray, log_s: np.ndarray, anneal: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """log ŷ [n] and its Jacobian [n, 2m + 7] for one target; θ = (α, log ε, γ, τ [m], u [m], b, β, c, D),
    r [n, m] proportions, log_s [n] = log(s / s_ref), anneal [n] as for `transfer_log_loss`."""
    m = r.shape[1]
    alpha, log_eps, gamma = theta[:3]
    tau, u = theta[3 : 3 + m], theta[3 + m : 3 + 2 * m]
    anneal = np.zeros_like(log_s) if anneal is None else anneal
    g, step_jac = _log_step(theta[3 + 2 * m :], log_s, anneal)
    r_pow, log_r = _powers(r, gamma)
    T = np.exp(tau)
    e = np.exp(log_eps) + r_pow @ T
    log_e = np.log(e)
    d_e = -alpha / e
    jac = np.column_stack(
        [-log_e, d_e * np.exp(log_eps), d_e * ((r_pow * log_r) @ T), d_e[:, None] * r_pow * T, r, step_jac]
    )  # fmt: skip
    return -alpha * log_e + r @ u + g, jac


def _step_start(
    rest: np.ndarray, s: np.ndarray, log_s: np.ndarray, floor: float
) -> tuple[float, float, float]:
    """(b₀, β₀, c₀) of the log step factor log(e^b (s/s_ref)^−β + e^c) from `rest` [n], the log loss less the
    mixture factor's start; with < 3 distinct steps only c (b at `floor`, β = 0)."""
    late = float(np.exp(rest[log_s == 0].mean()))
    if np.unique(s).size < 3:
        return floor, 0.0, float(np.log(late))
    early = float(np.exp(rest[s == s.min()].mean()))
    beta0 = 0.4
    b_lin = max(early - late, 0.01 * late) / max(np.exp(log_s.min()) ** (-beta0) - 1.0, 1e-9)
    return float(np.log(b_lin)), beta0, float(np.log(max(late - b_lin, 0.05 * late)))


def _fit_starts(
    log_model: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    log_y: np.ndarray,
    starts: list[np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    steps_free: bool,
    d_free: bool,
    pen_idx: np.ndarray,
    ridge: float,
    max_nfev: int,
) -> tuple[Any, np.ndarray, np.ndarray]:
    """TRF on log residuals plus ridge rows `ridge`·θ[pen_idx] from each start; (result, θ, free) of the
    lowest cost. The last four coefficients are (b, β, c, D): b and β stay at their start unless `steps_free`
    (only C when the step dependence is not identifiable), D unless `d_free`."""
    p = lo.size
    free = np.ones(p, dtype=bool)
    free[p - N_STEP : p - N_STEP + 2] = steps_free
    free[p - 1] = d_free
    pen = np.zeros((pen_idx.size, p))
    pen[np.arange(pen_idx.size), pen_idx] = ridge
    best = None
    for theta0 in starts:
        theta0 = np.clip(theta0, lo + 1e-9, hi - 1e-9)

        def full(x: np.ndarray, theta0: np.ndarray = theta0) -> np.ndarray:
            theta = theta0.copy()
            theta[free] = x
            return theta

        def fun(x: np.ndarray, full=full) -> np.ndarray:
            theta = full(x)
            return np.r_[log_model(theta)[0] - log_y, ridge * theta[pen_idx]]

        def jac(x: np.ndarray, full=full) -> np.ndarray:
            return np.vstack([log_model(full(x))[1], pen])[:, free]

        res = least_squares(
            fun,
            theta0[free],
            jac=jac,
            bounds=(lo[free], hi[free]),
            method="trf",
            x_scale="jac",
            max_nfev=max_nfev,
        )
        if best is None or res.cost < best[0].cost:
            best = (res, full(res.x))
    return best[0], best[1], free


def _result(
    res: Any, theta: np.ndarray, free: np.ndarray, lo: np.ndarray, hi: np.ndarray, names: list[str],
    s_ref: float, steps_free: bool, head: dict[str, float], T: np.ndarray, u: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    on_bound = free & (np.isclose(theta, lo, rtol=0, atol=1e-6) | np.isclose(theta, hi, rtol=0, atol=1e-6))
    on_bound[-1] &= bool(np.isclose(theta[-1], D_BOUNDS[1], rtol=0, atol=1e-6))  # D = 0: the plain term
    at_bound = [name for name, hit in zip([*names, "B", "beta", "C", "D"], on_bound, strict=True) if hit]
    b, beta, c, d = theta[-N_STEP:]
    return {
        **head,
        "T": T,
        "u": u,
        "B": float(np.exp(b) * s_ref**beta) if steps_free else 0.0,
        "beta": float(beta) if steps_free else 0.0,
        "C": float(np.exp(c)),
        "D": float(d) if free[-1] else 0.0,
        "cost": float(res.cost),
        "nfev": int(res.nfev),
        "steps_identified": bool(steps_free),
        "at_bound": [a for a in at_bound if not a.startswith(("T", "u", "tau"))],  # the ridge's own business
    }


def fit_transfer_domain(
    r: np.ndarray,
    s: np.ndarray,
    loss: np.ndarray,
    own: int,
    lam: float,
    max_nfev: int = 300,
    anneal: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit one eval domain on tuples r [n, m] (rows sum to 1), s [n] > 0, loss [n] > 0; `lam` ≥ 0: the ridge
    on T and u (penalty λ·(‖T‖² + ‖u‖²) per mean squared log residual); anneal [n]: 1 − η(s) for the
    schedule-aware step term (None: plain). T and u come back over all m columns (T_own = 1, the own share's
    coefficient)."""
    n, m = r.shape
    log_y = np.log(loss)
    s_ref = float(s.max())
    log_s = np.log(s / s_ref)
    steps_free = np.unique(s).size >= 3
    d_free = anneal_free(s, anneal)
    upper = float(log_y.max() + ALPHA_BOUNDS[1] * -np.log(EPS_BOUNDS[0]) + 5.0)
    lo = np.r_[ALPHA_BOUNDS[0], EPS_BOUNDS[0], GAMMA_BOUNDS[0], GAMMA_BOUNDS[0], np.zeros(m - 1),
               np.full(m, -U_MAX), LOG_FLOOR, BETA_BOUNDS[0], LOG_FLOOR, D_BOUNDS[0]]  # fmt: skip
    hi = np.r_[ALPHA_BOUNDS[1], EPS_BOUNDS[1], GAMMA_BOUNDS[1], GAMMA_BOUNDS[1], np.full(m - 1, T_MAX),
               np.full(m, U_MAX), upper, BETA_BOUNDS[1], upper, D_BOUNDS[1]]  # fmt: skip
    starts = []
    for eps0 in (0.003, 0.03):
        log_e0 = np.log(eps0 + r[:, own])
        _, alpha0 = np.linalg.lstsq(np.column_stack([np.ones(n), -log_e0]), log_y, rcond=None)[0]
        alpha0 = float(np.clip(alpha0, 0.01, ALPHA_BOUNDS[1] - 0.01))
        # the log step factor if the mixture factor were BiMix's
        b0, beta0, c0 = _step_start(log_y + alpha0 * log_e0, s, log_s, LOG_FLOOR)
        for d0 in (0.0, 0.3) if d_free else (0.0,):
            starts.append(np.r_[alpha0, eps0, 0.7, 1.0, np.full(m - 1, 1e-3), np.zeros(m), b0, beta0, c0, d0])
    res, theta, free = _fit_starts(
        lambda theta: transfer_log_loss(theta, r, log_s, own, anneal), log_y, starts, lo, hi, steps_free,
        d_free, np.arange(N_HEAD, N_HEAD + 2 * m - 1), np.sqrt(lam * n), max_nfev,
    )  # fmt: skip
    other = np.arange(m) != own
    T = np.ones(m)
    T[other] = theta[N_HEAD : N_HEAD + m - 1]
    names = ["alpha", "eps", "gamma", "delta"] + [f"T{j}" for j in range(m - 1)] + [f"u{j}" for j in range(m)]
    head = {k: float(v) for k, v in zip(("alpha", "eps", "gamma", "delta"), theta[:N_HEAD], strict=True)}
    u = theta[N_HEAD + m - 1 : N_HEAD + 2 * m - 1].copy()
    return _result(res, theta, free, lo, hi, names, s_ref, steps_free, head, T, u)


def fit_transfer_target(
    r: np.ndarray,
    s: np.ndarray,
    y: np.ndarray,
    lam: float,
    max_nfev: int = 300,
    anneal: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit one target (the target form) on tuples r [n, m], s [n] > 0, y [n] > 0; `lam` ≥ 0: the ridge on
    τ = log T and u (penalty λ·(‖τ‖² + ‖u‖²) per mean squared log residual); anneal as for
    `fit_transfer_domain`. δ comes back NaN (unused)."""
    n, m = r.shape
    log_y = np.log(y)
    s_ref = float(s.max())
    log_s = np.log(s / s_ref)
    steps_free = np.unique(s).size >= 3
    d_free = anneal_free(s, anneal)
    lo = np.r_[ALPHA_BOUNDS[0], LOG_EPS_TARGET_BOUNDS[0], GAMMA_BOUNDS[0], np.full(m, TAU_BOUNDS[0]),
               np.full(m, -U_MAX), -TARGET_LOG_BOUND, BETA_BOUNDS[0], -TARGET_LOG_BOUND, D_BOUNDS[0]]  # fmt: skip
    hi = np.r_[ALPHA_BOUNDS[1], LOG_EPS_TARGET_BOUNDS[1], GAMMA_BOUNDS[1], np.full(m, TAU_BOUNDS[1]),
               np.full(m, U_MAX), TARGET_LOG_BOUND, BETA_BOUNDS[1], TARGET_LOG_BOUND, D_BOUNDS[1]]  # fmt: skip
    alpha0, gamma0 = 0.05, 0.7
    starts = []
    for eps0 in (0.01, 0.3):
        log_e0 = np.log(eps0 + _powers(r, gamma0)[0].sum(axis=1))
        b0, beta0, c0 = _step_start(log_y + alpha0 * log_e0, s, log_s, -TARGET_LOG_BOUND)
        for d0 in (0.0, 0.3) if d_free else (0.0,):
            starts.append(np.r_[alpha0, np.log(eps0), gamma0, np.zeros(m), np.zeros(m), b0, beta0, c0, d0])
    res, theta, free = _fit_starts(
        lambda theta: target_log_loss(theta, r, log_s, anneal), log_y, starts, lo, hi, steps_free,
        d_free, np.arange(3, 3 + 2 * m), np.sqrt(lam * n), max_nfev,
    )  # fmt: skip
    names = ["alpha", "eps", "gamma"] + [f"tau{j}" for j in range(m)] + [f"u{j}" for j in range(m)]
    head = {
        "alpha": float(theta[0]),
        "eps": float(np.exp(theta[1])),
        "gamma": float(theta[2]),
        "delta": np.nan,
    }
    T, u = np.exp(theta[3 : 3 + m]), theta[3 + m : 3 + 2 * m].copy()
    return _result(res, theta, free, lo, hi, names, s_ref, steps_free, head, T, u)


@register_law
class TransferLaw(ScheduleAwareStep, Law):
    """Transfer-BiMix per eval domain (the target form for target metrics). Hyper-parameters: lam ("auto" | "cv" | a number ≥ 0), lam0 (> 0, the
    "auto" rule's numerator), folds (≥ 2, for "cv"), seed (the "cv" fold split), max_nfev (per start),
    step_term ("plain" | "schedule")."""

    name = "transfer"
    fixed_step = False
    solver = "coupled"

    def __init__(
        self,
        lam: float | str = "auto",
        lam0: float = 0.01,
        folds: int = 4,
        seed: int = 0,
        max_nfev: int = 300,
        step_term: str = "plain",
    ) -> None:
        self.lam = lam
        self.lam0 = lam0
        self.folds = folds
        self.seed = seed
        self.max_nfev = max_nfev
        self.step_term = step_term

    def check_params(self) -> None:
        if isinstance(self.lam, str):
            if self.lam not in ("auto", "cv"):
                raise BadInput(f"transfer: `lam` must be 'auto', 'cv' or a number ≥ 0 (got '{self.lam}')")
        elif (
            isinstance(self.lam, bool)
            or not isinstance(self.lam, int | float)
            or not (np.isfinite(self.lam) and self.lam >= 0)
        ):
            raise BadInput(f"transfer: `lam` must be 'auto', 'cv' or a finite number ≥ 0 (got {self.lam!r})")
        if (
            isinstance(self.lam0, bool)
            or not isinstance(self.lam0, int | float)
            or not (np.isfinite(self.lam0) and self.lam0 > 0)
        ):
            raise BadInput(f"transfer: `lam0` must be a finite number > 0 (got {self.lam0!r})")
        for key, least in (("folds", 2), ("max_nfev", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise BadInput(f"transfer: `{key}` must be an integer ≥ {least} (got {value!r})")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise BadInput(f"transfer: `seed` must be an integer (got {self.seed!r})")
        self.check_step_term()

    def _usable(self, obs: Observations, j: int) -> np.ndarray:
        return np.isfinite(obs.losses[:, j]) & (obs.losses[:, j] > 0) & (obs.steps > 0)

    def unfittable_domains(self, obs: Observations) -> dict[str, str]:
        out = {}
        for j, domain in enumerate(obs.eval_domains):
            use = self._usable(obs, j)
            if use.sum() < 2:
                out[domain] = f"{int(use.sum())} usable tuples (need ≥ 2 with a loss and field 'step' > 0)"
        return out

    def _fit_all(self, obs: Observations, lam: float) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        own = obs.eval_index
        fits, report = [], {}
        r_all = obs.point_proportions
        for j, domain in enumerate(obs.eval_domains):
            use = self._usable(obs, j)
            y, s = obs.losses[use, j], obs.steps[use]
            anneal = self.anneal(s)
            if own[j] < 0:
                fit = fit_transfer_target(r_all[use], s, y, lam, int(self.max_nfev), anneal)
            else:
                fit = fit_transfer_domain(r_all[use], s, y, int(own[j]), lam, int(self.max_nfev), anneal)
            fits.append(fit)
            pred = transfer_loss(r_all[use], s, own[j : j + 1], _stack([fit]), anneal)[:, 0]
            report[domain] = {
                **residual_report(y, pred),
                **{k: fit[k] for k in ("cost", "nfev", "steps_identified", "at_bound")},
                "excluded_nonpositive_step": int((np.isfinite(obs.losses[:, j]) & (obs.steps <= 0)).sum()),
            }
        return _stack(fits), report

    def _choose_lam(self, obs: Observations) -> tuple[float, dict[str, float] | None]:
        if self.lam == "auto":
            return float(self.lam0) / len(obs.runs), None
        if self.lam != "cv":
            return float(self.lam), None
        if len(obs.runs) < self.folds:
            raise BadInput(f"transfer: `folds` ({self.folds}) exceeds the number of runs ({len(obs.runs)})")
        fold_of_run = np.random.default_rng(int(self.seed)).permutation(len(obs.runs)) % int(self.folds)
        fold = fold_of_run[obs.point_run]
        errors = {}
        for lam0 in LAM0_GRID:
            err = 0.0
            for k in range(int(self.folds)):
                train, test = obs.select_points(fold != k), fold == k
                coef, _ = self._fit_all(train, lam0 / len(train.runs))
                steps = obs.steps[test]
                pred = transfer_loss(
                    obs.point_proportions[test], steps, obs.eval_index, coef, self.anneal(steps)
                )
                y = obs.losses[test]
                seen = np.isfinite(y) & (y > 0) & (obs.steps[test] > 0)[:, None]
                err += float(((np.log(pred[seen]) - np.log(y[seen])) ** 2).sum())
            errors[f"{lam0:g}"] = err
        best = min(errors, key=errors.__getitem__)
        return float(best) / len(obs.runs), errors

    def _fit(self, obs: Observations) -> None:
        unfittable = self.unfittable_domains(obs)
        if unfittable:
            domain, why = next(iter(unfittable.items()))
            raise BadInput(f"{obs.source}: transfer: domain '{domain}' has {why}")
        self.fit_schedule(obs)
        lam, cv_errors = self._choose_lam(obs)
        coef, report = self._fit_all(obs, lam)
        for k in (*COEFS, "T", "u"):
            setattr(self, f"{k}_", coef[k])
        self.lam_ = lam
        at_bound = {d: rep["at_bound"] for d, rep in report.items() if rep["at_bound"]}
        self.fit_report_ = {
            "lam": lam,
            "lam_cv_sq_log_error": cv_errors,
            "domains": report,
            "at_bound": at_bound,
        }

    def _coef(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, f"{k}_") for k in (*COEFS, "T", "u")}

    def _own(self) -> np.ndarray:
        """[e] column of each eval domain in `domains_`, −1 for a target (the target form)."""
        return np.array([self.domains_.index(d) if d in self.domains_ else -1 for d in self.eval_domains_])

    def _coef_names(self, d: str) -> tuple[str, ...]:
        """The scalar coefficients of eval domain `d`: a target has no own-share power δ; D only with the
        schedule-aware step term."""
        drop = {"delta"} if d not in self.domains_ else set()
        if self.schedule_ is None:
            drop.add("D")
        return tuple(k for k in COEFS if k not in drop)

    def _predict(self, r: np.ndarray, s: np.ndarray) -> np.ndarray:
        return transfer_loss(r, s, self._own(), self._coef(), self.anneal(s))

    def coefficients(self) -> dict[str, float]:
        out = {}
        for k in COEFS:
            for d, v in zip(self.eval_domains_, getattr(self, f"{k}_"), strict=True):
                if k in self._coef_names(d):
                    out[f"{k}[{d}]"] = float(v)
        for k in ("T", "u"):
            for d, row in zip(self.eval_domains_, getattr(self, f"{k}_"), strict=True):
                for src, v in zip(self.domains_, row, strict=True):
                    if k == "u" or src != d:
                        out[f"{k}[{d},{src}]"] = float(v)
        return out

    def _state(self) -> dict[str, Any]:
        return {
            "A": 1.0,
            "lam": float(self.lam_),
            **self.schedule_state(),
            **{
                d: {
                    **{k: float(getattr(self, f"{k}_")[i]) for k in self._coef_names(d)},
                    "T": {
                        src: float(v) for src, v in zip(self.domains_, self.T_[i], strict=True) if src != d
                    },
                    "u": dict(zip(self.domains_, map(float, self.u_[i]), strict=True)),
                }
                for i, d in enumerate(self.eval_domains_)
            },
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.load_schedule(state)
        for k in COEFS:
            absent = 0.0 if k == "D" else np.nan  # the plain term's D is 0
            setattr(
                self,
                f"{k}_",
                np.array(
                    [float(state[d][k]) if k in self._coef_names(d) else absent for d in self.eval_domains_]
                ),
            )
        self.T_ = np.array(
            [
                [1.0 if src == d else float(state[d]["T"][src]) for src in self.domains_]
                for d in self.eval_domains_
            ]
        )
        self.u_ = np.array([[float(state[d]["u"][src]) for src in self.domains_] for d in self.eval_domains_])
        self.lam_ = float(state["lam"])


def _stack(fits: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {k: np.array([f[k] for f in fits]) for k in (*COEFS, "T", "u")}
