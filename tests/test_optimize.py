"""Optimal proportions: closed-form KKT vs bounded KKT vs SLSQP vs brute-force grids; caps; other laws."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlab.errors import BadInput
from mixlab.laws import get_law, law_from_dict
from mixlab.laws.optimize import (
    minimize_on_simplex,
    optimize_by_simulation,
    optimize_law,
    optimize_power,
    power_bounded_kkt,
    power_closed_form,
    simplex_bounds,
)
from mixlab.laws.synthetic import dirichlet_mixtures, synthetic_bimix

ALPHA = np.array([0.08, 0.15, 0.05])
K = np.array([2.0, 2.5, 1.5])


def grid_argmin(fun, lo=(0, 0, 0), hi=(1, 1, 1)) -> np.ndarray:
    """Brute force over the 3-simplex: a 1e-3 grid, then a 2e-5 grid ±2e-3 around the best point."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)

    def search(a_vals, b_vals):
        a, b = np.meshgrid(a_vals, b_vals, indexing="ij")
        r = np.stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()], axis=1)
        ok = np.all((r >= lo - 1e-12) & (r <= hi + 1e-12) & (r > 0), axis=1)
        r = r[ok]
        return r[np.argmin(fun(r))]

    coarse = search(np.arange(1e-3, 1, 1e-3), np.arange(1e-3, 1, 1e-3))
    return search(
        np.arange(coarse[0] - 2e-3, coarse[0] + 2e-3, 2e-5),
        np.arange(coarse[1] - 2e-3, coarse[1] + 2e-3, 2e-5),
    )


def power_objective(r: np.ndarray, alpha=ALPHA, k=K) -> np.ndarray:
    return np.sum(k * r ** (-alpha), axis=-1)


def test_closed_form_slsqp_and_grid_agree_m3():
    closed = power_closed_form(ALPHA, K)
    result = optimize_power(ALPHA, K, np.zeros(3), np.ones(3))
    assert result.method == "closed-form-kkt"
    np.testing.assert_allclose(result.r, closed)
    assert result.details["slsqp_max_abs_diff"] < 1e-3
    np.testing.assert_allclose(grid_argmin(power_objective), closed, atol=1e-3)


def test_bounded_kkt_slsqp_and_grid_agree_when_a_bound_binds():
    lo, hi = np.array([0.05, 0.05, 0.25]), np.array([1.0, 0.3, 1.0])  # closed form: r1 ≈ 0.61, r2 ≈ 0.13
    result = optimize_power(ALPHA, K, lo, hi)
    assert result.method == "bounded-kkt"
    assert result.r[1] == pytest.approx(0.3) and result.r[2] == pytest.approx(0.25)
    assert result.details["binding"] == {"lower": [2], "upper": [1]}
    assert result.details["slsqp_max_abs_diff"] < 1e-3
    np.testing.assert_allclose(grid_argmin(power_objective, lo, hi), result.r, atol=1e-3)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.01, 1.5), st.floats(0.2, 10.0)), min_size=2, max_size=7),
)
def test_closed_form_satisfies_kkt(coefs):
    alpha, k = np.array(coefs).T
    r = power_closed_form(alpha, k)
    assert r.sum() == pytest.approx(1.0, abs=1e-12)
    grad = alpha * k * r ** (-alpha - 1)  # −∂/∂r_i of the objective: equal for all i at the optimum
    np.testing.assert_allclose(grad, grad[0], rtol=1e-7)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.02, 1.0), st.floats(0.5, 5.0), st.floats(0.0, 0.15), st.floats(0.2, 1.0)),
             min_size=2, max_size=6),
)  # fmt: skip
def test_bounded_kkt_matches_slsqp(rows):
    alpha, k, lo, hi = (np.array(c) for c in zip(*rows, strict=True))
    if lo.sum() > 1 or hi.sum() < 1:
        return
    r = power_bounded_kkt(alpha, k, lo, hi)
    assert np.all(r >= lo - 1e-12) and np.all(r <= hi + 1e-12) and r.sum() == pytest.approx(1.0)
    slsqp = minimize_on_simplex(
        lambda x: float(power_objective(x, alpha, k)),
        lambda x: -alpha * k * x ** (-alpha - 1),
        np.maximum(lo, 1e-9), hi, [np.full(len(rows), 1 / len(rows))],
    )  # fmt: skip
    assert power_objective(r, alpha, k) <= power_objective(slsqp, alpha, k) + 1e-9


def test_repetition_caps_bind_only_when_they_should():
    target = 1e9
    loose = simplex_bounds(3, 0.0, np.array([1e9, 1e9, 1e9]), target, 1.0)
    assert optimize_power(ALPHA, K, *loose).method == "closed-form-kkt"
    # domain 1 wants ≈ 0.61 of 1e9 tokens but holds 1e8 tokens: 2 epochs allow r1 ≤ 0.2
    lo, hi = simplex_bounds(3, 0.0, np.array([1e9, 1e8, 1e9]), target, 2.0)
    assert hi[1] == pytest.approx(0.2)
    result = optimize_power(ALPHA, K, lo, hi)
    assert result.r[1] == pytest.approx(0.2) and result.details["binding"]["upper"] == [1]
    assert result.r[1] * target <= 2.0 * 1e8 + 1e-3


def test_nonpositive_alpha_goes_to_lower_bound():
    alpha = np.array([0.1, -0.05, 0.2])
    r = optimize_power(alpha, K, np.full(3, 0.05), np.ones(3)).r
    assert r[1] == pytest.approx(0.05)
    assert r.sum() == pytest.approx(1.0)


def test_infeasible_bounds_are_bad_input():
    with pytest.raises(BadInput, match="sum to"):
        simplex_bounds(3, 0.4)
    with pytest.raises(BadInput, match="repetition caps allow only"):
        simplex_bounds(3, 0.0, np.array([1e8, 1e8, 1e8]), 1e9, 1.0)
    with pytest.raises(BadInput, match="exceeds its repetition cap"):
        simplex_bounds(2, 0.3, np.array([1e8, 1e10]), 1e9, 1.0, ["small", "big"])
    with pytest.raises(BadInput, match="`target_tokens`"):
        simplex_bounds(2, 0.0, np.array([1e8, 1e10]), None, 1.0)


def test_dml_optimum_matches_grid():
    c, k = np.array([1.5, 2.0, 1.0]), np.array([1.0, 0.8, 1.2])
    t = np.array([[-2.0, 0.3, 0.1], [0.2, -1.5, 0.4], [0.1, 0.2, -2.5]])
    per_step = {
        d: {"c": c[i], "k": k[i], "t": dict(zip("abc", t[i], strict=True))} for i, d in enumerate("abc")
    }
    law = law_from_dict({"law": "dml", "domains": list("abc"), "eval_domains": list("abc"),
                         "params": {"steps": [1.0], "per_step": [per_step]}})  # fmt: skip
    result = optimize_law(law, 1.0, np.zeros(3), np.ones(3))
    grid = grid_argmin(lambda r: (c + k * np.exp(r @ t.T)).sum(axis=1))
    np.testing.assert_allclose(result.r, grid, atol=1e-3)


def test_simulation_finds_a_quadratic_minimum_within_bounds():
    target = np.array([0.5, 0.3, 0.2])
    lo, hi = np.zeros(3), np.array([1.0, 1.0, 0.15])
    result = optimize_by_simulation(
        lambda r: ((r - target) ** 2).sum(axis=1), np.full(3, 1 / 3), lo, hi, n_samples=40_000, top_k=50
    )
    assert result.r[2] <= 0.15 + 1e-12
    np.testing.assert_allclose(result.r, [0.525, 0.325, 0.15], atol=0.03)


def test_optimize_law_on_a_fitted_bimix_recovers_the_true_optimum():
    alpha, B, beta, C = [0.08, 0.15, 0.05], [30.0, 50.0, 20.0], [0.45, 0.6, 0.35], [1.8, 2.2, 1.2]
    obs = synthetic_bimix(dirichlet_mixtures(12, 3, seed=1), np.linspace(500, 10_000, 20), alpha, B, beta, C)
    law = get_law("bimix").fit(obs)
    step = 50_000.0
    truth = power_closed_form(np.array(alpha), np.array(B) * step ** -np.array(beta) + np.array(C))
    result = optimize_law(law, step, np.zeros(3), np.ones(3))
    np.testing.assert_allclose(result.r, truth, atol=0.01)
    weighted = optimize_law(law, step, np.zeros(3), np.ones(3), domain_weights=np.array([1.0, 0.0, 1.0]))
    assert weighted.r[1] == pytest.approx(0.0)  # an unweighted domain gains nothing from a share
    for name in ("dml", "powerlaw", "regmix"):
        fixed = get_law(name, step=10_000.0).fit(obs)
        r = optimize_law(fixed, 10_000.0, np.full(3, 0.05), np.ones(3), n_samples=8_000, top_k=20).r
        assert r.sum() == pytest.approx(1.0) and np.all(r >= 0.05 - 1e-9)
        with pytest.raises(BadInput, match="fixed-step"):
            optimize_law(fixed, 20_000.0, np.zeros(3), np.ones(3))


# --- inactive domains take what capped active domains cannot (issue 12) ----------------------------------


def full_objective(r: np.ndarray, alpha: np.ndarray, k: np.ndarray) -> np.ndarray:
    return np.sum(k * np.maximum(r, 1e-300) ** (-alpha), axis=-1)


def test_domain_without_validation_loss_takes_the_remainder_of_capped_domains():
    """The issue's example: books has no validation loss (K = 0), web and code are capped at 0.2."""
    alpha, k = np.array([0.08, 0.15, 0.0]), np.array([2.0, 2.5, 0.0])
    result = optimize_power(alpha, k, np.zeros(3), np.array([0.2, 0.2, 1.0]))
    np.testing.assert_allclose(result.r, [0.2, 0.2, 0.6], atol=1e-12)
    assert result.details["inactive_filled"] == [2]
    assert result.objective == pytest.approx(result.details["slsqp_objective"], rel=1e-9)


def test_indifferent_domains_share_the_remainder_in_proportion_to_the_prior_within_caps():
    alpha, k = np.array([0.1, 0.0, -0.3, 0.2]), np.array([2.0, 3.0, 0.0, 0.0])  # 1: α = 0, 2-3: no loss
    prior = np.array([0.4, 0.1, 0.2, 0.3])
    r = power_bounded_kkt(alpha, k, np.zeros(4), np.array([0.4, 1.0, 1.0, 1.0]), prior)
    np.testing.assert_allclose(r, [0.4, 0.1, 0.2, 0.3], atol=1e-12)  # 0.6 split 1 : 2 : 3
    r = power_bounded_kkt(alpha, k, np.array([0, 0, 0, 0.05]), np.array([0.4, 1.0, 1.0, 0.25]), prior)
    np.testing.assert_allclose(r, [0.4, 0.35 / 3, 0.7 / 3, 0.25], atol=1e-12)  # the cap of 3 binds
    uniform = power_bounded_kkt(alpha, k, np.zeros(4), np.array([0.4, 1.0, 1.0, 1.0]))
    np.testing.assert_allclose(uniform, [0.4, 0.2, 0.2, 0.2], atol=1e-12)


@pytest.mark.parametrize(
    ("alpha", "k", "hi"),
    [
        ([0.1, -0.5, -1.5], [2.0, 1.0, 3.0], [0.2, 1.0, 1.0]),  # concave + convex rising terms
        ([0.1, -0.4, -0.7], [2.0, 1.0, 1.5], [0.3, 0.45, 1.0]),  # two concave ones: a vertex, a cap binds
        ([0.2, 0.0, -1.2], [1.0, 0.0, 2.0], [0.3, 0.25, 1.0]),  # the indifferent domain fills first
    ],
)
def test_rising_domains_take_the_rest_at_least_cost_like_a_brute_force_grid(alpha, k, hi):
    alpha, k, hi = np.array(alpha), np.array(k), np.array(hi)
    r = power_bounded_kkt(alpha, k, np.zeros(3), hi)
    assert r.sum() == pytest.approx(1.0) and np.all(r <= hi + 1e-12)
    grid = grid_argmin(lambda x: full_objective(x, alpha, k), hi=hi)
    assert full_objective(r, alpha, k) <= full_objective(grid, alpha, k) + 1e-9
    if k[1] == 0:
        assert r[1] == pytest.approx(0.25)  # a free domain is full before a costly one takes anything


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.just(0.0), st.floats(-1.5, -0.05), st.floats(0.02, 1.0)),  # α: 0, rising, falling
            st.one_of(st.just(0.0), st.floats(0.5, 5.0)),  # K = 0: no validation loss
            st.floats(0.0, 0.1),
            st.one_of(st.floats(0.1, 0.4), st.just(1.0)),  # caps that bind
        ),
        min_size=2, max_size=6,
    ),
    st.integers(0, 2**32 - 1),
)  # fmt: skip
def test_bounded_kkt_with_inactive_domains_and_binding_caps_beats_slsqp(rows, seed):
    alpha, k, lo, hi = (np.array(c) for c in zip(*rows, strict=True))
    active = (alpha > 0) & (k > 0)
    if lo.sum() > 1 or hi.sum() < 1 or not active.any():
        return
    r = power_bounded_kkt(alpha, k, lo, hi)
    assert np.all(r >= lo - 1e-12) and np.all(r <= hi + 1e-12) and r.sum() == pytest.approx(1.0)
    if np.any(
        r[~active] > lo[~active] + 1e-9
    ):  # an inactive domain above its floor: the active ones are full
        np.testing.assert_allclose(r[active], hi[active], atol=1e-9)
    rng = np.random.default_rng(seed)
    m = len(rows)
    slsqp = minimize_on_simplex(
        lambda x: float(full_objective(x, alpha, k)),
        lambda x: alpha * -k * np.maximum(x, 1e-12) ** (-alpha - 1),
        np.maximum(lo, 1e-9), hi, [np.full(m, 1 / m), *rng.dirichlet(np.ones(m), size=4)],
    )  # fmt: skip
    assert full_objective(r, alpha, k) <= full_objective(slsqp, alpha, k) + 1e-7
