"""Optimal proportions on the simplex under bounds and repetition caps (METHODS.md §1.4). Pure numpy/SciPy.

Problem: r* = argmin_r Σ_i w_i·L_i(r, s*)  s.t.  Σ r_i = 1,  lo_i ≤ r_i ≤ hi_i.
Caps: hi_i = min(1, max_epochs · available_i / target_tokens) — a domain cannot be repeated more than
`max_epochs` times. For separable power laws (BiMix at a step, the simple power law) L_i = K_i·r_i^{−α_i}:
- closed form (no bound binds, every weighted α_i > 0): r_i(λ) = (α_i·w_i·K_i/λ)^{1/(1+α_i)} with Σ r_i(λ) = 1
  found by a 1-D monotone root find on log λ;
- bounded KKT: the same with r_i(λ) clamped to [lo_i, hi_i] (exact for this separable convex problem);
  domains with α_i ≤ 0 (or no weight) gain nothing from a larger share and sit at their lower bound, unless
  the others' caps leave a remainder: then it goes to them, to those the objective ignores first (in
  proportion to the prior mixture, default uniform), to those whose loss rises with their share last;
- SLSQP on the same objective, used as a cross-check.
Coupled laws (solver "coupled": any smooth law whose L_i depends on the whole mixture) and DML (solver "dml":
the same driver on DML's analytic gradient) get SLSQP from
several starts — the prior, the uniform mixture, one vertex of the feasible polytope per domain and seeded
Dirichlet draws — with the law's analytic Jacobian `loss_gradient(r, step)` [e, m] where it has one, central
finite differences of `predict` otherwise; the lowest objective among the (projected, feasible) results wins.
RegMix has no gradient: Dirichlet simulation around a prior mixture and top-k averaging (Liu et al. 2024).
Targets: a law fitted on target metrics (eval names that are not mixture domains) is optimised the same way,
the weights then weigh targets; own-share laws (bimix, powerlaw) cannot be fitted on targets.
`optimize_mixture` wraps it all for a fitted law: bounds, references, predicted losses, bootstrap → a Mixture.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import brentq, minimize

from mixlab.engine import Engine, LocalEngine
from mixlab.errors import BadInput
from mixlab.laws.base import Law, check_is_fitted, get_law
from mixlab.laws.bootstrap import bootstrap_laws, bootstrap_summary, named_intervals
from mixlab.laws.observations import Observations
from mixlab.mixture import Mixture


@dataclass
class OptimumResult:
    """r [m] the optimum (domain order of the law), objective Σ w_i L_i at r, method used, and checks."""

    r: np.ndarray
    objective: float
    method: str
    details: dict[str, Any] = field(default_factory=dict)


def simplex_bounds(
    m: int,
    min_weight: np.ndarray | float = 0.0,
    available_tokens: np.ndarray | None = None,
    target_tokens: float | None = None,
    max_epochs: float = 1.0,
    domains: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(lo [m], hi [m]) from a minimum share per domain and repetition caps; checks feasibility."""
    names = domains or [str(i) for i in range(m)]
    lo = np.broadcast_to(np.asarray(min_weight, dtype=float), (m,)).copy()
    hi = np.ones(m)
    outside = ~((lo >= 0) & (lo <= 1))  # NaN is outside
    if outside.any():
        raise BadInput(f"`min_weight` must be in [0, 1] (domain '{names[int(np.argmax(outside))]}')")
    if available_tokens is not None:
        if target_tokens is None or not (np.isfinite(target_tokens) and target_tokens > 0):
            raise BadInput("`available` needs a positive, finite `target_tokens`")
        if not (np.isfinite(max_epochs) and max_epochs > 0):
            raise BadInput(f"`max_epochs` must be positive and finite, got {max_epochs}")
        available_tokens = np.asarray(available_tokens, dtype=float)
        hi = np.minimum(1.0, max_epochs * available_tokens / float(target_tokens))
    bad = np.flatnonzero(lo > hi + 1e-12)
    if bad.size:
        i = int(bad[0])
        raise BadInput(
            f"domain '{names[i]}': minimum share {lo[i]:.4g} exceeds its repetition cap {hi[i]:.4g} "
            f"(max_epochs · available / target_tokens)"
        )
    if lo.sum() > 1 + 1e-9:
        raise BadInput(f"minimum shares sum to {lo.sum():.4g} > 1")
    if hi.sum() < 1 - 1e-9:
        raise BadInput(
            f"repetition caps allow only {hi.sum():.4g} of the target tokens: the domains do not hold "
            f"target_tokens / max_epochs tokens together (raise `max_epochs` or lower `target_tokens`)"
        )
    return lo, hi


def _kkt_shares(log_lam: float, alpha: np.ndarray, log_ak: np.ndarray) -> np.ndarray:
    return np.exp((log_ak - log_lam) / (1.0 + alpha))


def _solve_lambda(total: Callable[[float], float], target: float) -> float:
    """Root of total(log λ) = target for a decreasing `total`, bracketing by expansion."""
    a, b = -50.0, 50.0
    while total(a) < target:
        a -= 50.0
        if a < -2000:
            raise BadInput("optimiser: cannot bracket the Lagrange multiplier (degenerate coefficients)")
    while total(b) > target:
        b += 50.0
        if b > 2000:
            raise BadInput("optimiser: cannot bracket the Lagrange multiplier (degenerate coefficients)")
    return brentq(lambda x: total(x) - target, a, b, xtol=1e-14, rtol=1e-14, maxiter=500)


def power_closed_form(alpha: np.ndarray, weighted_k: np.ndarray) -> np.ndarray:
    """Unbounded KKT optimum of Σ K_i r_i^{−α_i} on the simplex; every α_i > 0 and K_i > 0 (weights folded in)."""
    alpha, weighted_k = np.asarray(alpha, float), np.asarray(weighted_k, float)
    if np.any(alpha <= 0) or np.any(weighted_k <= 0):
        raise ValueError("closed form needs every α_i > 0 and w_i·K_i > 0")
    log_ak = np.log(alpha * weighted_k)
    log_lam = _solve_lambda(lambda x: float(_kkt_shares(x, alpha, log_ak).sum()), 1.0)
    r = _kkt_shares(log_lam, alpha, log_ak)
    return r / r.sum()


def power_bounded_kkt(
    alpha: np.ndarray,
    weighted_k: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """Bounded optimum of Σ K_i r_i^{−α_i} on the simplex (K_i ≥ 0, the domain weights folded in).

    Active domains (α_i > 0 and K_i > 0: the objective falls with their share) take r_i(λ) clamped to
    [lo_i, hi_i]; the others stay at their lower bound — unless the active caps cannot absorb the rest. Moving
    share from an inactive domain to an active one below its cap always lowers the objective, so then every
    active domain sits at its cap and the remainder goes to the inactive ones: first to those the objective
    does not depend on (K_i = 0 — no validation loss or weight 0 — or α_i = 0), in proportion to `prior`
    (default uniform) within their bounds, the objective being indifferent among them; only when those are
    full too, to the domains whose loss rises with their share (α_i < 0), minimising their Σ K_i r_i^{|α_i|}.
    """
    alpha, weighted_k = np.asarray(alpha, float), np.asarray(weighted_k, float)
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    prior = np.full(lo.size, 1.0 / lo.size) if prior is None else np.asarray(prior, float)
    active = (alpha > 0) & (weighted_k > 0)
    if not active.any():
        raise BadInput("no domain's loss falls with its share (every α ≤ 0 or weight 0): nothing to optimise")
    r = lo.copy()
    target = 1.0 - lo[~active].sum()
    if hi[active].sum() < target - 1e-12:
        r[active] = hi[active]
        flat = ~active & ((alpha == 0) | (weighted_k <= 0))
        rising = ~active & ~flat
        rest = 1.0 - hi[active].sum() - lo[rising].sum()
        if hi[flat].sum() >= rest - 1e-12:
            r[flat] = _fill_in_proportion(prior[flat], lo[flat], hi[flat], rest)
        else:
            r[flat] = hi[flat]
            r[rising] = _min_rising_power(
                -alpha[rising], weighted_k[rising], lo[rising], hi[rising], 1.0 - r[~rising].sum()
            )
        return r
    a, log_ak = alpha[active], np.log(alpha[active] * weighted_k[active])
    lo_a, hi_a = lo[active], hi[active]

    def total(x: float) -> float:
        return float(np.clip(_kkt_shares(x, a, log_ak), lo_a, hi_a).sum())

    if lo_a.sum() >= target - 1e-15:
        r[active] = lo_a
    else:
        r[active] = np.clip(_kkt_shares(_solve_lambda(total, target), a, log_ak), lo_a, hi_a)
    return r


def _fill_in_proportion(p: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float) -> np.ndarray:
    """clip(t·p, lo, hi) summing to `total` (lo.sum() ≤ total ≤ hi.sum()); domains with p_i = 0 are filled
    (uniformly, the same way) only once the others are at their caps."""
    p = np.where(np.isfinite(p) & (p > 0), p, 0.0)
    pos = p > 0
    if not pos.any():
        return _fill_in_proportion(np.ones(p.size), lo, hi, total)
    if hi[pos].sum() + lo[~pos].sum() < total:
        r = hi.copy()
        r[~pos] = _fill_in_proportion(np.ones(int((~pos).sum())), lo[~pos], hi[~pos], total - hi[pos].sum())
        return r

    def filled(t: float) -> float:
        return float(np.clip(t * p, lo, hi).sum())

    t_max = float((hi[pos] / p[pos]).max())
    if filled(0.0) >= total:
        return lo.copy()
    t = brentq(lambda t: filled(t) - total, 0.0, t_max, xtol=1e-15, rtol=1e-14)
    return np.clip(t * p, lo, hi)


def _min_rising_power(
    gamma: np.ndarray, k: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float
) -> np.ndarray:
    """argmin Σ k_i r_i^{γ_i} (γ_i, k_i > 0) s.t. Σ r_i = total, lo ≤ r ≤ hi.

    Convex terms (γ ≥ 1) are solved by SLSQP; concave ones (γ < 1) have their minimum at a vertex of the
    polytope (every coordinate but one at a bound), which are enumerated for up to 10 domains and also serve
    as SLSQP starts. The lowest objective found wins."""

    def fun(r: np.ndarray) -> float:
        return float(np.sum(k * np.maximum(r, 0.0) ** gamma))

    def grad(r: np.ndarray) -> np.ndarray:
        return k * gamma * np.maximum(r, 1e-12) ** (gamma - 1.0)

    n = lo.size
    candidates = [_fill_in_proportion(np.ones(n), lo, hi, total)]
    if n <= 10:
        for j in range(n):
            others = np.delete(np.arange(n), j)
            for mask in range(2 ** (n - 1)):
                at_hi = np.array([(mask >> b) & 1 for b in range(n - 1)], dtype=bool)
                v = np.empty(n)
                v[others] = np.where(at_hi, hi[others], lo[others])
                v[j] = total - v[others].sum()
                if lo[j] - 1e-12 <= v[j] <= hi[j] + 1e-12:
                    candidates.append(np.clip(v, lo, hi))
    best_vertex = min(candidates, key=fun)
    scaled = minimize_on_simplex(
        lambda x: fun(x * total), lambda x: grad(x * total) * total, lo / total, hi / total,
        [candidates[0] / total, best_vertex / total],
    )  # fmt: skip
    return min([scaled * total, *candidates], key=fun)


def minimize_on_simplex(
    fun: Callable[[np.ndarray], float],
    grad: Callable[[np.ndarray], np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    starts: list[np.ndarray],
) -> np.ndarray:
    """SLSQP from each start (projected into the box and renormalised); the lowest objective wins."""
    best_x, best_f = None, np.inf
    cons = [{"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones_like(x)}]
    for x0 in starts:
        x0 = _project(np.asarray(x0, float), lo, hi)
        res = minimize(
            fun, x0, jac=grad, method="SLSQP", bounds=list(zip(lo, hi, strict=True)), constraints=cons,
            options={"ftol": 1e-15, "maxiter": 1000},
        )  # fmt: skip
        x = _project(np.clip(res.x, lo, hi), lo, hi)
        f = float(fun(x))
        if f < best_f:
            best_x, best_f = x, f
    return best_x


def _project(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {Σ x = 1, lo ≤ x ≤ hi} (bisection on the shift)."""

    def total(t: float) -> float:
        return float(np.clip(x - t, lo, hi).sum())

    a, b = float((x - hi).min()) - 1.0, float((x - lo).max()) + 1.0
    t = brentq(lambda t: total(t) - 1.0, a, b, xtol=1e-15) if total(a) >= 1 >= total(b) else 0.0
    return np.clip(x - t, lo, hi)


def optimize_power(
    alpha: np.ndarray,
    weighted_k: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    prior: np.ndarray | None = None,
) -> OptimumResult:
    """Separable power law Σ K_i r_i^{−α_i}: closed form if it applies and respects the bounds, else
    bounded KKT (`prior` breaks ties among domains the objective is indifferent to, see
    `power_bounded_kkt`); both are cross-checked against SLSQP (`details["slsqp_max_abs_diff"]`,
    `details["slsqp_objective"]`). `details["inactive_filled"]`: domains whose loss does not fall with
    their share but which take more than their lower bound, because the others are at their caps."""
    alpha, weighted_k = np.asarray(alpha, float), np.asarray(weighted_k, float)

    def fun(r: np.ndarray) -> float:
        return float(np.sum(weighted_k * np.maximum(r, 1e-300) ** (-alpha)))

    def grad(r: np.ndarray) -> np.ndarray:
        return -alpha * weighted_k * np.maximum(r, 1e-300) ** (-alpha - 1.0)

    method, r = "bounded-kkt", None
    if np.all(alpha > 0) and np.all(weighted_k > 0):
        closed = power_closed_form(alpha, weighted_k)
        if np.all(closed >= lo - 1e-12) and np.all(closed <= hi + 1e-12):
            method, r = "closed-form-kkt", closed
    if r is None:
        r = power_bounded_kkt(alpha, weighted_k, lo, hi, prior)
    # independent check: SLSQP from the uniform mixture, not from the KKT answer
    slsqp = minimize_on_simplex(fun, grad, np.maximum(lo, 1e-9), hi, [np.full(r.size, 1.0 / r.size)])
    binding = {
        "lower": np.flatnonzero(np.isclose(r, lo) & (lo > 0)).tolist(),
        "upper": np.flatnonzero(np.isclose(r, hi) & (hi < 1)).tolist(),
    }
    inactive = ~((alpha > 0) & (weighted_k > 0))
    return OptimumResult(
        r, fun(r), method,
        {"slsqp_max_abs_diff": float(np.abs(slsqp - r).max()), "slsqp_objective": fun(slsqp), "binding": binding,
         "inactive_filled": np.flatnonzero(inactive & (r > lo + 1e-12)).tolist()},
    )  # fmt: skip


def polytope_vertices(lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """One vertex of {Σ r = 1, lo ≤ r ≤ hi} per domain j: every share at its lower bound, then j filled to
    its cap, then the others in index order (each vertex has every coordinate but one at a bound)."""
    vertices = []
    for j in range(lo.size):
        v = lo.copy()
        for i in (j, *(i for i in range(lo.size) if i != j)):
            v[i] = min(hi[i], lo[i] + (1.0 - v.sum()))
        vertices.append(v)
    return vertices


def numeric_jacobian(
    predict: Callable[[np.ndarray], np.ndarray], r: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """∂L_i/∂r_j [e, m] of `predict` ([n, m] → [n, e]) at r by central differences (forward where r_j < h,
    so no share turns negative), all 2m points in one call."""
    m = r.size
    back = np.minimum(h, np.maximum(r, 0.0))
    points = np.vstack([r + h * np.eye(m), r - back[:, None] * np.eye(m)])
    values = predict(points)
    return ((values[:m] - values[m:]) / (h + back)[:, None]).T


def optimize_coupled(
    fun: Callable[[np.ndarray], float],
    grad: Callable[[np.ndarray], np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    prior: np.ndarray,
    restarts: int = 8,
    seed: int = 0,
) -> OptimumResult:
    """A non-separable objective on the simplex under bounds: SLSQP from the prior, the uniform mixture, the
    `restarts` seeded Dirichlet draws and the polytope vertices of `polytope_vertices`; the lowest objective
    wins (the first of equal ones)."""
    m = lo.size
    rng = np.random.default_rng(seed)
    starts = [
        prior,
        np.full(m, 1.0 / m),
        *rng.dirichlet(np.ones(m), size=restarts),
        *polytope_vertices(lo, hi),  # last: on a tie in the objective the earlier start's optimum stays
    ]
    r = minimize_on_simplex(fun, grad, lo, hi, starts)
    return OptimumResult(r, fun(r), "slsqp-multistart", {"starts": len(starts)})


def optimize_by_simulation(
    objective: Callable[[np.ndarray], np.ndarray],
    prior: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    n_samples: int = 100_000,
    top_k: int = 100,
    seed: int = 0,
) -> OptimumResult:
    """RegMix: sample mixtures from Dirichlet(scale·m·prior) at several scales, keep those within the
    bounds, evaluate `objective` ([n, m] → [n]) and average the top-k (an average of feasible mixtures
    is feasible: the constraint set is convex)."""
    rng = np.random.default_rng(seed)
    m = prior.size
    conc = np.maximum(prior, 1e-3) * m
    scales = (0.3, 1.0, 3.0, 10.0)
    samples = np.vstack([rng.dirichlet(conc * s, size=n_samples // len(scales)) for s in scales])
    feasible = np.all((samples >= lo - 1e-12) & (samples <= hi + 1e-12), axis=1)
    samples = samples[feasible]
    if samples.shape[0] < top_k:
        raise BadInput(
            f"simulation: only {samples.shape[0]} of {n_samples} sampled mixtures satisfy the bounds "
            f"(need top_k = {top_k}); loosen `min_weight` / caps or raise `n_samples`"
        )
    values = objective(samples)
    top = np.argsort(values)[:top_k]
    r = samples[top].mean(axis=0)
    return OptimumResult(
        r / r.sum(), float(objective(r[None, :] / r.sum())[0]), "dirichlet-top-k",
        {"samples": n_samples, "feasible": int(samples.shape[0]), "top_k": top_k, "best_sample_objective": float(values[top[0]])},
    )  # fmt: skip


def _solve_power(law: Law, step: float, w, lo, hi, prior, seed, n_samples, top_k) -> OptimumResult:
    m = len(law.domains_)
    cols = np.array([law.domains_.index(d) for d in law.eval_domains_])
    alpha_e, k_e = law.separable_power(step)
    alpha, weighted_k = np.zeros(m), np.zeros(m)
    alpha[cols], weighted_k[cols] = alpha_e, w * k_e
    return optimize_power(alpha, weighted_k, lo, hi, prior)


def _solve_dml(law: Law, step: float, w, lo, hi, prior, seed, n_samples, top_k) -> OptimumResult:
    """Σ_i w_i (c_i + k_i·exp(t_i·r)) — convex in r for k_i ≥ 0 — by the coupled driver on its analytic
    gradient."""
    c, k, t = law.coefficients_at(step)

    def fun(r: np.ndarray) -> float:
        return float(np.sum(w * (c + k * np.exp(t @ r))))

    def grad(r: np.ndarray) -> np.ndarray:
        return (w * k * np.exp(t @ r)) @ t

    opt = optimize_coupled(fun, grad, lo, hi, _project(prior, lo, hi), seed=seed)
    opt.details["gradient"] = "analytic"
    return opt


def _solve_by_simulation(law: Law, step: float, w, lo, hi, prior, seed, n_samples, top_k) -> OptimumResult:
    law.check_steps(np.array([float(step)]))
    return optimize_by_simulation(
        lambda r: law.predict(r, step) @ w, prior, lo, hi, n_samples=n_samples, top_k=top_k, seed=seed
    )


def _solve_coupled(law: Law, step: float, w, lo, hi, prior, seed, n_samples, top_k) -> OptimumResult:
    if law.fixed_step:
        law.check_steps(np.array([float(step)]))

    def predict(r: np.ndarray) -> np.ndarray:
        return law.predict(r, step)

    analytic = hasattr(law, "loss_gradient")

    def jacobian(r: np.ndarray) -> np.ndarray:
        return law.loss_gradient(r, step) if analytic else numeric_jacobian(predict, r)

    opt = optimize_coupled(
        lambda r: float(predict(r[None, :])[0] @ w), lambda r: w @ jacobian(r), lo, hi, _project(prior, lo, hi),
        seed=seed,
    )  # fmt: skip
    opt.details["gradient"] = "analytic" if analytic else "finite-difference"
    return opt


SOLVERS: dict[str, Callable[..., OptimumResult]] = {
    "power": _solve_power,
    "dml": _solve_dml,
    "coupled": _solve_coupled,
    "simulation": _solve_by_simulation,
}


def optimize_law(
    law: Law,
    step: float,
    lo: np.ndarray,
    hi: np.ndarray,
    domain_weights: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    seed: int = 0,
    n_samples: int = 100_000,
    top_k: int = 100,
) -> OptimumResult:
    """Minimise Σ_j w_j·L_j(r, step) over the law's eval domains j, r on the simplex of `law.domains_`.

    `domain_weights` [e] (default 1 each); `prior` [m] is the centre of RegMix's simulation and a start
    for SLSQP (default uniform). The law's `solver` picks the method: "power" (bimix, powerlaw) → KKT;
    "dml" and "coupled" → multi-start SLSQP on the law's Jacobian; "simulation" (regmix) → Dirichlet
    simulation. For a law fitted on targets, the eval domains are the targets.
    """
    if not (np.isfinite(step) and step > 0):
        raise BadInput(f"step must be a positive, finite number, got {step}")
    m, e = len(law.domains_), len(law.eval_domains_)
    w = np.ones(e) if domain_weights is None else np.asarray(domain_weights, float)
    if w.shape != (e,) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise BadInput("domain weights must be non-negative numbers, one per eval domain, not all zero")
    prior = np.full(m, 1.0 / m) if prior is None else np.asarray(prior, float)
    return SOLVERS[law.solver](law, step, w, lo, hi, prior, seed, n_samples, top_k)


def law_targets(law: Law) -> list[str]:
    """The eval names of a fitted law that are targets (metrics that are not mixture domains)."""
    return [d for d in law.eval_domains_ if d not in law.domains_]


def _over(names: Sequence[str], values: Mapping[str, float], param: str, default: float | None) -> np.ndarray:
    """A {domain: number} mapping as a vector over `names` (missing: `default`, or an error without one)."""
    extra = [d for d in values if d not in names]
    if extra:
        raise BadInput(f"`{param}`: domain '{extra[0]}' is not a domain of the law ({', '.join(names)})")
    missing = [d for d in names if d not in values]
    if missing and default is None:
        raise BadInput(f"`{param}`: no value for domain '{missing[0]}'")
    return np.array([float(values.get(d, default)) for d in names])


def optimize_mixture(
    law: Law,
    step: float,
    *,
    min_weight: float | Mapping[str, float] = 0.0,
    domain_weights: Mapping[str, float] | None = None,
    available: Mapping[str, float] | None = None,
    target_tokens: float | None = None,
    max_epochs: float = 1.0,
    references: Sequence[Mixture] = (),
    bootstrap: int = 0,
    observations: Observations | None = None,
    seed: int = 0,
    n_samples: int = 100_000,
    top_k: int = 100,
    name: str = "optimum",
    available_source: str = "available",
    engine: Engine | None = None,
) -> Mixture:
    """The optimal mixture of a fitted `law` at `step` (what `mixlab optimize` writes as mixture.json).

    `min_weight`: a share for every domain or {domain: share} (missing: 0); `domain_weights`: importance
    per eval domain (missing: 1) — for a law fitted on targets (eval names that are not mixture domains,
    listed in the meta as "targets") the weights of the targets, so the objective is Σ_t w_t·ŷ_t; `available` tokens per domain with `target_tokens` and `max_epochs` cap
    each share (and add the "natural" mixture, proportional to `available`, as the first reference unless
    `references` has one; `available_source` names it in its errors). The meta records the bounds, the
    predicted losses at the optimum and at each reference, the epochs per domain (with `available` and
    `target_tokens`), and with `bootstrap` N > 0 the intervals over N refits on run-resampled
    `observations` (the runs `law` was fitted on); the refits and their optima run on `engine`'s workers
    (default: in this process), with the same result on every engine.
    """
    if top_k > n_samples:
        raise BadInput(f"`top_k` {top_k} exceeds `n_samples` {n_samples}")
    check_is_fitted(law)
    doms = law.domains_
    lo_arg = min_weight if isinstance(min_weight, int | float) else _over(doms, min_weight, "min_weight", 0.0)
    tokens = _over(doms, available, "available", None) if available is not None else None
    lo, hi = simplex_bounds(len(doms), lo_arg, tokens, target_tokens, max_epochs, list(doms))
    w = (
        _over(law.eval_domains_, domain_weights, "domain_weights", 1.0)
        if domain_weights is not None
        else None
    )
    refs = list(references)
    if tokens is not None and tokens.sum() > 0 and not any(r.name == "natural" for r in refs):
        refs.insert(
            0, Mixture.from_weights("natural", dict(zip(doms, tokens, strict=True)), where=available_source)
        )
    prior = next((law.proportions_matrix([r])[0] for r in refs if r.name == "natural"), None)
    opt = optimize_law(law, step, lo, hi, w, prior, seed=seed, n_samples=n_samples, top_k=top_k)
    weights_vec = w if w is not None else np.ones(len(law.eval_domains_))

    def predicted(r: np.ndarray, fitted: Law = law) -> np.ndarray:
        return fitted.predict(r[None, :], step)[0]

    pred = predicted(opt.r)
    meta: dict[str, Any] = {
        "law": law.name,
        "step": step,
        "method": opt.method,
        "objective": opt.objective,
        "details": opt.details,
        "bounds": {d: [float(a), float(b)] for d, a, b in zip(doms, lo, hi, strict=True)},
        "predicted_loss": dict(zip(law.eval_domains_, map(float, pred), strict=True)),
        "references": {},
    }
    targets = law_targets(law)
    if targets:
        meta["targets"] = targets
        meta["target_weights"] = dict(zip(law.eval_domains_, map(float, weights_vec), strict=True))
    if tokens is not None and target_tokens:
        meta["epochs"] = {
            d: float(r * target_tokens / t) if t > 0 else 0.0
            for d, r, t in zip(doms, opt.r, tokens, strict=True)
        }
    ref_vecs = {}
    for ref in refs:
        vec = law.proportions_matrix([ref])[0]
        ref_vecs[ref.name] = vec
        p = predicted(vec)
        meta["references"][ref.name] = {
            "weights": dict(zip(doms, map(float, vec), strict=True)),
            "predicted_loss": dict(zip(law.eval_domains_, map(float, p), strict=True)),
            "objective": float(p @ weights_vec),
        }
    if bootstrap:
        if observations is None:
            raise BadInput("`bootstrap` needs `observations` (the runs the law was fitted on)")
        engine = engine or LocalEngine(1)
        laws, failed = bootstrap_laws(
            functools.partial(get_law, law.name, **law.get_params()), observations, bootstrap, seed, engine
        )
        optimum = functools.partial(
            optimize_law, step=step, lo=lo, hi=hi, domain_weights=w, prior=prior, seed=seed,
            n_samples=n_samples, top_k=top_k,
        )  # fmt: skip
        optima = [o.r for o in engine.map(optimum, laws, "bootstrap optima")]
        at_opt, at_ref = [], {k: [] for k in ref_vecs}
        for b in laws:
            at_opt.append(predicted(opt.r, b))
            for k, vec in ref_vecs.items():
                at_ref[k].append(predicted(vec, b))
        meta["bootstrap"] = bootstrap_summary(
            laws,
            failed,
            optimal_weights=named_intervals(doms, optima),
            predicted_loss=named_intervals(law.eval_domains_, at_opt),
            reference_predicted_loss={k: named_intervals(law.eval_domains_, v) for k, v in at_ref.items()},
        )
    return Mixture(name, dict(zip(doms, map(float, opt.r), strict=True)), meta)
