"""Candidate mixtures (Dirichlet around a prior), DoReMi weights, and the proxy CLI verbs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mixlab.cli import app
from mixlab.corpus import Corpus, load_tokenizer
from mixlab.errors import BadInput
from mixlab.mixture import read_mixture_json, read_mixtures
from mixlab.proxy import TrainConfig, prepare_streams
from mixlab.proxy.candidates import random_mixtures
from mixlab.proxy.doremi import (
    DoReMiConfig,
    clipped_excess_by_domain,
    exponentiated_gradient_step,
    floor_simplex,
    run_doremi,
)
from proxy_helpers import demo_slice


@pytest.fixture(scope="module")
def corpus_dir(demo_corpus, tmp_path_factory):
    """A 2-domain slice (code, wiki) of the demo corpus, with a private cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MIXLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("MIXLAB_QUIET", "1")
    yield demo_slice(demo_corpus, tmp_path_factory.mktemp("corpus"), ("code", "wiki"))
    mp.undo()


def test_random_mixtures_on_simplex_distinct_and_sparse():
    prior = np.array([0.5, 0.3, 0.15, 0.05])
    draws = random_mixtures(prior, 200, concentration=1.0, min_weight=0.05, rng=np.random.default_rng(0))
    assert draws.shape == (200, 4)
    np.testing.assert_allclose(draws.sum(axis=1), 1.0)
    assert np.all((draws == 0) | (draws >= 0.05 - 1e-12))
    assert (draws == 0).any()  # tiny weights were zeroed
    gaps = np.abs(draws[:, None, :] - draws[None, :, :]).sum(axis=2) + 10 * np.eye(200)
    assert gaps.min() >= 0.05


def test_random_mixtures_concentrate_around_prior():
    prior = np.array([0.6, 0.3, 0.1, 0.0])
    draws = random_mixtures(prior, 400, concentration=200.0, min_distance=0.0, rng=np.random.default_rng(1))
    assert np.all(draws[:, 3] == 0)
    np.testing.assert_allclose(draws.mean(axis=0), prior, atol=0.01)
    loose = random_mixtures(prior, 400, concentration=0.5, min_distance=0.0, rng=np.random.default_rng(1))
    assert loose.std(axis=0)[0] > 3 * draws.std(axis=0)[0]


def test_random_mixtures_reports_impossible_requests():
    with pytest.raises(BadInput, match="`min_distance`"):
        random_mixtures(np.ones(2), 50, min_distance=0.5, rng=np.random.default_rng(0), max_tries=2000)


def test_floor_simplex_hand_computed():
    np.testing.assert_allclose(
        floor_simplex(np.array([0.9, 0.09, 0.01]), 0.05), [0.95 * 0.9 / 0.99, 0.95 * 0.09 / 0.99, 0.05]
    )
    np.testing.assert_allclose(floor_simplex(np.array([1.0, 0.0, 0.0]), 0.1), [0.8, 0.1, 0.1])
    np.testing.assert_allclose(floor_simplex(np.array([0.2, 0.8]), 0.0), [0.2, 0.8])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(1e-9, 1.0), min_size=2, max_size=8),
    st.lists(st.floats(0.0, 5.0), min_size=8, max_size=8),
    st.floats(0.0, 1.0),
)
def test_exponentiated_gradient_stays_on_simplex_above_floor(w, excess, smoothing):
    w = np.array(w) / np.sum(w)
    k = len(w)
    floor = 0.5 / k
    out = exponentiated_gradient_step(w, np.array(excess[:k]), 1.0, smoothing, floor)
    assert out.sum() == pytest.approx(1.0)
    assert np.all(out >= floor - 1e-12)


def test_exponentiated_gradient_hand_computed():
    out = exponentiated_gradient_step(np.array([0.5, 0.5]), np.array([np.log(3.0), 0.0]), 1.0, 0.0, 0.0)
    np.testing.assert_allclose(out, [0.75, 0.25])
    smoothed = exponentiated_gradient_step(np.array([0.5, 0.5]), np.array([np.log(3.0), 0.0]), 1.0, 0.2, 0.0)
    np.testing.assert_allclose(smoothed, [0.8 * 0.75 + 0.1, 0.8 * 0.25 + 0.1])


def test_doremi_excess_is_clipped_per_token_hand_computed():
    """The paper's λ_i: mean over domain i's tokens of max(ℓ_proxy − ℓ_ref, 0), not the clip of the means."""
    proxy = np.array([[2.0, 2.0, 1.0, 1.0], [3.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    reference = np.array([[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 1.0, 2.0], [2.0, 2.0, 2.0, 2.0]])
    domains = np.array([0, 1, 0])
    # domain 0: tokens of rows 0 and 2, clipped excess [1, 1, 0, 0] and [0, 0, 0, 0] -> 2 / 8
    # domain 1: row 1, clipped excess [2, 0, 0, 0] -> 2 / 4 (its sequence means differ by 0.25, clip of means 0.25)
    # domain 2: absent -> 0
    np.testing.assert_allclose(clipped_excess_by_domain(proxy, reference, domains, 3), [0.25, 0.5, 0.0])
    # the example: the clip of the sequence means would give 0.0
    one = clipped_excess_by_domain(np.array([[2.0, 2.0, 1.0, 1.0]]), np.array([[1.0, 1.0, 2.0, 2.0]]), [0], 1)
    np.testing.assert_allclose(one, [0.5])


def test_doremi_upweights_an_artificially_hard_domain(corpus_dir, tmp_path):
    # a tokenizer of the clean text, then a third domain of random vocabulary tokens ("mess", in the
    # middle of the domain order): far from the untrained proxy, learnt early by the reference
    clean = Corpus.open(corpus_dir)
    tok = load_tokenizer("bpe:512", corpus=clean)
    tok.hf.save(str(tmp_path / "tokenizer.json"))
    rng = np.random.default_rng(0)
    (tmp_path / "mess").mkdir()
    with open(tmp_path / "mess" / "part.jsonl", "w", encoding="utf-8") as fh:
        for _ in range(60):
            fh.write(
                json.dumps({"text": tok.hf.decode(rng.integers(1, tok.vocab_size, 400).tolist())}) + "\n"
            )
    root = tmp_path / "with_mess.toml"
    shards = {d: [s.path for s in clean.shards([d])] for d in clean.domains}
    root.write_text(
        f"[domains]\ncode = {json.dumps(shards['code'])}\nmess = ['mess/part.jsonl']\nwiki = {json.dumps(shards['wiki'])}\n"
    )
    corpus = Corpus.open(root)
    streams = prepare_streams(corpus, load_tokenizer(str(tmp_path / "tokenizer.json")), val_tokens=2048)
    config = TrainConfig(tokens=64 * 8 * 24, seq_len=64, batch_size=8, evals=1, precision="fp32", threads=1)
    result = run_doremi(streams, tmp_path / "doremi", config, DoReMiConfig(step_size=0.3, min_weight=0.02))
    traj = result.trajectory
    assert traj.shape == (config.steps + 1, 3)
    np.testing.assert_allclose(traj.sum(axis=1), 1.0)
    assert np.all(traj >= 0.02 - 1e-12)
    w = result.mixture.weights
    assert w["mess"] > 0.45 and w["mess"] > 1.5 * max(w["code"], w["wiki"])
    assert read_mixture_json(tmp_path / "doremi" / "mixture.json").weights == pytest.approx(w)
    rows = list(csv.reader((tmp_path / "doremi" / "weights.csv").read_text(encoding="utf-8").splitlines()))
    assert rows[0] == ["step", *streams.domains] and len(rows) == config.steps + 2


def test_doremi_resumes_from_its_finished_reference_and_its_proxy_checkpoint(corpus_dir, tmp_path):
    corpus = Corpus.open(corpus_dir)
    streams = prepare_streams(corpus, load_tokenizer("bpe:512", corpus=corpus), val_tokens=2048)
    config = TrainConfig(tokens=64 * 8 * 8, seq_len=64, batch_size=8, evals=1, precision="fp32", threads=1)
    whole = run_doremi(streams, tmp_path / "whole", config)
    out = tmp_path / "resumed"

    def interrupt_at_step_5(step: int) -> None:
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_doremi(streams, out, config, checkpoint_every_s=0, on_step=interrupt_at_step_5)
    assert (out / "proxy.checkpoint.pt").is_file() and (out / "reference" / "model.pt").is_file()
    reference_written = (out / "reference" / "meta.json").stat().st_mtime_ns
    steps: list[int] = []
    resumed = run_doremi(streams, out, config, checkpoint_every_s=0, on_step=steps.append)
    assert steps == [6, 7, 8]  # the proxy continues after its checkpoint at step 5
    assert (out / "reference" / "meta.json").stat().st_mtime_ns == reference_written  # not retrained
    np.testing.assert_array_equal(resumed.trajectory, whole.trajectory)  # bit for bit
    assert resumed.meta["proxy_losses"] == whole.meta["proxy_losses"]
    assert (out / "weights.csv").read_bytes() == (tmp_path / "whole" / "weights.csv").read_bytes()
    assert not (out / "proxy.checkpoint.pt").exists()


runner = CliRunner()


def test_cli_mixtures_random_uniform_and_file_prior(tmp_path):
    out = tmp_path / "m.csv"
    res = runner.invoke(
        app,
        [
            "--seed",
            "3",
            "mixtures",
            "random",
            "--n",
            "5",
            "--prior",
            "uniform",
            "--domains",
            "a,b,c",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    mixtures = read_mixtures(out)
    assert [m.name for m in mixtures] == [f"random-{i:03d}" for i in range(5)]
    again = tmp_path / "again.csv"
    runner.invoke(
        app,
        [
            "--seed",
            "3",
            "mixtures",
            "random",
            "--n",
            "5",
            "--prior",
            "uniform",
            "--domains",
            "a,b,c",
            "--out",
            str(again),
        ],
    )
    assert again.read_text() == out.read_text()
    res = runner.invoke(
        app,
        [
            "mixtures",
            "random",
            "--n",
            "3",
            "--prior",
            f"{out}:random-000",  # one row of a mixtures file (a bare multi-row file is refused, issue 14)
            "--concentration",
            "50",
            "--out",
            str(tmp_path / "f.csv"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert read_mixtures(tmp_path / "f.csv")[0].domains == ["a", "b", "c"]


def test_cli_sweep_and_bad_input(corpus_dir, tmp_path):
    mixtures = tmp_path / "mixtures.csv"
    mixtures.write_text("name,code,wiki\nhalf,1,1\n")
    args = [
        "--seed",
        "0",
        "--workers",
        "1",
        "sweep",
        str(corpus_dir),
        "--mixtures",
        str(mixtures),
        "--out",
        str(tmp_path / "s"),
    ]
    small = ["--tokenizer", "bpe:512", "--tokens-per-run", str(64 * 8 * 6), "--evals", "2", "--seq-len", "64"]
    small += ["--batch-size", "8", "--val-tokens", "2048", "--threads", "1"]
    res = runner.invoke(app, args + small)
    assert res.exit_code == 0, res.output
    rows = list(csv.reader((tmp_path / "s" / "runs.csv").read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 1 + 2 * 2 and {r[0] for r in rows[1:]} == {"half"}
    meta = json.loads((tmp_path / "s" / "runs" / "half" / "meta.json").read_text())
    assert meta["config"]["seed"] == 0 and meta["threads"] == 1
    mixtures.write_text("name,code,web\nx,1,1\n")
    res = runner.invoke(app, args[:6] + ["--mixtures", str(mixtures), "--out", str(tmp_path / "t")] + small)
    assert res.exit_code != 0 and isinstance(res.exception, BadInput) and "web" in str(res.exception)
    assert not Path(tmp_path / "t").exists()


def test_cli_doremi_writes_mixture_and_trajectory(corpus_dir, tmp_path):
    out = tmp_path / "doremi"
    args = ["--workers", "1", "doremi", str(corpus_dir), "--out", str(out), "--tokenizer", "bpe:512"]
    args += [
        "--tokens-per-run",
        str(64 * 8 * 6),
        "--seq-len",
        "64",
        "--batch-size",
        "8",
        "--val-tokens",
        "2048",
    ]
    args += ["--threads", "1", "--min-weight", "0.1", "--reference", "natural"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    mixture = read_mixture_json(out / "mixture.json")
    assert mixture.name == "doremi" and set(mixture.weights) == {"code", "wiki"}
    assert min(mixture.weights.values()) >= 0.1 - 1e-9
    meta = json.loads((out / "doremi.json").read_text())
    assert meta["reference_mixture"]["name"] == "natural" and meta["steps"] == 6
    assert (out / "reference" / "meta.json").is_file()


@pytest.mark.parametrize("verb", [["sweep"], ["doremi"], ["mixtures", "random"]])
def test_cli_help_has_an_example(verb):
    res = runner.invoke(app, [*verb, "--help"])
    assert res.exit_code == 0 and "Example: mixlab" in res.output
