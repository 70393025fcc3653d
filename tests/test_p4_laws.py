"""Issue 15 leftovers: the target form of the transfer law (olmix's task-BPB targets), DML on the coupled
optimiser's driver, and one rule for targets (`Law.check_targets`; `Observations.eval_index` marks them −1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import fsolve
from scipy.stats import spearmanr

from mixlab.errors import BadInput
from mixlab.laws import Observations, build_observations, get_law, law_from_dict
from mixlab.laws.importers import import_olmix
from mixlab.laws.optimize import optimize_law, optimize_mixture, simplex_bounds
from mixlab.laws.synthetic import dirichlet_mixtures
from mixlab.laws.transfer import target_log_loss

OLMIX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "olmix"


def test_target_form_jacobian_matches_finite_differences():
    m = 4
    r = dirichlet_mixtures(30, m, seed=5)
    r[:6, 1] = 0.0  # shares of 0: r^γ·log r has limit 0 there
    r /= r.sum(1, keepdims=True)
    log_s = np.log(np.linspace(0.1, 1.0, 30))
    rng = np.random.default_rng(2)
    theta = np.r_[0.3, np.log(0.05), 0.8, rng.normal(0, 0.5, m), rng.normal(0, 0.3, m), 0.5, 0.4, 0.7, 0.3]
    anneal = np.linspace(0.0, 0.9, 30)  # the schedule-aware step term's 1 − η(s)
    _, jac = target_log_loss(theta, r, log_s, anneal)
    h = 1e-6
    numeric = np.column_stack(
        [(target_log_loss(theta + h * e, r, log_s, anneal)[0] - target_log_loss(theta - h * e, r, log_s, anneal)[0])
         / (2 * h) for e in np.eye(theta.size)]
    )  # fmt: skip
    np.testing.assert_allclose(jac, numeric, rtol=1e-5, atol=1e-7)


def _toy_values(r: np.ndarray) -> np.ndarray:
    return np.column_stack(
        [2.0 - r[:, 0] + 0.5 * r[:, 1] ** 2, 1.2 * (0.05 + r[:, 2] ** 0.6 + 0.3 * r[:, 0]) ** -0.2]
    )


def _toy_targets(n: int) -> Observations:
    """Two targets of 3-domain mixtures at one step, neither a mixture domain (a whole-mixture function each)."""
    r = dirichlet_mixtures(n, 3, seed=1)
    y = _toy_values(r)
    runs = tuple(f"r{i}" for i in range(n))
    return Observations(
        ("a", "b", "c"), ("task1", "task2"), runs, r, np.arange(n), np.ones(n), np.full(n, np.nan), y
    )


def test_transfer_fits_targets_round_trips_and_optimises():
    obs = _toy_targets(40)
    assert obs.eval_index.tolist() == [-1, -1]  # targets: no own column
    law = get_law("transfer").fit(obs)
    assert np.isnan(law.delta_).all() and law.T_.shape == (2, 3)
    fresh = dirichlet_mixtures(20, 3, seed=9)
    truth = _toy_values(fresh)
    pred = law.predict(fresh, 1.0)
    for j in range(2):
        assert spearmanr(pred[:, j], truth[:, j]).statistic > 0.95
    d = json.loads(json.dumps(law.to_dict(), allow_nan=False))
    assert "delta" not in d["params"]["task1"] and set(d["params"]["task1"]["T"]) == {"a", "b", "c"}
    back = law_from_dict(d)
    np.testing.assert_array_equal(back.predict(fresh, 1.0), pred)
    assert back.coefficients() == law.coefficients() and not any("delta" in k for k in law.coefficients())
    mixture = optimize_mixture(law, 1.0, min_weight=0.05)
    assert mixture.meta["targets"] == ["task1", "task2"] and mixture.meta["method"] == "slsqp-multistart"
    uniform = law.predict(np.full((1, 3), 1 / 3), 1.0)[0].sum()
    assert mixture.meta["objective"] <= uniform and min(mixture.weights.values()) >= 0.05 - 1e-12


def test_own_share_laws_still_refuse_targets_by_the_one_rule():
    obs = _toy_targets(12)
    for name in ("bimix", "powerlaw"):
        with pytest.raises(BadInput, match=f"target 'task1' is not a mixture domain: `law` '{name}'"):
            get_law(name).fit(obs)


@pytest.fixture(scope="module")
def olmix_obs():
    if not (OLMIX / "dclm_ratios.csv").is_file():
        pytest.skip(f"the olmix swarm is not at {OLMIX} (shared/ beside the clone)")
    imp = import_olmix(OLMIX / "dclm_ratios.csv", OLMIX / "dclm_metrics.csv")
    obs = build_observations(imp.mixtures, imp.runs.assign(where=[f"row {i}" for i in range(len(imp.runs))]))
    return obs.select_eval_domains(obs.eval_domains[::5])  # 22 of the 110 targets: the test stays < 20 s


def test_transfer_target_form_on_olmix_held_out_runs(olmix_obs):
    """Fit on 100 olmix runs (seed-0 split), predict the other 27: mean Spearman over 22 targets (every 5th).
    Floor 0.74, set on the fit runs only: three seeded 75 → 25 splits of the 100 gave 0.834 / 0.788 / 0.814;
    0.74 is their lowest less their spread (0.046). Measured on the 27 held-out runs: 0.842 (LightGBM 0.838,
    DML 0.813 on these targets in the prototype)."""
    obs = olmix_obs
    perm = np.random.default_rng(0).permutation(len(obs.runs))
    fit, held = perm[:100], perm[100:]
    law = get_law("transfer").fit(obs.select_runs([obs.runs[i] for i in fit]))
    assert law.lam_ == pytest.approx(1e-4)  # lam0 / n_runs = 0.01 / 100
    pred = law.predict(obs.proportions[held], 1.0)
    y = obs.losses[held]  # one evaluation per run: point k is run k
    rho = [spearmanr(pred[:, j], y[:, j]).statistic for j in range(y.shape[1])]
    assert np.mean(rho) >= 0.74


# --- DML on the coupled driver -------------------------------------------------------------------


def _dml_law(m: int):
    rng = np.random.default_rng(m)
    doms = [f"d{i}" for i in range(m)]
    per_step = {}
    for i, d in enumerate(doms):
        t = rng.normal(0.0, 0.5, m)
        t[i] = -2.0 - rng.random()
        per_step[d] = {"c": 1.0 + rng.random(), "k": 0.5 + rng.random(), "t": dict(zip(doms, t, strict=True))}
    return law_from_dict({"law": "dml", "domains": doms, "eval_domains": doms,
                          "params": {"steps": [1000.0], "per_step": [per_step]}})  # fmt: skip


# optima of the fixed laws above by the former DML driver (`optimize_dml`, prior + uniform + 8 Dirichlet
# starts), at commit 4f933ff
BEFORE = {
    3: ([0.0961827285694715, 0.4623551697599111, 0.4414621016706174], 7.148359476348912),
    4: ([0.3, 0.13935785402626483, 0.19999999999999998, 0.3606421459737353], 13.649889878400378),
    5: ([0.02, 0.33030896090986056, 0.11364901314349111, 0.02, 0.5160420259466483], 14.716720232095902),
}


def _dml_bounds(m: int) -> tuple[np.ndarray, np.ndarray]:
    if m == 4:  # two binding caps and a floor
        return simplex_bounds(4, 0.05, np.array([0.3e9, 1e9, 0.2e9, 5e9]), 1e9, 1.0)
    return simplex_bounds(m, 0.0 if m == 3 else 0.02)


@pytest.mark.parametrize("m", [3, 4, 5])
def test_dml_optimum_is_unchanged_on_the_coupled_driver(m):
    law = _dml_law(m)
    lo, hi = _dml_bounds(m)
    opt = optimize_law(law, 1000.0, lo, hi, np.linspace(1.0, 2.0, m))
    assert opt.method == "slsqp-multistart" and opt.details["gradient"] == "analytic"
    assert opt.details["starts"] == 2 + m + 8
    r_before, objective_before = BEFORE[m]
    assert opt.objective == pytest.approx(objective_before, rel=1e-12)
    # SLSQP stops on the objective (ftol 1e-15), which fixes r only to ~sqrt(ftol) ≈ 3e-8 near a smooth
    # minimum: the fresh-clone run found r 2.6e-9 from the former optimum with the objective equal to 1e-12
    np.testing.assert_allclose(opt.r, r_before, rtol=0, atol=1e-7)


def test_dml_optimum_matches_the_kkt_root_and_brute_force_on_3_domains():
    law = _dml_law(3)
    c, k, t = law.coefficients_at(1000.0)
    w = np.linspace(1.0, 2.0, 3)
    opt = optimize_law(law, 1000.0, np.zeros(3), np.ones(3), w)

    def grad(r):
        return (w * k * np.exp(t @ r)) @ t

    def equal_gradients(x):  # interior optimum: ∂/∂r_i equal for every i
        g = grad(np.r_[x, 1 - x.sum()])
        return g[:2] - g[2]

    x = fsolve(equal_gradients, np.array([0.3, 0.3]), xtol=1e-15)
    # SLSQP stops on the objective (ftol 1e-15): r is ~1e-9 from the root (9.5e-10 here)
    np.testing.assert_allclose(opt.r, np.r_[x, 1 - x.sum()], rtol=0, atol=1e-8)
    a, b = np.meshgrid(np.arange(0, 1.0005, 1e-3), np.arange(0, 1.0005, 1e-3), indexing="ij")
    grid = np.column_stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()])
    grid = grid[grid[:, 2] >= -1e-12]
    values = (w * (c + k * np.exp(grid @ t.T))).sum(axis=1)
    assert opt.objective <= values.min()
    np.testing.assert_allclose(opt.r, grid[np.argmin(values)], atol=1.5e-3)
