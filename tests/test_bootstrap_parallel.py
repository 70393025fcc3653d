"""A law's refits on an engine's workers (the bootstrap's replicates, an evaluation protocol's fits, law
selection's fits of every law and fold): the same numbers, bit for bit, on 1 or 2 workers."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixlab.engine import LocalEngine, map_where_it_pays
from mixlab.laws import Observations, get_law, write_runs
from mixlab.laws.bootstrap import bootstrap_laws, bootstrap_summary
from mixlab.laws.evaluate import compare_laws, evaluate_law
from mixlab.laws.optimize import optimize_mixture
from mixlab.laws.synthetic import dirichlet_mixtures, synthetic_bimix
from mixlab.mixture import write_mixtures

SRC = Path(__file__).resolve().parents[1] / "src"
MIXLAB = Path(sys.executable).with_name("mixlab")
TRUE = {"alpha": [0.08, 0.15, 0.05], "B": [30.0, 50.0, 20.0], "beta": [0.45, 0.6, 0.35], "C": [1.8, 2.2, 1.2]}


@pytest.fixture(scope="module")
def obs() -> Observations:
    return synthetic_bimix(
        dirichlet_mixtures(8, 3, seed=1), np.linspace(500, 5000, 10), **TRUE, domains=("web", "code", "books"),
        noise=0.003, seed=0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def two_workers():
    """A pool already running: the bootstrap hands replicates to warm workers (a cold pool may be skipped)."""
    with LocalEngine(2) as engine:
        engine.map(abs, [1, 2])
        yield engine


def test_work_goes_to_warm_workers_but_stays_here_without_an_engine_or_on_a_cold_pool(two_workers):
    here = os.getpid()
    first, *rest = map_where_it_pays(two_workers, _pid, range(6))
    assert first == here and rest and here not in rest
    assert map_where_it_pays(None, _pid, range(3)) == [here] * 3
    with LocalEngine(2) as cold:  # three trivial items: far less than starting a worker costs
        assert map_where_it_pays(cold, _pid, range(3)) == [here] * 3


def _pid(_item: int) -> int:
    return os.getpid()


@pytest.mark.parametrize("protocol", ["extrapolate", "kfold"])
def test_an_evaluation_protocol_on_two_workers_equals_serial(obs, two_workers, protocol):
    make = functools.partial(get_law, "bimix")
    serial = evaluate_law(make, obs, protocol, folds=4, seed=1)
    parallel = evaluate_law(make, obs, protocol, folds=4, seed=1, engine=two_workers)
    assert parallel.metrics == serial.metrics
    assert parallel.predictions.equals(serial.predictions)


def test_law_selection_on_two_workers_equals_serial(obs, two_workers):
    serial = compare_laws(obs, laws=["bimix", "powerlaw", "regmix"], folds=4, seed=0).to_dict()
    parallel = compare_laws(
        obs, laws=["bimix", "powerlaw", "regmix"], folds=4, seed=0, engine=two_workers
    ).to_dict()
    for row in serial["ranking"] + parallel["ranking"]:
        assert row.pop("fit_seconds") >= 0  # CPU seconds: the one field that differs from run to run
    assert parallel == serial and len(serial["ranking"]) == 3


def test_two_workers_give_the_serial_replicates_bit_for_bit(obs, two_workers):
    make = functools.partial(get_law, "bimix")
    serial, failed_serial = bootstrap_laws(make, obs, 6, seed=3)
    parallel, failed_parallel = bootstrap_laws(make, obs, 6, seed=3, engine=two_workers)
    assert failed_serial == failed_parallel == 0
    assert [law.coefficients() for law in parallel] == [law.coefficients() for law in serial]
    assert bootstrap_summary(parallel, failed_parallel) == bootstrap_summary(serial, failed_serial)


def test_replicates_are_the_seeded_resamples_in_order(obs, two_workers):
    # replicate k refits the k-th draw of default_rng(seed): the numbers of law.json from before the
    # engine ran the refits, whatever the number of workers
    laws, _ = bootstrap_laws(functools.partial(get_law, "bimix"), obs, 3, seed=5, engine=two_workers)
    rng = np.random.default_rng(5)
    for law in laws:
        picks = rng.integers(0, len(obs.runs), size=len(obs.runs))
        assert law.coefficients() == get_law("bimix").fit(obs.resample_runs(picks)).coefficients()


def test_failed_replicates_are_counted_the_same_on_workers(two_workers):
    # 3 runs: a resample of one distinct mixture (1 in 9) leaves a fixed-step law unidentifiable
    few = synthetic_bimix(dirichlet_mixtures(3, 3, seed=2), np.array([1000.0]), **TRUE, seed=0)
    make = functools.partial(get_law, "powerlaw", step=1000.0)
    serial = bootstrap_laws(make, few, 40, seed=0)
    parallel = bootstrap_laws(make, few, 40, seed=0, engine=two_workers)
    assert serial[1] == parallel[1] > 0
    assert [law.coefficients() for law in parallel[0]] == [law.coefficients() for law in serial[0]]


def test_optimize_bootstrap_on_two_workers_equals_serial(obs, two_workers):
    law = get_law("bimix").fit(obs)
    kwargs = {"min_weight": 0.05, "bootstrap": 5, "observations": obs, "seed": 2}
    serial = optimize_mixture(law, 20_000.0, **kwargs)
    parallel = optimize_mixture(law, 20_000.0, **kwargs, engine=two_workers)
    assert parallel.meta["bootstrap"] == serial.meta["bootstrap"]
    assert serial.meta["bootstrap"]["replicates"] == 5


def test_cli_fit_bootstrap_with_two_workers_equals_one(obs, tmp_path):
    write_mixtures(tmp_path / "mixtures.csv", obs.mixtures(), obs.domains)
    write_runs(tmp_path / "runs.csv", obs.to_frame())
    env = {**os.environ, "PYTHONPATH": str(SRC), "MIXLAB_QUIET": "1"}
    docs = []
    for workers in ("1", "2"):
        out = tmp_path / f"law{workers}.json"
        args = [
            "--workers",
            workers,
            "fit",
            "-m",
            str(tmp_path / "mixtures.csv"),
            "-r",
            str(tmp_path / "runs.csv"),
        ]
        res = subprocess.run(
            [str(MIXLAB), *args, "--bootstrap", "6", "--out", str(out)], capture_output=True, text=True, env=env,
            timeout=180,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        docs.append(json.loads(out.read_text()))
    assert docs[0]["bootstrap"]["replicates"] == 6
    assert docs[1] == docs[0]
