"""Mixing laws: recovery of known BiMix coefficients, the other laws, JSON round trips, evaluation metrics."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pandas as pd
import pytest

from mixlab.errors import BadInput, NotFittedError
from mixlab.laws import LAWS, Observations, get_law, law_from_dict
from mixlab.laws.bimix import BiMixLaw, bimix_loss
from mixlab.laws.bootstrap import bootstrap_laws, coefficient_intervals
from mixlab.laws.dml import dml_loss
from mixlab.laws.evaluate import compute_metrics, evaluate_law, spearman
from mixlab.laws.metrics import r2_log
from mixlab.laws.synthetic import dirichlet_mixtures, synthetic_bimix

TRUE = {"alpha": [0.08, 0.15, 0.05], "B": [30.0, 50.0, 20.0], "beta": [0.45, 0.6, 0.35], "C": [1.8, 2.2, 1.2]}
STEPS = np.linspace(500, 10_000, 20)


@pytest.fixture(scope="module")
def obs() -> Observations:
    return synthetic_bimix(dirichlet_mixtures(12, 3, seed=1), STEPS, **TRUE, noise=0.002, seed=0)


def test_bimix_loss_hand_computed():
    # r = 0.25, s = 100: 0.25^-0.5 · (10 · 100^-0.5 + 2) = 2 · 3 = 6
    assert bimix_loss(0.25, 100.0, 0.5, 10.0, 0.5, 2.0) == pytest.approx(6.0)


def test_bimix_recovers_alpha_beta_within_001(obs):
    law = BiMixLaw().fit(obs)
    np.testing.assert_allclose(law.alpha_, TRUE["alpha"], atol=0.01)
    np.testing.assert_allclose(law.beta_, TRUE["beta"], atol=0.01)
    np.testing.assert_allclose(law.C_, TRUE["C"], rtol=0.02)
    for rep in law.fit_report_["domains"].values():
        assert rep["mean_rel_error_pct"] < 0.3  # the residuals are the 0.2 % noise
        assert rep["excluded_zero_share"] == 0


@pytest.mark.parametrize("residual", ["relative", "absolute"])
def test_bimix_other_residual_spaces_also_recover(obs, residual):
    law = BiMixLaw(residual=residual).fit(obs)
    np.testing.assert_allclose(law.alpha_, TRUE["alpha"], atol=0.01)
    np.testing.assert_allclose(law.beta_, TRUE["beta"], atol=0.01)


def test_bimix_unseen_mixtures_r2_above_099(obs):
    result = evaluate_law(lambda: get_law("bimix"), obs, "unseen", test_runs=["run0", "run1", "run2", "run3"])
    summary = result.metrics["summary"]
    assert summary["r2_log"]["worst"] >= 0.99
    assert summary["rel_error_pct"]["worst"] < 0.5
    assert set(result.metrics["domains"]) == set(obs.eval_domains)
    assert result.metrics["domains"]["d0"]["n_points"] == 4 * len(STEPS)


def test_bimix_excludes_and_counts_zero_shares():
    props = np.vstack([dirichlet_mixtures(8, 3, seed=2), [[0.6, 0.0, 0.4]]])
    data = synthetic_bimix(props, STEPS, **TRUE, noise=0.002, seed=3)
    data.losses[data.point_run == 8, 1] = 9.0  # the r = 0 run's loss of domain d1 must not matter
    law = BiMixLaw().fit(data)
    assert law.fit_report_["domains"]["d1"]["excluded_zero_share"] == len(STEPS)
    assert law.fit_report_["domains"]["d0"]["excluded_zero_share"] == 0
    np.testing.assert_allclose(law.alpha_, TRUE["alpha"], atol=0.01)


def test_bimix_single_mixture_fixes_alpha_and_extrapolates(obs):
    one = obs.select_runs(["run5"])
    law = BiMixLaw().fit(one.select_points(one.steps < STEPS[-1]))
    assert not law.fit_report_["domains"]["d0"]["alpha_identified"]
    pred = law.predict(one.proportions, STEPS[-1])[0]
    truth = bimix_loss(
        one.proportions[0], STEPS[-1], *(np.array(TRUE[k]) for k in ("alpha", "B", "beta", "C"))
    )
    np.testing.assert_allclose(pred, truth, rtol=0.01)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_every_law_round_trips_through_json(obs, name):
    few = obs.select_points(np.isin(obs.steps, STEPS[-3:]))
    law = get_law(name).fit(few)
    again = law_from_dict(json.loads(json.dumps(law.to_dict())))
    r = dirichlet_mixtures(5, 3, seed=9)
    np.testing.assert_array_equal(law.predict(r, STEPS[-1]), again.predict(r, STEPS[-1]))
    assert again.params == law.params
    assert again.get_params() == law.get_params()


@pytest.mark.parametrize("name", sorted(LAWS))
def test_laws_follow_the_estimator_conventions(obs, name):
    law = get_law(name)
    assert list(law.get_params()) == [p for p in inspect.signature(LAWS[name]).parameters]
    with pytest.raises(NotFittedError, match="not fitted"):
        law.predict(dirichlet_mixtures(2, 3, seed=1), STEPS[-1])
    assert not any(k.endswith("_") for k in vars(law))  # no learned state before fit
    law.fit(obs.select_points(np.isin(obs.steps, STEPS[-3:])))
    assert law.domains_ == obs.domains and law.eval_domains_ == obs.eval_domains and law.fit_report_
    assert law.to_dict()["hyper"] == law.get_params()


def test_law_hyper_parameters_are_checked_in_fit(obs):
    law = BiMixLaw(residual="cubic")  # stored as given, like scikit-learn's estimators
    assert law.get_params() == {"residual": "cubic", "step_term": "plain"}
    with pytest.raises(BadInput, match="residual must be one of"):
        law.fit(obs)
    assert (
        get_law("regmix").get_params()["min_runs"] == 4
    )  # the default is in the signature: law.json shows it


@pytest.mark.parametrize("name", ["dml", "regmix", "powerlaw"])
def test_fixed_step_laws_refuse_unfitted_steps(obs, name):
    law = get_law(name, step=float(STEPS[-1])).fit(obs)
    assert list(law.fitted_steps) == [STEPS[-1]]
    with pytest.raises(BadInput, match="fixed-step law fitted at steps"):
        law.predict(obs.proportions[:2], 12_345.0)
    with pytest.raises(BadInput, match="not an evaluation step"):
        get_law(name, step=777.0).fit(obs)


def test_powerlaw_recovers_exact_power_law():
    r = dirichlet_mixtures(10, 3, seed=4)
    F, alpha = np.array([2.0, 3.0, 1.5]), np.array([0.1, 0.3, 0.05])
    y = F * r ** (-alpha)
    data = Observations(("a", "b", "c"), ("a", "b", "c"), tuple(f"r{i}" for i in range(10)), r,
                        np.arange(10), np.full(10, 100.0), np.full(10, np.nan), y)  # fmt: skip
    law = get_law("powerlaw").fit(data)
    a, f = law.separable_power(100.0)
    np.testing.assert_allclose(a, alpha, rtol=1e-10)
    np.testing.assert_allclose(f, F, rtol=1e-10)


def test_dml_fits_its_own_law_on_unseen_mixtures():
    rng = np.random.default_rng(5)
    r = dirichlet_mixtures(24, 3, seed=6)
    c, k = np.array([1.5, 2.0, 1.0]), np.array([1.0, 0.8, 1.2])
    t = np.array([[-2.0, 0.3, 0.1], [0.2, -1.5, 0.4], [0.1, 0.2, -2.5]])
    y = np.column_stack([dml_loss(r, c[i], k[i], t[i]) for i in range(3)]) * np.exp(
        rng.normal(0, 0.002, (24, 3))
    )
    data = Observations(("a", "b", "c"), ("a", "b", "c"), tuple(f"r{i}" for i in range(24)), r,
                        np.arange(24), np.full(24, 1000.0), np.full(24, np.nan), y)  # fmt: skip
    result = evaluate_law(lambda: get_law("dml"), data, "kfold", folds=4)
    assert result.metrics["summary"]["rel_error_pct"]["worst"] < 0.5


def test_regmix_is_deterministic_under_its_seed(obs):
    final = obs.select_points(obs.steps == STEPS[-1])
    a = get_law("regmix", seed=3).fit(final).predict(obs.proportions, STEPS[-1])
    b = get_law("regmix", seed=3).fit(final).predict(obs.proportions, STEPS[-1])
    np.testing.assert_array_equal(a, b)
    assert np.abs(a / final.losses - 1).mean() < 0.02  # it does learn the training mixtures


def test_extrapolate_protocol(obs):
    result = evaluate_law(lambda: get_law("bimix"), obs, "extrapolate", holdout_last=2)
    m = result.metrics
    assert m["applicable"] and m["skipped_runs"] == []
    assert m["domains"]["d0"]["n_points"] == 2 * len(obs.runs)
    assert m["summary"]["rel_error_pct"]["worst"] < 1.0
    assert set(result.predictions["step"]) == set(STEPS[-2:])


@pytest.mark.parametrize("name", ["dml", "regmix", "powerlaw"])
def test_fixed_step_laws_are_not_applicable_to_extrapolation(obs, name):
    m = evaluate_law(lambda: get_law(name), obs, "extrapolate").metrics
    assert m["applicable"] is False and m["summary"] is None and "cannot extrapolate" in m["reason"]


def test_unseen_protocol_errors(obs):
    make = lambda: get_law("bimix")  # noqa: E731
    with pytest.raises(BadInput, match="needs `test_runs`"):
        evaluate_law(make, obs, "unseen")
    with pytest.raises(BadInput, match="both"):
        evaluate_law(make, obs, "unseen", test_runs=["run0"], train_runs=["run0", "run1"])
    with pytest.raises(BadInput, match="not in the observations"):
        evaluate_law(make, obs, "unseen", test_runs=["nope"])
    with pytest.raises(BadInput, match="`folds`"):
        evaluate_law(make, obs, "kfold", folds=50)


def test_metrics_hand_computed():
    frame = pd.DataFrame(
        [("a", 1, "x", 0.5, 2.0, 2.2, 0), ("a", 2, "x", 0.5, 1.0, 1.0, 0),
         ("b", 1, "x", 0.3, 4.0, 4.0, 0), ("b", 2, "x", 0.3, 2.0, 1.0, 0),
         ("c", 2, "x", 0.2, 3.0, 2.5, 0)],
        columns=["run", "step", "domain", "share", "observed", "predicted", "fold"],
    )  # fmt: skip
    domains, summary = compute_metrics(frame, ["x"])
    d = domains["x"]
    assert d["rel_error_pct"] == pytest.approx((10 + 0 + 0 + 50 + 100 / 6) / 5)
    assert d["rmse"] == pytest.approx(np.sqrt((0.04 + 0 + 0 + 1 + 0.25) / 5))
    r2_a = 1 - np.log(1.1) ** 2 / (2 * (np.log(2) / 2) ** 2)
    r2_b = 1 - np.log(2) ** 2 / (2 * (np.log(2) / 2) ** 2)
    assert d["r2_log"] == pytest.approx((r2_a + r2_b) / 2)  # run c has one point: no R²
    # finals: observed (1, 2, 3) vs predicted (1, 1, 2.5): ranks (1,2,3) vs (1.5,1.5,3)
    assert d["spearman_final"] == pytest.approx(np.corrcoef([1, 2, 3], [1.5, 1.5, 3])[0, 1])
    assert summary["rel_error_pct"] == {
        "mean": d["rel_error_pct"],
        "worst": d["rel_error_pct"],
        "best": d["rel_error_pct"],
    }


def test_summary_worst_means_largest_error_smallest_r2():
    frame = pd.DataFrame(
        [(run, s, dom, 0.5, y, y * f, 0) for dom, f in (("x", 1.01), ("y", 1.05)) for run in "abc"
         for s, y in ((1, 3.0), (2, 2.0 + (run == "b")))],
        columns=["run", "step", "domain", "share", "observed", "predicted", "fold"],
    )  # fmt: skip
    domains, summary = compute_metrics(frame, ["x", "y"])
    assert summary["rel_error_pct"]["worst"] == pytest.approx(5.0)
    assert summary["rel_error_pct"]["best"] == pytest.approx(1.0)
    assert summary["r2_log"]["worst"] == min(v["r2_log"] for v in domains.values())


def test_r2_and_spearman_helpers():
    assert r2_log(np.array([2.0, 3.0]), np.array([2.0, 3.0])) == 1.0
    assert r2_log(np.array([2.0]), np.array([2.0])) is None
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)


def test_bootstrap_intervals_cover_the_truth(obs):
    laws, failed = bootstrap_laws(lambda: get_law("bimix"), obs, 12, seed=1)
    assert failed == 0 and len(laws) == 12
    ci = coefficient_intervals(laws)
    for i, d in enumerate(obs.eval_domains):
        a = ci[f"alpha[{d}]"]
        assert a["lo"] <= a["mean"] <= a["hi"]
        assert abs(a["mean"] - TRUE["alpha"][i]) < 0.01 and a["hi"] - a["lo"] < 0.02


def test_unknown_law_and_bad_hyper():
    with pytest.raises(BadInput, match="unknown law"):
        get_law("nope")
    with pytest.raises(BadInput, match="residual"):
        get_law("bimix", residual="cubic")
    for name in LAWS:
        with pytest.raises(BadInput, match="bad hyper-parameter"):
            get_law(name, colour="red")
    with pytest.raises(BadInput, match="not a mixlab law"):
        law_from_dict({"law": "nope"})


def test_one_mixture_many_steps_gives_its_curve(obs):
    law = BiMixLaw().fit(obs)
    curve = law.predict(obs.proportions[:1], STEPS)
    assert curve.shape == (len(STEPS), 3) and np.all(np.diff(curve, axis=0) < 0)
    with pytest.raises(BadInput, match="2 mixtures but 3 steps"):
        law.predict(obs.proportions[:2], STEPS[:3])


def test_zero_share_test_run_is_counted_not_scored():
    props = np.vstack([dirichlet_mixtures(6, 3, seed=2), [[0.6, 0.0, 0.4]]])
    data = synthetic_bimix(props, STEPS[:6], **TRUE, noise=0.002, seed=3)
    data.losses[data.point_run == 6, 1] = 9.0  # a measured loss on a domain the run never trained on
    result = evaluate_law(lambda: get_law("bimix"), data, "unseen", test_runs=["run6", "run0"])
    d1 = result.metrics["domains"]["d1"]
    assert d1["n_undefined"] == 6 and d1["n_points"] == 6  # run6 has no d1: BiMix predicts an infinite loss
    json.dumps(result.metrics, allow_nan=False)


# --- swarms as real ones are: pure-domain runs and runs with a share of 0 of some domain ---------------------

SWARM_STEPS = STEPS[::4]  # 5 evaluation steps


@pytest.fixture(scope="module")
def swarm() -> Observations:
    """8 Dirichlet runs, the 3 pure-domain runs and 2 runs without one domain; a run that never trained on a
    domain still has a measured loss there (1.5x the domain's worst loss), as in real sweeps."""
    props = np.vstack([dirichlet_mixtures(8, 3, seed=4), np.eye(3), [[0.5, 0.5, 0.0], [0.3, 0.0, 0.7]]])
    data = synthetic_bimix(props, SWARM_STEPS, **TRUE, noise=0.002, seed=5)
    zero = props[data.point_run] == 0
    worst = np.nanmax(np.where(zero, np.nan, data.losses), axis=0)
    data.losses[zero] = np.broadcast_to(1.5 * worst, zero.shape)[zero]
    return data


def _zero_pairs(data: Observations, runs: list[str]) -> list[int]:
    """Hand count: per eval domain, the runs among `runs` with a share of 0 of it."""
    rows = [data.runs.index(r) for r in runs]
    return [int((data.proportions[rows, j] == 0).sum()) for j in range(3)]


def test_extrapolate_leaves_out_and_counts_a_runs_zero_share_domains(swarm):
    m = evaluate_law(lambda: get_law("bimix"), swarm, "extrapolate", holdout_last=1).metrics
    zero = _zero_pairs(swarm, list(swarm.runs))  # [3, 3, 3]: the two pure runs without it + one partial run
    assert [m["domains"][d]["n_undefined"] for d in swarm.eval_domains] == zero  # one held-out step per run
    assert [m["domains"][d]["n_points"] for d in swarm.eval_domains] == [13 - z for z in zero]
    assert m["domains_left_out"] == dict(zip(swarm.eval_domains, zero, strict=True))
    assert m["summary"]["rel_error_pct"]["worst"] < 1.0  # the rest extrapolates as on a clean sweep
    json.dumps(m, allow_nan=False)


@pytest.mark.parametrize("name", ["bimix", "powerlaw", "dml", "regmix"])
@pytest.mark.parametrize("protocol", ["extrapolate", "unseen", "kfold"])
def test_every_law_and_protocol_on_a_swarm_with_pure_and_zero_share_runs(swarm, name, protocol):
    test = ["run0", "run1", "run8", "run11", "run12"]  # two Dirichlet runs, one pure run, both partial runs
    kw = {"unseen": {"test_runs": test}, "kfold": {"folds": 4}, "extrapolate": {"holdout_last": 2}}[protocol]
    make = (lambda: get_law(name, restarts=1)) if name == "dml" else (lambda: get_law(name))
    result = evaluate_law(make, swarm, protocol, **kw)
    m = result.metrics
    json.dumps(m, allow_nan=False)
    law = make()
    if protocol == "extrapolate" and law.fixed_step:
        assert m["applicable"] is False
        return
    predicted = test if protocol == "unseen" else list(swarm.runs)
    per_point = 2 if protocol == "extrapolate" else len(SWARM_STEPS)
    undefined_at_zero = name in ("bimix", "powerlaw")
    expected = [z * per_point if undefined_at_zero else 0 for z in _zero_pairs(swarm, predicted)]
    assert [m["domains"][d]["n_undefined"] for d in swarm.eval_domains] == expected
    assert [m["domains"][d]["n_points"] + m["domains"][d]["n_undefined"] for d in swarm.eval_domains] == [
        len(predicted) * per_point
    ] * 3
    scored = result.predictions[np.isfinite(result.predictions["predicted"])]
    assert (scored["predicted"] > 0).all() and (scored["share"] > 0).all() | (not undefined_at_zero)
    for key in ("rel_error_pct", "r2_log", "rmse"):
        assert all(np.isfinite(v) for v in m["summary"][key].values())
    if name == "bimix":  # the law is true on the runs that have the domain: small errors there
        assert m["summary"]["rel_error_pct"]["worst"] < 1.0


def test_unseen_with_training_runs_that_all_lack_a_domain_scores_the_others(swarm):
    train = ["run8", "run11"]  # pure web and the run without books: no books at all
    m = evaluate_law(lambda: get_law("bimix"), swarm, "unseen", test_runs=["run0", "run1"], train_runs=train)
    d2 = m.metrics["domains"]["d2"]
    assert d2["n_points"] == 0 and d2["n_undefined"] == 2 * len(SWARM_STEPS)
    assert m.metrics["domains_left_out"] == {"d2": 1}
    assert m.metrics["domains"]["d0"]["n_points"] == 2 * len(SWARM_STEPS)
    with pytest.raises(BadInput, match="domain 'd2' has 0 usable tuples .*; 10 had share 0"):
        get_law("bimix").fit(swarm.select_runs(train))  # `fit` itself still refuses


# --- BiMix with α < 0 and the bounds of the fit ----------------------------------------------------------


def test_bimix_recovers_negative_alpha_at_tiny_shares():
    """α = −0.5 with shares down to 1e-6: log C = log L + α·log r reaches log L + 0.5·13.8."""
    props = dirichlet_mixtures(20, 2, seed=5, floor=0.0)
    props[0], props[1] = [1e-6, 1 - 1e-6], [1e-4, 1 - 1e-4]
    data = synthetic_bimix(
        props, STEPS[::2], alpha=[-0.5, 0.1], B=[30.0, 30.0], beta=[0.5, 0.5], C=[2.0, 2.0], noise=0.0
    )
    law = BiMixLaw().fit(data)
    np.testing.assert_allclose(law.alpha_, [-0.5, 0.1], atol=1e-6)
    np.testing.assert_allclose(law.C_, [2.0, 2.0], rtol=1e-5)
    assert law.fit_report_["at_bound"] == {} and law.fit_report_["domains"]["d0"]["at_bound"] == []


def test_bimix_fit_ending_on_a_bound_says_so():
    """True α = −3 lies below the α bound (−2): the fit must stop there and report it."""
    props = dirichlet_mixtures(12, 2, seed=6)
    data = synthetic_bimix(
        props, STEPS[::2], alpha=[-3.0, 0.1], B=[30.0, 30.0], beta=[0.5, 0.5], C=[2.0, 2.0], noise=0.0
    )
    law = BiMixLaw().fit(data)
    assert law.alpha_[0] == pytest.approx(-2.0)
    assert "alpha" in law.fit_report_["domains"]["d0"]["at_bound"]
    assert list(law.fit_report_["at_bound"]) == ["d0"]
    assert law_from_dict(json.loads(json.dumps(law.to_dict()))).fit_report_["at_bound"] == {"d0": ["alpha"]}


def test_powerlaw_fit_report_counts_the_zero_share_points_it_cannot_predict(swarm):
    law = get_law("powerlaw").fit(swarm)
    report = law.fit_report_["domains"]
    zero = _zero_pairs(swarm, list(swarm.runs))
    assert [report[d]["n_undefined"] for d in swarm.eval_domains] == [z * len(SWARM_STEPS) for z in zero]
    assert [report[d]["n_points"] for d in swarm.eval_domains] == [
        (len(swarm.runs) - z) * len(SWARM_STEPS) for z in zero
    ]
    json.dumps(law.to_dict(), allow_nan=False)  # was inf (rmse_log) / -inf (r2_log): law.json unwritable
