"""Transfer-BiMix (laws/transfer.py): the math against BiMix and finite differences, recovery of known
transfer coefficients, the JSON round trip, and RegMix's 1M sweep at k = 32 and k = 512 train runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from mixlab.errors import BadInput
from mixlab.laws import Observations, get_law, law_from_dict
from mixlab.laws.bimix import bimix_loss
from mixlab.laws.evaluate import evaluate_law
from mixlab.laws.synthetic import dirichlet_mixtures
from mixlab.laws.transfer import N_HEAD, transfer_log_loss, transfer_loss
from test_laws_real import sweep  # noqa: F401  (the RegMix 1M fixture)

DOMAINS = ("web", "code", "math", "books")
TRUE = {
    "alpha": np.array([0.10, 0.20, 0.15, 0.08]),
    "eps": np.array([0.02, 0.01, 0.03, 0.02]),
    "gamma": np.array([0.6, 0.8, 0.7, 0.5]),
    "delta": np.array([1.0, 0.8, 1.1, 0.9]),
    "B": np.array([30.0, 50.0, 40.0, 20.0]),
    "beta": np.array([0.5, 0.6, 0.4, 0.45]),
    "C": np.array([2.0, 1.5, 2.5, 1.8]),
    # T[i, j]: transfer from domain j to eval domain i (diagonal = the own share's 1)
    "T": np.array([[1, 0.0, 0.0, 0.5], [0.0, 1, 0.6, 0.0], [0.0, 0.8, 1, 0.0], [0.4, 0.0, 0.0, 1]]),
    "u": np.array(
        [[0.2, -0.1, 0.0, -0.1], [0.0, 0.1, -0.2, 0.1], [-0.1, 0.0, 0.1, 0.0], [0.1, 0.0, -0.1, 0.0]]
    ),
}


def synthetic_transfer(props: np.ndarray, steps: np.ndarray, noise: float, seed: int = 0) -> Observations:
    point_run = np.repeat(np.arange(len(props)), steps.size)
    point_steps = np.tile(steps, len(props))
    clean = transfer_loss(props[point_run], point_steps, np.arange(len(DOMAINS)), TRUE)
    losses = clean * np.exp(np.random.default_rng(seed).normal(0.0, noise, clean.shape))
    runs = tuple(f"run{k}" for k in range(len(props)))
    return Observations(DOMAINS, DOMAINS, runs, props, point_run, point_steps, point_steps * np.nan, losses)


def test_reduces_to_bimix_when_transfer_off():
    r = dirichlet_mixtures(20, 4, seed=3)
    s = np.linspace(100, 5000, 20)
    own_only = np.where(np.eye(4) == 1, 7.0, 0.0)  # the own-column entry of T is ignored
    coef = {**TRUE, "eps": np.zeros(4), "delta": np.ones(4), "T": own_only, "u": np.zeros((4, 4))}
    expected = bimix_loss(r, s[:, None], TRUE["alpha"], TRUE["B"], TRUE["beta"], TRUE["C"])
    np.testing.assert_allclose(transfer_loss(r, s, np.arange(4), coef), expected, rtol=1e-12)


def test_jacobian_matches_finite_differences():
    r = dirichlet_mixtures(30, 4, seed=1)
    r[:5, 2] = 0.0  # shares of 0: r^γ·log r has limit 0 there
    r /= r.sum(1, keepdims=True)
    log_s = np.log(np.linspace(0.1, 1.0, 30))
    m, own = 4, 2
    theta = np.r_[
        0.3, 0.02, 0.7, 0.9, [0.4, 0.1, 0.2], [0.1, -0.2, 0.3, 0.0], np.log(2.0), 0.5, np.log(1.5), 0.4
    ]
    assert theta.size == N_HEAD + 2 * m + 3
    anneal = np.linspace(0.0, 0.9, 30)  # the schedule-aware step term's 1 − η(s)
    _, jac = transfer_log_loss(theta, r, log_s, own, anneal)
    h = 1e-6
    fd = np.column_stack(
        [
            (
                transfer_log_loss(theta + h * e, r, log_s, own, anneal)[0]
                - transfer_log_loss(theta - h * e, r, log_s, own, anneal)[0]
            )
            / (2 * h)
            for e in np.eye(theta.size)
        ]
    )
    np.testing.assert_allclose(jac, fd, atol=1e-7)


def test_recovers_known_transfer_coefficients():
    props = dirichlet_mixtures(60, 4, seed=5, concentration=1.0, floor=0.0)
    props[np.arange(16), np.arange(16) % 4] = 0.0  # ε is identified by runs without the own domain
    props /= props.sum(1, keepdims=True)
    steps = np.array([1000.0, 2000.0, 4000.0, 8000.0, 16000.0])
    obs = synthetic_transfer(props, steps, noise=0.001)
    with threadpool_limits(1):
        law = get_law("transfer", lam=1e-8).fit(obs)
    np.testing.assert_allclose(law.T_, TRUE["T"], atol=0.05)
    zeros = TRUE["T"] == 0
    assert law.T_[zeros].max() < 0.03  # no transfer where there is none
    for k, tol in (("alpha", 0.01), ("gamma", 0.05), ("delta", 0.05), ("beta", 0.02), ("eps", 0.01)):
        np.testing.assert_allclose(getattr(law, f"{k}_"), TRUE[k], atol=tol, err_msg=k)
    # u is identified only up to a constant per domain (Σ r = 1, absorbed by B and C): compare centred
    np.testing.assert_allclose(
        law.u_ - law.u_.mean(1, keepdims=True), TRUE["u"] - TRUE["u"].mean(1, keepdims=True), atol=0.1
    )
    # extrapolates in steps and to unseen mixtures, shares of 0 included (defined: ε > 0)
    new = dirichlet_mixtures(30, 4, seed=9, concentration=1.0)
    new[:5] = [[0.0, 0.5, 0.5, 0.0], [1.0, 0, 0, 0], [0.0, 1.0, 0, 0], [0.5, 0.0, 0.0, 0.5], [0, 0, 0.3, 0.7]]
    truth = transfer_loss(new, np.full(30, 32000.0), np.arange(4), TRUE)
    pred = law.predict(new, 32000.0)
    assert np.isfinite(pred).all() and (pred > 0).all()
    err = np.abs(pred / truth - 1)
    assert err[5:].max() < 0.005  # inside the fitted runs' hull
    assert err[:5].max() < 0.05  # corners and edges of the simplex: outside it, ε alone carries r_i = 0


def test_ridge_and_cv_toward_independence():
    props = dirichlet_mixtures(16, 4, seed=7, concentration=1.0)
    obs = synthetic_transfer(props, np.array([1000.0, 4000.0, 16000.0]), noise=0.002)
    with threadpool_limits(1):
        strong = get_law("transfer", lam=100.0, max_nfev=50).fit(obs)
        auto = get_law("transfer").fit(obs)
        cv = get_law("transfer", lam="cv", folds=2, max_nfev=20).fit(obs)
    off = ~np.eye(4, dtype=bool)
    assert strong.T_[off].max() < 1e-2 and np.abs(strong.u_).max() < 1e-2
    assert auto.lam_ == pytest.approx(0.01 / 16)
    assert set(cv.fit_report_["lam_cv_sq_log_error"]) == {"0.01", "0.03", "0.1", "0.32"}
    assert cv.lam_ * 16 in (0.01, 0.03, 0.1, 0.32)


def test_json_round_trip_and_bad_hyper_parameters():
    props = dirichlet_mixtures(12, 4, seed=2)
    obs = synthetic_transfer(props, np.array([1000.0, 3000.0, 9000.0]), noise=0.002)
    with threadpool_limits(1):
        law = get_law("transfer", max_nfev=60).fit(obs)
    d = json.loads(json.dumps(law.to_dict(), allow_nan=False))
    back = law_from_dict(d)
    assert back.get_params() == law.get_params() and back.coefficients() == law.coefficients()
    mixes = dirichlet_mixtures(5, 4, seed=4)
    np.testing.assert_array_equal(back.predict(mixes, 20000.0), law.predict(mixes, 20000.0))
    for hyper, name in (
        ({"lam": -1.0}, "`lam`"),
        ({"lam": float("nan")}, "`lam`"),
        ({"lam": "often"}, "`lam`"),
        ({"lam0": 0.0}, "`lam0`"),
        ({"lam0": float("inf")}, "`lam0`"),
        ({"folds": 1}, "`folds`"),
        ({"max_nfev": 0}, "`max_nfev`"),
    ):
        with pytest.raises(BadInput, match=name):
            get_law("transfer", **hyper)


@pytest.mark.parametrize(("k", "floor"), [(32, 0.97), (512, 0.99)])
def test_regmix_1m_spearman_at_k_train_runs(sweep, k, floor):  # noqa: F811
    """Fit on k of the 512 train runs (one subset, seed 0), mean Spearman over 13 domains on the 256 test runs."""
    obs, test = sweep
    train = [r for r in obs.runs if r.startswith("train")]
    picked = np.random.default_rng(0).choice(len(train), k, replace=False) if k < len(train) else range(k)
    metrics = evaluate_law(
        lambda: get_law("transfer"), obs, "unseen", test_runs=test, train_runs=[train[i] for i in picked]
    ).metrics
    assert sum(v["n_undefined"] for v in metrics["domains"].values()) == 0  # defined at shares of 0
    assert metrics["summary"]["spearman_final"]["mean"] >= floor


def test_optimum_of_a_fitted_transfer_law_matches_brute_force():
    """The coupled solver (multi-start SLSQP, finite-difference Jacobian) on the fitted law, under a floor and
    a binding repetition cap, against the best point of a 1/120 simplex lattice refined by compass search."""
    from mixlab.laws.optimize import optimize_law, simplex_bounds
    from test_optimize_coupled import grid_then_compass

    props = dirichlet_mixtures(24, 3, seed=2, concentration=1.0)
    steps = np.array([1000.0, 4000.0, 16000.0])
    point_run = np.repeat(np.arange(24), 3)
    coef = {k: (v[:3, :3] if np.ndim(v) == 2 else v[:3]) for k, v in TRUE.items()}
    clean = transfer_loss(props[point_run], np.tile(steps, 24), np.arange(3), coef)
    doms = DOMAINS[:3]
    obs = Observations(
        doms, doms, tuple(f"run{k}" for k in range(24)), props, point_run, np.tile(steps, 24),
        np.full(72, np.nan), clean,
    )  # fmt: skip
    with threadpool_limits(1):
        law = get_law("transfer").fit(obs)
    lo, hi = simplex_bounds(3, 0.05, np.array([1e9, 0.2e9, 5e9]), 1e9, 1.0)  # code capped at 0.2
    opt = optimize_law(law, 16000.0, lo, hi, np.ones(3))
    assert opt.method == "slsqp-multistart"
    _, best = grid_then_compass(lambda r: law.predict(r, 16000.0).sum(axis=1), lo, hi, n=120)
    assert opt.objective <= best * (1 + 1e-6)
    assert np.all(opt.r >= lo - 1e-12) and np.all(opt.r <= hi + 1e-12) and abs(opt.r.sum() - 1) < 1e-12
