"""Proxy sweeps: streams, sampler, schedules, the sweep and its resumption (tiny model, real text)."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chisquare
from typer.testing import CliRunner

from mixlab.cli import app
from mixlab.corpus import Corpus, load_tokenizer
from mixlab.errors import BadInput
from mixlab.mixture import Mixture, write_mixtures
from mixlab.proxy import MixtureSampler, TrainConfig, prepare_streams, run_sweep
from mixlab.proxy.precision import CpuFeatures, native_bf16
from mixlab.proxy.schedule import lr_multiplier
from proxy_helpers import demo_slice

VAL_TOKENS = 2048
CONFIG = TrainConfig(
    model="tiny", tokens=64 * 8 * 24, seq_len=64, batch_size=8, evals=4, precision="auto", threads=1
)
MIXTURES = [
    Mixture.from_weights("code-heavy", {"code": 0.8, "wiki": 0.1, "news": 0.1}),
    Mixture.from_weights("wiki-heavy", {"code": 0.1, "wiki": 0.6, "news": 0.3}),
]


@pytest.fixture(scope="module")
def env(demo_corpus, tmp_path_factory):
    """A 3-domain slice of the demo corpus, its 512-token BPE and prepared streams, with a private cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MIXLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("MIXLAB_QUIET", "1")
    root = demo_slice(demo_corpus, tmp_path_factory.mktemp("corpus"))
    corpus = Corpus.open(root)
    tok = load_tokenizer("bpe:512", corpus=corpus)
    streams = prepare_streams(corpus, tok, val_tokens=VAL_TOKENS)
    yield corpus, tok, streams
    mp.undo()


@pytest.fixture(scope="module")
def sweep_dir(env, tmp_path_factory):
    corpus, tok, _ = env
    out = tmp_path_factory.mktemp("sweep")
    results = run_sweep(corpus, MIXTURES, out, CONFIG, tokenizer=tok, val_tokens=VAL_TOKENS)
    return out, results


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_streams_are_cached_and_split_by_documents(env):
    corpus, tok, streams = env
    assert streams.dtype == "uint16"
    for d in corpus.domains:
        info = streams.info[d]
        assert len(streams.val(d)) == VAL_TOKENS
        assert info["val_documents"] >= 1 and info["train_documents"] >= 1
        assert len(streams.train(d)) == info["train_tokens"]
        assert int(np.max(streams.train(d))) < tok.vocab_size
    stamp = (streams.path / "streams.json").stat().st_mtime_ns
    again = prepare_streams(corpus, tok, val_tokens=VAL_TOKENS)
    assert again.path == streams.path
    assert (again.path / "streams.json").stat().st_mtime_ns == stamp
    other = prepare_streams(corpus, tok, val_tokens=VAL_TOKENS, max_tokens_per_domain=12 * VAL_TOKENS)
    assert other.path != streams.path
    for d in corpus.domains:
        assert other.info[d]["train_tokens"] + VAL_TOKENS <= 12 * VAL_TOKENS


def test_validation_documents_are_not_trained_on(env):
    corpus, tok, streams = env
    # every document ends with EOS; a held-out document's text must not occur in the training stream
    d = "wiki"
    val = np.asarray(streams.val(d))
    eos = np.flatnonzero(val == tok.eos_id)
    first_doc = val[: eos[0]] if len(eos) else val[:64]
    train = np.asarray(streams.train(d))
    window = first_doc[:32]
    hits = np.flatnonzero(
        np.all(np.lib.stride_tricks.sliding_window_view(train, len(window)) == window, axis=1)
    )
    assert len(hits) == 0


def test_sampler_matches_proportions(env):
    _, _, streams = env
    weights = np.array([0.6, 0.3, 0.1])
    sampler = MixtureSampler(streams, weights, seq_len=64, batch_size=8, seed=3)
    draws = sampler.draw_domains(20_000)
    counts = np.bincount(draws, minlength=3)
    assert chisquare(counts, weights * counts.sum()).pvalue > 1e-3
    batch, domains = sampler.next_batch()
    assert batch.shape == (8, 65)
    for row, k in zip(batch, domains, strict=True):
        tokens = np.asarray(streams.train(streams.domains[k]))
        starts = np.flatnonzero(tokens[: len(tokens) - 64] == row[0])
        assert any(np.array_equal(tokens[s : s + 65], row) for s in starts)


def test_sampler_tracks_epochs_and_warns_on_repeats(env, capsys, monkeypatch):
    _, _, streams = env
    monkeypatch.delenv("MIXLAB_QUIET")  # the module's quiet setting silences warnings too
    sampler = MixtureSampler(streams, np.array([0.0, 1.0, 0.0]), seq_len=64, batch_size=8, seed=0)
    windows = int(sampler.n_windows[1])
    seen = np.concatenate([sampler._windows(1, 1) for _ in range(windows)])
    assert sorted(seen.tolist()) == list(range(0, windows * 64, 64))  # each window once per epoch
    assert sampler.epochs["wiki"] == pytest.approx(1.0) and sampler.epochs["code"] == 0.0
    assert "repeats" in capsys.readouterr().err


def test_exp10_schedule_values():
    assert lr_multiplier(0, 100, "exp10") == 1.0
    assert lr_multiplier(50, 100, "exp10") == pytest.approx(10**-0.5)
    assert lr_multiplier(100, 100, "exp10") == pytest.approx(0.1)
    assert lr_multiplier(0, 100, "exp10", warmup=4) == pytest.approx(0.25)
    assert lr_multiplier(37, 100, "constant") == 1.0
    assert lr_multiplier(9, 100, "cosine", warmup=10) == pytest.approx(1.0)
    assert lr_multiplier(100, 100, "cosine", warmup=10) == pytest.approx(0.1)
    assert lr_multiplier(55, 100, "cosine", warmup=10) == pytest.approx(0.55)
    with pytest.raises(BadInput):
        lr_multiplier(0, 10, "linear")


def test_sweep_writes_valid_runs_csv_with_falling_losses(env, sweep_dir):
    corpus, _, _ = env
    out, results = sweep_dir
    rows = read_rows(out / "runs.csv")
    assert rows[0] == ["run", "step", "tokens", "domain", "loss"]
    body = rows[1:]
    steps = CONFIG.eval_steps()
    assert len(steps) == 4 and steps[-1] == CONFIG.steps
    assert len(body) == len(MIXTURES) * len(steps) * len(corpus.domains)
    for m in MIXTURES:
        for d in corpus.domains:
            curve = [(int(r[1]), int(r[2]), float(r[4])) for r in body if r[0] == m.name and r[3] == d]
            assert [s for s, _, _ in curve] == steps
            assert all(t == s * CONFIG.batch_size * CONFIG.seq_len for s, t, _ in curve)
            assert all(math.isfinite(loss) and 0 < loss < 10 for _, _, loss in curve)
            assert curve[-1][2] < curve[0][2]
    assert [r[0] for r in read_rows(out / "mixtures.csv")[1:]] == [m.name for m in MIXTURES]
    meta = json.loads((out / "runs" / "code-heavy" / "meta.json").read_text())
    assert meta["status"] == "done" and meta["parameters"] > 100_000
    assert meta["tokens_per_second"] > 0 and meta["epochs"]["code"] > meta["epochs"]["wiki"] > 0
    assert not (out / "runs" / "code-heavy" / "checkpoint.pt").exists()
    # --precision auto records what the hardware decided and why
    cpu = CpuFeatures.of_this_machine()
    if native_bf16(cpu.flags, cpu.torch_native_bf16):
        assert meta["precision"] in ("fp32", "bf16") and "probe:" in meta["precision_reason"]
    else:
        assert meta["precision"] == "fp32"
        assert meta["precision_reason"] == "cpu lacks avx512_bf16/amx: bf16 would be emulated"
    # different mixtures, different losses: code-heavy is better on code
    final = {r.name: r.losses for r in results}
    assert final["code-heavy"]["code"] < final["wiki-heavy"]["code"]


class Interrupt(Exception):
    pass


def test_resume_after_interruption_trains_nothing_twice(env, sweep_dir, tmp_path):
    corpus, tok, _ = env
    reference, _ = sweep_dir
    out = tmp_path / "sweep"
    stop_at = CONFIG.eval_steps()[1] + 2
    trained: list[tuple[str, int]] = []

    def crash(run: str, step: int) -> None:
        trained.append((run, step))
        if run == "wiki-heavy" and step == stop_at:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_sweep(corpus, MIXTURES, out, CONFIG, tokenizer=tok, val_tokens=VAL_TOKENS, on_step=crash)
    assert (out / "runs" / "wiki-heavy" / "checkpoint.pt").is_file()
    with open(out / "runs.csv", "a", encoding="utf-8") as fh:
        fh.write("wiki-heavy,99,63")  # a line torn by a kill
    results = run_sweep(
        corpus, MIXTURES, out, CONFIG, tokenizer=tok, val_tokens=VAL_TOKENS, on_step=trained_hook(trained)
    )
    assert [r.steps_trained for r in results] == [0, CONFIG.steps - CONFIG.eval_steps()[1]]
    assert results[1].meta["resumed_from_step"] == CONFIG.eval_steps()[1]
    steps_by_run = {}
    for run, step in trained:
        steps_by_run.setdefault(run, []).append(step)
    assert steps_by_run["code-heavy"] == list(range(1, CONFIG.steps + 1))
    # steps after the last checkpoint are redone once; no step before it is trained twice
    redo = list(range(CONFIG.eval_steps()[1] + 1, stop_at + 1))
    assert sorted(steps_by_run["wiki-heavy"]) == sorted(list(range(1, CONFIG.steps + 1)) + redo)
    assert read_rows(out / "runs.csv") == read_rows(reference / "runs.csv")
    # a third invocation trains nothing and leaves the rows as they are
    again = run_sweep(corpus, MIXTURES, out, CONFIG, tokenizer=tok, val_tokens=VAL_TOKENS)
    assert [r.steps_trained for r in again] == [0, 0]
    assert read_rows(out / "runs.csv") == read_rows(reference / "runs.csv")


def trained_hook(log):
    return lambda run, step: log.append((run, step))


def test_resume_refuses_other_settings(env, sweep_dir):
    corpus, tok, _ = env
    out, _ = sweep_dir
    other = TrainConfig(**{**CONFIG.to_dict(), "lr": 1e-4})
    with pytest.raises(BadInput, match="sweep.json"):
        run_sweep(corpus, MIXTURES, out, other, tokenizer=tok, val_tokens=VAL_TOKENS)


def test_sweep_rejects_unknown_domain(env, tmp_path):
    corpus, tok, _ = env
    bad = [Mixture.from_weights("web", {"web": 1.0, "code": 1.0})]
    with pytest.raises(BadInput, match="web"):
        run_sweep(corpus, bad, tmp_path / "s", CONFIG, tokenizer=tok, val_tokens=VAL_TOKENS)
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_rows(env, sweep_dir, tmp_path):
    """A real `mixlab sweep` process killed with SIGKILL during its second run, then run again."""
    corpus, _, _ = env
    reference, _ = sweep_dir
    mixtures = tmp_path / "mixtures.csv"
    write_mixtures(mixtures, MIXTURES, corpus.domains)
    out = tmp_path / "sweep"
    args = ["--seed", "0", "--workers", "1", "sweep", str(Path(corpus.root) / "slice.toml")]
    args += ["--mixtures", str(mixtures), "--out", str(out), "--tokenizer", "bpe:512", "--val-tokens", "2048"]
    args += ["--tokens-per-run", str(CONFIG.tokens), "--evals", "4", "--seq-len", "64", "--batch-size", "8"]
    args += ["--threads", "1", "--precision", "auto"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mixlab.cli", *args],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = out / "runs" / "wiki-heavy" / "checkpoint.pt"
    deadline = time.monotonic() + 240
    try:
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpoint.exists(), "the sweep never reached its second run"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "runs" / "wiki-heavy" / "meta.json").exists()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert read_rows(out / "runs.csv") == read_rows(reference / "runs.csv")
    meta = json.loads((out / "runs" / "wiki-heavy" / "meta.json").read_text())
    assert meta["resumed_from_step"] in CONFIG.eval_steps()
    assert meta["tokens_trained_this_session"] < CONFIG.tokens
