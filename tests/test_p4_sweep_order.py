"""runs.csv of a resumed sweep is in mixture order even when several runs were partly trained.

A sweep on a cluster trains its runs at the same time, so a killed cluster sweep can leave several runs with
a checkpoint. Resumed on the local engine, the rows of each continuing run used to be appended after the
rows of the later partial runs: same rows, other order, not the file an uninterrupted sweep writes.
"""

from __future__ import annotations

import shutil

import pytest

from mixlab.corpus import Corpus, load_tokenizer
from mixlab.mixture import Mixture
from mixlab.proxy import TrainConfig, run_sweep
from proxy_helpers import demo_slice

CONFIG = TrainConfig(model="tiny", tokens=64 * 8 * 8, seq_len=64, batch_size=8, evals=2, threads=1)
MIXTURES = [
    Mixture.from_weights("a", {"code": 0.5, "wiki": 0.25, "news": 0.25}),
    Mixture.from_weights("b", {"code": 0.25, "wiki": 0.25, "news": 0.5}),
]


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def env(demo_corpus, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MIXLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("MIXLAB_QUIET", "1")
    corpus = Corpus.open(demo_slice(demo_corpus, tmp_path_factory.mktemp("corpus")))
    yield corpus, load_tokenizer("bpe:512", corpus=corpus)
    mp.undo()


def sweep(env, out, crash_in: str | None = None):  # noqa: ANN001, ANN201
    corpus, tok = env
    after_first_eval = CONFIG.eval_steps()[0] + 1

    def crash(run: str, step: int) -> None:
        if run == crash_in and step == after_first_eval:
            raise Interrupt

    return run_sweep(corpus, MIXTURES, out, CONFIG, tokenizer=tok, val_tokens=1024, on_step=crash)


def test_a_sweep_resumed_with_two_partial_runs_writes_the_rows_in_mixture_order(env, tmp_path):
    sweep(env, tmp_path / "reference")
    with pytest.raises(Interrupt):  # a done, b partial
        sweep(env, tmp_path / "b_partial", crash_in="b")
    out = tmp_path / "sweep"
    with pytest.raises(Interrupt):  # a partial, b not started
        sweep(env, out, crash_in="a")
    # what a cluster sweep killed while both ran leaves: both runs with a checkpoint
    (out / "runs" / "b").mkdir(parents=True)
    shutil.copy(tmp_path / "b_partial" / "runs" / "b" / "checkpoint.pt", out / "runs" / "b")
    results = sweep(env, out)
    first_eval = CONFIG.eval_steps()[0]
    assert [r.meta["resumed_from_step"] for r in results] == [first_eval, first_eval]
    assert (out / "runs.csv").read_bytes() == (tmp_path / "reference" / "runs.csv").read_bytes()
