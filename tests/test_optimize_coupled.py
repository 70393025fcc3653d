"""The optimiser for coupled (non-separable) laws: multi-start SLSQP with analytic or finite-difference
gradients, cross-checked against a brute-force simplex grid refined by a derivative-free compass search."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from mixlab.laws.base import Law
from mixlab.laws.dml import DataMixingLaw, dml_loss
from mixlab.laws.observations import Observations
from mixlab.laws.optimize import (
    numeric_jacobian,
    optimize_law,
    optimize_mixture,
    polytope_vertices,
    simplex_bounds,
)
from mixlab.laws.synthetic import dirichlet_mixtures

STEP = 1000.0


class KnownTransferLaw(Law):
    """L_i(r, s) = A_i·e_i(r)^{−α_i}·(B_i/s^{β_i} + C_i), e_i = Σ_j T_ij r_j (T_ii = 1): BiMix with an
    effective share that couples domains, with known coefficients and its analytic Jacobian."""

    name = "known-transfer"
    solver = "coupled"

    def __init__(self, T, alpha, B, beta, C) -> None:
        self.T, self.alpha, self.B, self.beta, self.C = (np.asarray(x, float) for x in (T, alpha, B, beta, C))
        self.domains_ = self.eval_domains_ = tuple(f"d{i}" for i in range(len(self.alpha)))
        self.fit_report_ = {}

    def _step_factor(self, s):
        return self.B / np.asarray(s, float)[..., None] ** self.beta + self.C

    def _predict(self, r, s):
        return (r @ self.T.T) ** (-self.alpha) * self._step_factor(s)

    def loss_gradient(self, r, step):
        e = self.T @ r
        return (-self.alpha * e ** (-self.alpha - 1.0) * self._step_factor(step))[:, None] * self.T


class CoupledDML(DataMixingLaw):
    """DML optimised by the generic coupled solver (no `loss_gradient`: finite differences)."""

    solver = "coupled"


def known_transfer(m: int) -> KnownTransferLaw:
    rng = np.random.default_rng(m)
    T = np.eye(m) + rng.uniform(0.0, 0.6, (m, m)) * (1 - np.eye(m))
    return KnownTransferLaw(
        T, rng.uniform(0.1, 0.6, m), rng.uniform(2, 6, m), rng.uniform(0.2, 0.5, m), rng.uniform(1.5, 3, m)
    )


def dml_observations(m: int, n_runs: int = 40) -> Observations:
    """Losses c + k·exp(r·t) with cross-domain t at one step, 0.2 % noise."""
    rng = np.random.default_rng(10 + m)
    r = dirichlet_mixtures(n_runs, m, seed=m)
    t = rng.normal(0.0, 1.0, (m, m)) - 1.5 * np.eye(m)
    c, k = rng.uniform(1.5, 2.5, m), rng.uniform(0.5, 1.5, m)
    losses = np.column_stack([dml_loss(r, c[i], k[i], t[i]) for i in range(m)])
    losses *= np.exp(rng.normal(0.0, 0.002, losses.shape))
    doms = tuple(f"d{i}" for i in range(m))
    runs = tuple(f"run{i}" for i in range(n_runs))
    return Observations(
        doms, doms, runs, r, np.arange(n_runs), np.full(n_runs, STEP), np.full(n_runs, np.nan), losses
    )


def simplex_grid(m: int, n: int) -> np.ndarray:
    """Every r with Σ r = 1 on the 1/n lattice."""
    rows = [c for c in itertools.product(range(n + 1), repeat=m - 1) if sum(c) <= n]
    a = np.array(rows, float) / n
    return np.column_stack([a, 1.0 - a.sum(axis=1)])


def grid_then_compass(objective, lo, hi, n: int) -> tuple[np.ndarray, float]:
    """Brute force: the best feasible lattice point, then compass search along every e_i − e_j (moves
    clipped to the bounds; step halved when none improves) down to steps of 1e-12."""
    m = lo.size
    grid = simplex_grid(m, n)
    grid = grid[np.all((grid >= lo - 1e-12) & (grid <= hi + 1e-12), axis=1)]
    values = objective(grid)
    x, fx = grid[np.argmin(values)].copy(), float(values.min())
    delta = 1.0 / n
    moves = [(i, j) for i in range(m) for j in range(m) if i != j]
    while delta > 1e-12:
        improved = False
        for i, j in moves:
            d = min(delta, hi[i] - x[i], x[j] - lo[j])
            if d <= 0:
                continue
            y = x.copy()
            y[i] += d
            y[j] -= d
            fy = float(objective(y[None, :])[0])
            if fy < fx:
                x, fx, improved = y, fy, True
        if not improved:
            delta /= 2
    return x, fx


CASES = {  # m, min_weight, (available, target_tokens, max_epochs) or None
    "3 domains, free": (3, 0.0, None),
    "3 domains, floors and a cap": (3, 0.1, ([1e9, 0.25e9, 5e9], 1e9, 1.0)),
    "4 domains, caps": (4, 0.02, ([0.5e9, 3e9, 0.3e9, 4e9], 1e9, 1.5)),
}


def _bounds(m, min_weight, caps):
    if caps is None:
        return simplex_bounds(m, min_weight)
    available, target, epochs = caps
    return simplex_bounds(m, min_weight, np.array(available), target, epochs)


@pytest.mark.parametrize("case", list(CASES))
def test_analytic_gradient_optimum_matches_brute_force(case):
    m, min_weight, caps = CASES[case]
    law = known_transfer(m)
    lo, hi = _bounds(m, min_weight, caps)
    w = np.linspace(1.0, 2.0, m)
    opt = optimize_law(law, STEP, lo, hi, w)
    assert opt.method == "slsqp-multistart" and opt.details["gradient"] == "analytic"
    assert opt.details["starts"] == 2 + m + 8  # prior, uniform, one vertex per domain, 8 Dirichlet draws
    _, best = grid_then_compass(lambda r: law.predict(r, STEP) @ w, lo, hi, n=120 if m == 3 else 40)
    assert opt.objective <= best * (1 + 1e-6)
    assert abs(opt.r.sum() - 1) < 1e-12 and np.all(opt.r >= lo - 1e-12) and np.all(opt.r <= hi + 1e-12)
    np.testing.assert_allclose(opt.objective, float(law.predict(opt.r[None, :], STEP)[0] @ w), rtol=1e-12)


@pytest.mark.parametrize("m", [3, 4])
def test_finite_difference_gradient_on_fitted_dml_matches_brute_force_and_dml_solver(m):
    obs = dml_observations(m)
    law = CoupledDML().fit(obs)
    lo, hi = _bounds(m, 0.05, None)
    opt = optimize_law(law, STEP, lo, hi)
    assert opt.details["gradient"] == "finite-difference"
    _, best = grid_then_compass(lambda r: law.predict(r, STEP).sum(axis=1), lo, hi, n=120 if m == 3 else 40)
    assert opt.objective <= best * (1 + 1e-6)
    # the same coefficients under DML's own solver (analytic gradient of c + k·exp(t·r))
    dml = DataMixingLaw().fit(obs)
    np.testing.assert_allclose(opt.r, optimize_law(dml, STEP, lo, hi).r, atol=1e-5)


def test_numeric_jacobian_agrees_with_the_analytic_one_and_stays_on_non_negative_shares():
    law = known_transfer(4)
    for r in (np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 0.5, 0.5, 0.0])):
        seen = []

        def predict(x, seen=seen):
            seen.append(x.min())
            return law.predict(x, STEP)

        np.testing.assert_allclose(numeric_jacobian(predict, r), law.loss_gradient(r, STEP), rtol=1e-5)
        assert min(seen) >= 0.0


def test_polytope_vertices_are_feasible_vertices():
    lo, hi = simplex_bounds(4, 0.05, np.array([0.3e9, 1e9, 0.2e9, 5e9]), 1e9, 1.0)
    for j, v in enumerate(polytope_vertices(lo, hi)):
        assert abs(v.sum() - 1) < 1e-12 and np.all(v >= lo - 1e-15) and np.all(v <= hi + 1e-15)
        assert v[j] == pytest.approx(min(hi[j], 1 - (lo.sum() - lo[j])))
        assert int(np.sum(~(np.isclose(v, lo) | np.isclose(v, hi)))) <= 1


def test_optimize_mixture_records_the_coupled_method_and_keeps_caps():
    law = known_transfer(3)
    mixture = optimize_mixture(
        law, STEP, min_weight=0.1, available={"d0": 1e9, "d1": 0.25e9, "d2": 5e9}, target_tokens=1e9
    )
    assert mixture.meta["method"] == "slsqp-multistart"
    assert mixture.weights["d1"] <= 0.25 + 1e-12 and min(mixture.weights.values()) >= 0.1 - 1e-12
    assert mixture.meta["objective"] <= mixture.meta["references"]["natural"]["objective"]


# --- target metrics (issue 14.2): laws whose outputs are columns that are not mixture domains ---------


def target_observations(n_runs: int = 40) -> tuple[Observations, list]:
    """Two task metrics of 3-domain mixtures, each c + k·exp(r·t) of the whole mixture (0.2 % noise)."""
    rng = np.random.default_rng(7)
    r = dirichlet_mixtures(n_runs, 3, seed=7)
    coef = [(0.8, 0.6, np.array([-2.0, 0.5, 1.0])), (0.5, 0.9, np.array([1.5, -1.0, -0.2]))]
    y = np.column_stack([dml_loss(r, c, k, t) for c, k, t in coef]) * np.exp(
        rng.normal(0, 0.002, (n_runs, 2))
    )
    doms = ("web", "code", "math")
    obs = Observations(
        doms, ("arc_bpb", "gsm_bpb"), tuple(f"run{i}" for i in range(n_runs)), r, np.arange(n_runs),
        np.full(n_runs, STEP), np.full(n_runs, np.nan), y,
    )  # fmt: skip
    return obs, coef


def test_weighted_targets_optimum_matches_brute_force_of_the_weighted_sum():
    obs, _ = target_observations()
    law = DataMixingLaw().fit(obs)
    mixture = optimize_mixture(law, STEP, min_weight=0.05, domain_weights={"arc_bpb": 3.0})
    assert mixture.meta["targets"] == ["arc_bpb", "gsm_bpb"]
    assert mixture.meta["target_weights"] == {"arc_bpb": 3.0, "gsm_bpb": 1.0}
    w = np.array([3.0, 1.0])
    lo, hi = simplex_bounds(3, 0.05)
    _, best = grid_then_compass(lambda r: law.predict(r, STEP) @ w, lo, hi, n=120)
    assert mixture.meta["objective"] <= best * (1 + 1e-6)
    # the weights move the optimum: arc alone vs gsm alone
    only_arc = optimize_mixture(law, STEP, min_weight=0.05, domain_weights={"gsm_bpb": 0.0}).weights
    only_gsm = optimize_mixture(law, STEP, min_weight=0.05, domain_weights={"arc_bpb": 0.0}).weights
    assert only_arc["web"] > 0.5 and only_gsm["web"] == pytest.approx(0.05, abs=1e-6)


@pytest.mark.parametrize("name", ["bimix", "powerlaw"])
def test_own_share_laws_refuse_targets_naming_the_law(name):
    from mixlab.errors import BadInput
    from mixlab.laws import get_law

    obs, _ = target_observations()
    with pytest.raises(BadInput, match="'arc_bpb' is a target") as info:
        get_law(name).fit(obs)
    assert "law" in info.value.params and "\n" not in str(info.value)


def test_optimize_verb_weighs_targets_and_refuses_the_wrong_weights_flag(tmp_path):
    import json
    import subprocess
    import sys

    from mixlab.files import write_json
    from mixlab.mixture import read_mixture_json

    obs, _ = target_observations()
    write_json(tmp_path / "law.json", DataMixingLaw().fit(obs).to_dict())
    (tmp_path / "tw.json").write_text(json.dumps({"arc_bpb": 3.0}))
    env_src = str(Path(__file__).resolve().parents[1] / "src")

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "mixlab.cli", "optimize", str(tmp_path / "law.json"), "--steps",
             "1000", "--min-weight", "0.05", *args], capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": env_src},
        )  # fmt: skip

    ok = cli("--target-weights", str(tmp_path / "tw.json"), "--out", str(tmp_path / "opt.json"))
    assert ok.returncode == 0, ok.stderr
    assert "arc_bpb (target, w=3)" in ok.stdout
    expected = optimize_mixture(
        DataMixingLaw().fit(obs), STEP, min_weight=0.05, domain_weights={"arc_bpb": 3.0}
    )
    assert read_mixture_json(tmp_path / "opt.json").weights == pytest.approx(expected.weights, abs=1e-9)
    bad = cli("--domain-weights", str(tmp_path / "tw.json"), "--out", str(tmp_path / "bad.json"))
    assert (
        bad.returncode == 2 and "--target-weights" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    )
    assert not (tmp_path / "bad.json").exists()
