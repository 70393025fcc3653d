"""The law verbs end to end: in-process for the happy path, the real `mixlab` script for exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mixlab.cli import app
from mixlab.files import write_json
from mixlab.laws import get_law, load_law, load_observations, write_runs
from mixlab.laws.optimize import optimize_mixture
from mixlab.laws.synthetic import dirichlet_mixtures, synthetic_bimix
from mixlab.mixture import read_mixture_json, write_mixtures

SRC = Path(__file__).resolve().parents[1] / "src"
MIXLAB = Path(sys.executable).with_name("mixlab")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sweep")
    obs = synthetic_bimix(
        dirichlet_mixtures(8, 3, seed=1), np.linspace(500, 5000, 10), [0.08, 0.15, 0.05], [30.0, 50.0, 20.0],
        [0.45, 0.6, 0.35], [1.8, 2.2, 1.2], domains=("web", "code", "books"),
    )  # fmt: skip
    write_mixtures(d / "mixtures.csv", obs.mixtures(), obs.domains)
    write_runs(d / "runs.csv", obs.to_frame())
    (d / "tokens.json").write_text(json.dumps({"web": 6e8, "code": 1e8, "books": 6e8}))
    stats = {
        "tokenizer": "gpt2",
        "domains": {
            k: {"documents": 1, "tokens": v} for k, v in json.loads((d / "tokens.json").read_text()).items()
        },
    }
    (d / "stats.json").write_text(json.dumps(stats))  # `mixlab corpus stats --json` layout
    lines = (d / "runs.csv").read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",nan"
    (d / "bad_runs.csv").write_text("\n".join(lines) + "\n")
    write_json(d / "law_dml.json", get_law("dml", step=5000.0).fit(obs).to_dict())
    return d


def run_cli(*args: str, quiet: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "MIXLAB_QUIET": "1" if quiet else "0"}
    return subprocess.run([str(MIXLAB), *args], capture_output=True, text=True, env=env, timeout=120)


def test_fit_evaluate_predict_optimize_export(sweep, tmp_path):
    runner = CliRunner()
    m, r = str(sweep / "mixtures.csv"), str(sweep / "runs.csv")
    res = runner.invoke(
        app, ["--quiet", "fit", "-m", m, "-r", r, "--law", "bimix", "--out", str(tmp_path / "law.json")]
    )
    assert res.exit_code == 0, res.output
    law = json.loads((tmp_path / "law.json").read_text())
    assert law["law"] == "bimix" and abs(law["params"]["code"]["alpha"] - 0.15) < 0.01

    res = runner.invoke(app, ["--quiet", "evaluate", "-m", m, "-r", r, "--law", "bimix", "--protocol", "unseen",
                              "--test-runs", "run0,run1,run2", "--out", str(tmp_path / "metrics.json"),
                              "--plots", str(tmp_path / "plots")])  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["protocol"] == "unseen" and metrics["summary"]["r2_log"]["worst"] > 0.99
    assert set(metrics["summary"]["rel_error_pct"]) == {"mean", "worst", "best"}
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["books.png", "code.png", "web.png"]

    res = runner.invoke(app, ["--quiet", "evaluate", "-m", m, "-r", r, "--law", "powerlaw", "--protocol", "extrapolate",
                              "--out", str(tmp_path / "na.json")])  # fmt: skip
    assert res.exit_code == 0 and json.loads((tmp_path / "na.json").read_text())["applicable"] is False

    res = runner.invoke(app, ["predict", str(tmp_path / "law.json"), "-m", m, "--steps", "10000,20000",
                              "--out", str(tmp_path / "pred.csv")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "pred.csv").read_text().splitlines()) == 1 + 8 * 2 * 3

    res = runner.invoke(app, ["--quiet", "optimize", str(tmp_path / "law.json"), "--steps", "20000",
                              "--available", str(sweep / "stats.json"), "--target-tokens", "1e9", "--max-epochs", "1",
                              "--min-weight", "0.05", "--bootstrap", "4", "-m", m, "-r", r,
                              "--out", str(tmp_path / "opt.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    opt = read_mixture_json(tmp_path / "opt.json")
    assert opt.weights["code"] == pytest.approx(
        0.1
    )  # the cap binds: 1e8 tokens of code for 1e9 target tokens
    assert set(opt.meta["references"]) == {"natural"}
    assert opt.meta["bootstrap"]["replicates"] == 4
    ci = opt.meta["bootstrap"]["optimal_weights"]["web"]
    assert ci["lo"] <= opt.weights["web"] + 1e-9 and ci["hi"] >= opt.weights["web"] - 1e-9

    prefixes = {d: f"/data/{d}_text_document" for d in ("web", "code", "books")}
    (tmp_path / "prefixes.json").write_text(json.dumps(prefixes))
    res = runner.invoke(
        app,
        [
            "export",
            str(tmp_path / "opt.json"),
            "--format",
            "megatron",
            "--paths",
            str(tmp_path / "prefixes.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert res.output.split()[1::2] == list(prefixes.values())


def test_optimize_verb_writes_what_optimize_mixture_returns(sweep, tmp_path):
    m, r = sweep / "mixtures.csv", sweep / "runs.csv"
    res = CliRunner().invoke(app, ["--quiet", "optimize", str(sweep / "law_dml.json"), "--steps", "5000",
                                   "--available", str(sweep / "tokens.json"), "--target-tokens", "1e9",
                                   "--min-weight", "0.05", "--bootstrap", "3", "-m", str(m), "-r", str(r),
                                   "--out", str(tmp_path / "opt.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    law = load_law(sweep / "law_dml.json")
    mixture = optimize_mixture(
        law, 5000.0, min_weight=0.05, available={"web": 6e8, "code": 1e8, "books": 6e8}, target_tokens=1e9,
        bootstrap=3, observations=load_observations(m, r), available_source=str(sweep / "tokens.json"),
    )  # fmt: skip
    assert json.loads((tmp_path / "opt.json").read_text()) == json.loads(json.dumps(mixture.to_dict()))
    assert list(mixture.meta["references"]) == ["natural"] and mixture.meta["bootstrap"]["level"] == 0.95


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "-m", "{d}/mixtures.csv", "-r", "{d}/bad_runs.csv", "--out", "{t}/law.json"], "row 3: field 'loss'"),
        (["fit", "-m", "{d}/mixtures.csv", "-r", "{d}/runs.csv", "--law", "magic", "--out", "{t}/law.json"], "unknown law"),
        (["optimize", "{d}/law_dml.json", "--steps", "99", "--out", "{t}/o.json"], "fixed-step law"),
        (["optimize", "{d}/law_dml.json", "--steps", "5000", "--available", "{d}/tokens.json",
          "--target-tokens", "1e10", "--out", "{t}/o.json"], "repetition caps allow only"),
    ],
)  # fmt: skip
def test_cli_errors_exit_2_without_output(sweep, tmp_path, args, message):
    proc = run_cli(*(a.format(d=sweep, t=tmp_path) for a in args))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_optimize_gives_the_remainder_to_a_domain_without_validation_loss(sweep, tmp_path):
    """books is a training domain without validation loss; web and code are capped at 0.2 (issue 12)."""
    runs = sweep / "runs.csv"
    lines = [ln for ln in runs.read_text().splitlines() if not ln.endswith(",books") and ",books," not in ln]
    (tmp_path / "runs.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "tokens.json").write_text(json.dumps({"web": 2e8, "code": 2e8, "books": 6e9}))
    runner = CliRunner()
    res = runner.invoke(app, ["--quiet", "fit", "-m", str(sweep / "mixtures.csv"), "-r", str(tmp_path / "runs.csv"),
                              "--out", str(tmp_path / "law.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "law.json").read_text())["eval_domains"] == ["web", "code"]
    res = runner.invoke(app, ["--quiet", "optimize", str(tmp_path / "law.json"), "--steps", "20000",
                              "--available", str(tmp_path / "tokens.json"), "--target-tokens", "1e9",
                              "--out", str(tmp_path / "opt.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    opt = read_mixture_json(tmp_path / "opt.json")
    assert [opt.weights[d] for d in ("web", "code", "books")] == pytest.approx([0.2, 0.2, 0.6])
    assert opt.meta["details"]["inactive_filled"] == [2]


def test_fit_warns_when_a_coefficient_ends_on_its_bound(tmp_path):
    """True α = −3 of web lies below BiMix's α bound (−2): `fit` must say so, not only write it in law.json."""
    obs = synthetic_bimix(
        dirichlet_mixtures(12, 2, seed=6), np.linspace(500, 5000, 10), [-3.0, 0.1], [30.0, 30.0], [0.5, 0.5],
        [2.0, 2.0], noise=0.0, domains=("web", "code"),
    )  # fmt: skip
    write_mixtures(tmp_path / "mixtures.csv", obs.mixtures(), obs.domains)
    write_runs(tmp_path / "runs.csv", obs.to_frame())
    res = run_cli(
        "fit", "-m", str(tmp_path / "mixtures.csv"), "-r", str(tmp_path / "runs.csv"), "--out",
        str(tmp_path / "law.json"), quiet=False,  # quiet is errors only (issue 14): no warnings
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "web: the fit ended on the bound of alpha" in res.stderr
    assert "code: the fit ended" not in res.stderr
