"""BiMix's schedule-aware step term, the schedule a sweep records, and the horizon protocol."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mixcli import assert_one_line_cause, run_mixlab_forked
from mixlab.errors import BadInput
from mixlab.laws import load_observations
from mixlab.laws.base import get_law, law_from_dict
from mixlab.laws.bimix import _log_model, bimix_loss
from mixlab.laws.evaluate import compare_laws, evaluate_law
from mixlab.laws.synthetic import dirichlet_mixtures, synthetic_bimix
from mixlab.proxy.config import read_sweep_schedule
from mixlab.proxy.schedule import LRSchedule, lr_multiplier

SWEEPS = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "sweeps"
COSINE = LRSchedule("cosine", 200, 10)
TRUE = {
    "alpha": [0.05, 0.12, 0.02, 0.08],
    "B": [30.0, 12.0, 50.0, 8.0],
    "beta": [0.6, 0.4, 0.8, 0.3],
    "C": [3.0, 2.0, 4.0, 2.5],
    "D": [0.2, 0.05, 0.35, 0.1],
}
STEPS = np.linspace(10, 200, 20).round()


def scheduled(schedule: LRSchedule = COSINE, noise: float = 0.001, **over: list[float]):
    coef = {**TRUE, **over}
    return synthetic_bimix(
        dirichlet_mixtures(12, 4, seed=3), STEPS, coef["alpha"], coef["B"], coef["beta"], coef["C"],
        noise=noise, D=coef["D"], schedule=schedule,
    )  # fmt: skip


def test_loss_with_the_schedule_term_hand_computed():
    # r^-α = 0.25^-0.5 = 2; B s^-β = 10/10 = 1; C(1 − D·anneal) = 2·(1 − 0.5·0.9) = 1.1 → 2·2.1
    assert bimix_loss(0.25, 100.0, 0.5, 10.0, 0.5, 2.0, 0.5, 0.9) == pytest.approx(4.2)
    assert bimix_loss(0.25, 100.0, 0.5, 10.0, 0.5, 2.0, 0.5, 0.0) == pytest.approx(6.0)


def test_the_log_model_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    logr, logs = np.log(rng.uniform(0.05, 1, 30)), np.log(rng.uniform(0.05, 1, 30))
    anneal = rng.uniform(0, 0.9, 30)
    theta = np.array([0.1, 1.2, 0.5, 0.8, 0.3])
    _, jac = _log_model(theta, logr, logs, anneal)
    for k in range(5):
        step = np.zeros(5)
        step[k] = 1e-6
        hi, _ = _log_model(theta + step, logr, logs, anneal)
        lo, _ = _log_model(theta - step, logr, logs, anneal)
        np.testing.assert_allclose(jac[:, k], (hi - lo) / 2e-6, rtol=1e-6, atol=1e-9)


def test_multipliers_are_the_training_loops_schedule():
    for schedule in (COSINE, LRSchedule("exp10", 97), LRSchedule("constant", 50, 5)):
        steps = np.arange(schedule.total_steps + 1)
        expected = [
            lr_multiplier(int(t), schedule.total_steps, schedule.name, schedule.warmup) for t in steps
        ]
        np.testing.assert_array_equal(schedule.multipliers(steps), expected)
        assert schedule.multipliers(np.array([schedule.total_steps + 40]))[0] == expected[-1]


def test_the_schedule_is_read_from_a_sweeps_own_record():
    # 100,000 tokens / (16 × 64) = 97 steps, cosine with the default 5 % warm-up (5 steps)
    assert read_sweep_schedule(SWEEPS / "cosine" / "sweep.json") == LRSchedule("cosine", 97, 5)
    assert read_sweep_schedule(SWEEPS / "exp10" / "sweep.json") == LRSchedule("exp10", 97, 0)
    obs = load_observations(SWEEPS / "cosine_300k" / "mixtures.csv", SWEEPS / "cosine_300k" / "runs.csv")
    assert obs.schedule == LRSchedule("cosine", 292, 15)
    assert obs.select_points(obs.steps < 100).schedule == obs.schedule
    assert obs.resample_runs([0, 0, 1]).schedule == obs.schedule


def test_a_sweep_file_without_its_config_is_bad_input(tmp_path: Path):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"config": {"tokens": 1000, "schedule": "cosine"}}))
    with pytest.raises(BadInput, match=r"sweep\.json: not a mixlab sweep file.*batch_size"):
        read_sweep_schedule(path)
    path.write_text(
        json.dumps({"config": {"tokens": 100, "batch_size": 16, "seq_len": 64, "schedule": "cosine"}})
    )
    with pytest.raises(BadInput, match=r"sweep\.json: field 'config': `tokens` 100: less than one batch"):
        read_sweep_schedule(path)


def test_known_coefficients_are_recovered_with_the_schedule_term():
    law = get_law("bimix", step_term="schedule").fit(scheduled())
    for name, truth in TRUE.items():
        np.testing.assert_allclose(getattr(law, f"{name}_"), truth, rtol=0.08, atol=0.02, err_msg=name)
    np.testing.assert_allclose(law.D_, TRUE["D"], atol=0.02)
    plain = get_law("bimix").fit(scheduled())
    assert (
        plain.fit_report_["domains"]["d2"]["mean_rel_error_pct"]
        > 5 * law.fit_report_["domains"]["d2"]["mean_rel_error_pct"]
    )


def test_at_a_constant_rate_the_schedule_term_is_the_plain_law():
    obs = scheduled(LRSchedule("constant", 200), D=[0.0] * 4)
    plain = get_law("bimix").fit(obs)
    aware = get_law("bimix", step_term="schedule").fit(obs)
    for name in ("alpha", "B", "beta", "C"):
        np.testing.assert_array_equal(getattr(aware, f"{name}_"), getattr(plain, f"{name}_"))
    np.testing.assert_array_equal(aware.D_, 0.0)


def test_the_plain_term_ignores_a_known_schedule():
    obs = scheduled()
    with_schedule = get_law("bimix").fit(obs)
    without = get_law("bimix").fit(obs.__class__(**{**obs.__dict__, "schedule": None}))
    assert with_schedule.to_dict() == without.to_dict()
    assert "schedule" not in with_schedule.to_dict()["params"]


def test_the_law_file_carries_the_schedule_and_predicts_the_same():
    law = get_law("bimix", step_term="schedule").fit(scheduled())
    doc = json.loads(json.dumps(law.to_dict()))
    assert doc["params"]["schedule"] == {"name": "cosine", "total_steps": 200, "warmup": 10}
    again = law_from_dict(doc)
    r = dirichlet_mixtures(3, 4, seed=9)
    for step in (15.0, 120.0, 200.0):
        np.testing.assert_array_equal(again.predict(r, step), law.predict(r, step))
        alpha, k = law.separable_power(step)
        np.testing.assert_allclose(k[None, :] * r ** (-alpha), law.predict(r, step), rtol=1e-12)


def test_the_schedule_term_without_a_schedule_is_bad_input():
    obs = scheduled()
    obs = obs.__class__(**{**obs.__dict__, "schedule": None, "source": "runs.csv"})
    with pytest.raises(BadInput, match=r"runs\.csv: bimix: step_term 'schedule' needs .* sweep\.json"):
        get_law("bimix", step_term="schedule").fit(obs)
    with pytest.raises(BadInput, match="step_term must be one of plain, schedule"):
        get_law("bimix", step_term="cosine")


def test_horizon_fits_the_first_half_of_every_run_once_and_predicts_the_rest():
    obs = scheduled(noise=0.0)
    ev = evaluate_law(functools.partial(get_law, "bimix", step_term="schedule"), obs, "horizon")
    # 20 evaluations per run: the first 10 fit, the last 10 predicted, for every run and domain
    assert sorted(ev.predictions["step"].unique()) == sorted(STEPS[10:])
    assert len(ev.predictions) == 12 * 10 * 4
    assert set(ev.predictions["fold"]) == {0}
    assert ev.metrics["fit_fraction"] == 0.5
    assert ev.metrics["summary"]["rel_error_pct"]["worst"] < 1e-4  # noiseless truth, recovered
    plain = evaluate_law(functools.partial(get_law, "bimix"), obs, "horizon")
    assert plain.metrics["summary"]["rel_error_pct"]["mean"] > 0.5


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, float("nan"), float("inf")])
def test_horizon_refuses_a_fraction_outside_zero_one(fraction: float):
    with pytest.raises(BadInput, match="`fit_fraction` must be in"):
        evaluate_law(functools.partial(get_law, "bimix"), scheduled(), "horizon", fit_fraction=fraction)


def test_horizon_is_not_applicable_to_a_fixed_step_law():
    ev = evaluate_law(functools.partial(get_law, "powerlaw", step=200.0), scheduled(), "horizon")
    assert ev.metrics["applicable"] is False


def test_on_mixlabs_own_sweeps_the_schedule_term_extrapolates_better():
    """The measurement the default rests on (benchmarks/laws_compare.py prints it for every sweep)."""
    errors = {}
    for term in ("plain", "schedule"):
        d = SWEEPS / "cosine_300k"
        obs = load_observations(d / "mixtures.csv", d / "runs.csv")
        ev = evaluate_law(functools.partial(get_law, "bimix", step_term=term), obs, "horizon")
        errors[term] = ev.metrics["summary"]["rel_error_pct"]["mean"]
    assert errors["schedule"] < 0.75 * errors["plain"], errors


def test_fit_and_evaluate_from_a_sweep_directory(tmp_path: Path):
    sweep = tmp_path / "sweep"
    shutil.copytree(SWEEPS / "cosine", sweep)
    args = ["--mixtures", str(sweep / "mixtures.csv"), "--runs", str(sweep / "runs.csv")]
    fit = run_mixlab_forked("fit", *args, "--hyper", "step_term=schedule", "-o", str(tmp_path / "law.json"))
    assert fit.returncode == 0, fit.stderr
    doc = json.loads((tmp_path / "law.json").read_text())
    assert doc["hyper"]["step_term"] == "schedule" and doc["params"]["schedule"]["total_steps"] == 97
    ev = run_mixlab_forked("evaluate", *args, "--protocol", "horizon", "-o", str(tmp_path / "m.json"))
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "m.json").read_text())["fit_fraction"] == 0.5
    bad = run_mixlab_forked(
        "evaluate", *args, "--protocol", "horizon", "--fit-fraction", "1", "-o", str(tmp_path / "x")
    )
    assert_one_line_cause(bad, "--fit-fraction")
    (sweep / "sweep.json").unlink()
    missing = run_mixlab_forked("fit", *args, "--hyper", "step_term=schedule", "-o", str(tmp_path / "y.json"))
    assert_one_line_cause(missing, "runs.csv", "sweep.json")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y.json").exists()


def test_law_selection_compares_both_step_terms_where_the_schedule_is_known():
    obs = scheduled()
    comparison = compare_laws(obs, ["bimix", "powerlaw"], folds=3)
    labels = [row["label"] for row in comparison.ranking]
    assert sorted(labels) == ["bimix", "bimix (step_term=schedule)", "powerlaw"]
    # the truth has the schedule term: at the final step its floor is C·(1 − 0.9·D), which the plain term
    # can only fit with other coefficients
    assert labels.index("bimix (step_term=schedule)") < labels.index("bimix")
    aware = next(row for row in comparison.ranking if row["label"] == "bimix (step_term=schedule)")
    assert aware["law"] == "bimix" and aware["hyper"] == {"step_term": "schedule"}
    best = comparison.to_dict()["recommended"]
    assert best["label"] == comparison.ranking[0]["label"]
    without = compare_laws(obs.__class__(**{**obs.__dict__, "schedule": None}), ["bimix"], folds=3)
    assert [row["label"] for row in without.ranking] == ["bimix"]


def test_transfer_with_the_schedule_term_recovers_the_floor_drop_and_is_plain_at_a_constant_rate():
    law = get_law("transfer", step_term="schedule").fit(scheduled())
    np.testing.assert_allclose(law.D_, TRUE["D"], atol=0.03)
    doc = json.loads(json.dumps(law.to_dict()))
    assert doc["params"]["schedule"]["name"] == "cosine" and "D" in doc["params"]["d0"]
    r = dirichlet_mixtures(3, 4, seed=9)
    np.testing.assert_array_equal(law_from_dict(doc).predict(r, 150.0), law.predict(r, 150.0))
    flat = scheduled(LRSchedule("constant", 200), D=[0.0] * 4)
    plain, aware = get_law("transfer").fit(flat), get_law("transfer", step_term="schedule").fit(flat)
    assert "D" not in plain.to_dict()["params"]["d0"]
    for name in ("alpha", "eps", "B", "beta", "C", "T", "u"):
        np.testing.assert_array_equal(getattr(aware, f"{name}_"), getattr(plain, f"{name}_"), err_msg=name)


def test_transfer_with_the_schedule_term_extrapolates_own_sweeps_better():
    d = SWEEPS / "cosine_300k"
    obs = load_observations(d / "mixtures.csv", d / "runs.csv")
    errors = {
        term: evaluate_law(functools.partial(get_law, "transfer", step_term=term), obs, "horizon").metrics[
            "summary"
        ]["rel_error_pct"]["mean"]
        for term in ("plain", "schedule")
    }
    assert errors["schedule"] < 0.75 * errors["plain"], errors
    with pytest.raises(BadInput, match="transfer: step_term 'schedule' needs"):
        get_law("transfer", step_term="schedule").fit(obs.__class__(**{**obs.__dict__, "schedule": None}))
