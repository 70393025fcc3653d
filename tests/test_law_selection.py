"""Law selection as a feature: `compare_laws` (kfold over runs, every law scored at the final step), the
`evaluate --law all` verb that writes its ranking and recommendation, and `optimize --law-from`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from mixlab.cli import app
from mixlab.errors import BadInput
from mixlab.laws import LAWS, get_law, write_runs
from mixlab.laws.evaluate import compare_laws, evaluate_law, final_step
from mixlab.laws.observations import Observations
from mixlab.laws.optimize import optimize_mixture
from mixlab.laws.synthetic import dirichlet_mixtures
from mixlab.mixture import read_mixture_json, write_mixtures

SRC = Path(__file__).resolve().parents[1] / "src"
STEPS = np.array([250.0, 500.0, 1000.0, 2000.0])


def coupled_sweep(n_runs: int = 24, seed: int = 3) -> Observations:
    """Losses (c_i + k_i·exp(t_i·r))·(1 + 3/√s): each domain's loss moves with the OTHER domains' shares
    (strong off-diagonal t), which an own-share law (bimix, powerlaw) cannot see."""
    rng = np.random.default_rng(seed)
    r = dirichlet_mixtures(n_runs, 3, seed=seed, floor=0.05)
    t = np.array([[-1.0, -1.5, 0.3], [-1.2, -0.8, 0.2], [0.4, -1.8, -0.6]])
    c, k = np.array([1.6, 1.2, 2.0]), np.array([1.0, 1.4, 0.8])
    point_run, steps = np.repeat(np.arange(n_runs), STEPS.size), np.tile(STEPS, n_runs)
    y = (c + k * np.exp(r[point_run] @ t.T)) * (1 + 3.0 / steps[:, None] ** 0.5)
    y *= np.exp(rng.normal(0.0, 0.002, y.shape))
    doms = ("web", "code", "math")
    runs = tuple(f"run{i}" for i in range(n_runs))
    return Observations(doms, doms, runs, r, point_run, steps, np.full(steps.size, np.nan), y)


def test_compare_laws_ranks_the_coupled_law_first_and_its_scores_match_an_independent_computation():
    obs = coupled_sweep()
    comparison = compare_laws(obs, laws=["bimix", "dml", "powerlaw"], folds=4, seed=0)
    ranking = {row["law"]: row for row in comparison.ranking}
    assert [row["law"] for row in comparison.ranking][0] == "dml"
    assert ranking["dml"]["spearman_final"] > 0.95 > 0.5 > ranking["bimix"]["spearman_final"]
    assert comparison.step == 2000.0 and ranking["dml"]["hyper"] == {"seed": 0, "step": 2000.0}
    assert ranking["dml"]["n_points"] == 24 * 3 and ranking["bimix"]["n_points"] == 24 * 3
    doc = comparison.to_dict()
    assert doc["recommended"] == {"law": "dml", "label": "dml", "hyper": {"seed": 0, "step": 2000.0}}
    assert "0.9" in doc["reason"] and "4-fold" in doc["reason"] and "next " in doc["reason"]
    # independent: the same folds through evaluate_law, ρ and R² across runs with scipy / by hand
    pred = evaluate_law(
        lambda: get_law("dml", seed=0, step=2000.0), obs, "kfold", folds=4, seed=0
    ).predictions
    rho, r2 = [], []
    for _, g in pred[pred["step"] == 2000.0].groupby("domain"):
        rho.append(spearmanr(g["observed"], g["predicted"]).statistic)
        ly, lp = np.log(g["observed"].to_numpy()), np.log(g["predicted"].to_numpy())
        r2.append(1 - ((ly - lp) ** 2).sum() / ((ly - ly.mean()) ** 2).sum())
    assert ranking["dml"]["spearman_final"] == pytest.approx(np.mean(rho), abs=1e-12)
    assert ranking["dml"]["r2_log"] == pytest.approx(np.mean(r2), abs=1e-12)


def test_final_step_is_the_last_step_of_most_runs():
    obs = coupled_sweep(6)
    short = obs.select_points(~((obs.point_run < 4) & (obs.steps == 2000.0)))  # 4 of 6 runs stop at 1000
    assert final_step(obs) == 2000.0 and final_step(short) == 1000.0


def test_laws_that_cannot_run_are_listed_with_their_cause_not_ranked():
    obs = coupled_sweep()
    targets = Observations(
        obs.domains, ("arc_bpb", "gsm_bpb", "mmlu_bpb"), obs.runs, obs.proportions, obs.point_run, obs.steps,
        obs.tokens, obs.losses, obs.source,
    )  # fmt: skip
    comparison = compare_laws(targets, laws=["bimix", "dml", "powerlaw"], folds=3)
    assert [row["law"] for row in comparison.ranking] == ["dml"]
    assert set(comparison.failed) == {"bimix", "powerlaw"}
    assert "'arc_bpb' is a target" in comparison.failed["bimix"]
    with pytest.raises(BadInput, match="unknown law 'magic'"):
        compare_laws(obs, laws=["dml", "magic"])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("selection")
    obs = coupled_sweep(16)
    write_mixtures(d / "mixtures.csv", obs.mixtures(), obs.domains)
    write_runs(d / "runs.csv", obs.to_frame())
    return d


def test_evaluate_all_then_optimize_from_its_recommendation(sweep, tmp_path):
    m, r = str(sweep / "mixtures.csv"), str(sweep / "runs.csv")
    runner = CliRunner()
    res = runner.invoke(
        app, ["evaluate", "-m", m, "-r", r, "--law", "all", "--folds", "4", "-o", str(tmp_path / "cmp.json")]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "cmp.json").read_text())
    assert {row["law"] for row in doc["ranking"]} | set(doc["failed"]) == set(LAWS)
    best = doc["recommended"]["law"]
    assert best == doc["ranking"][0]["law"] and best in ("dml", "transfer")  # the laws that see coupling
    assert f"recommended: {best}" in res.output and "Spearman final" in res.output
    res = runner.invoke(app, ["optimize", "--law-from", str(tmp_path / "cmp.json"), "-m", m, "-r", r,
                              "--steps", "2000", "--min-weight", "0.05", "-o", str(tmp_path / "opt.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    from mixlab.laws import load_observations

    expected = optimize_mixture(
        get_law(best, **doc["recommended"]["hyper"]).fit(load_observations(m, r)), 2000.0, min_weight=0.05
    )
    got = read_mixture_json(tmp_path / "opt.json")
    assert got.meta["law"] == best and got.weights == pytest.approx(expected.weights, abs=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optimize", "--law-from", "{t}/cmp.json", "--steps", "2000", "-o", "{t}/o.json"], "--law-from needs --mixtures"),
        (["optimize", "--steps", "2000", "-o", "{t}/o.json"], "LAW_JSON or --law-from"),
        (["optimize", "--law-from", "{t}/cmp.json", "-m", "{d}/mixtures.csv", "-r", "{d}/runs.csv", "--steps",
          "2000", "-o", "{t}/o.json"], "no field 'recommended'"),
        (["evaluate", "-m", "{d}/mixtures.csv", "-r", "{d}/runs.csv", "--law", "all", "--protocol", "unseen",
          "-o", "{t}/o.json"], "--protocol: --law all compares the laws by kfold"),
    ],
)  # fmt: skip
def test_selection_errors_exit_2_with_one_line(sweep, tmp_path, args, message):
    (tmp_path / "cmp.json").write_text(json.dumps({"ranking": []}))
    proc = subprocess.run(
        [sys.executable, "-m", "mixlab.cli", *(a.format(d=sweep, t=tmp_path) for a in args)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.json").exists()
