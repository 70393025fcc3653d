"""Issue 16 fixed costs: intermediate evaluations on a fixed subset of the validation windows (the final one on
all of them), and bootstrap refits sent to workers only where they pay for the workers' start-up."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mixlab.engine import LocalEngine
from mixlab.engine.local import WORKER_START_SECONDS
from mixlab.errors import BadInput
from mixlab.laws.bimix import BiMixLaw
from mixlab.laws.bootstrap import bootstrap_laws
from mixlab.laws.synthetic import dirichlet_mixtures, synthetic_bimix
from mixlab.mixture import Mixture
from mixlab.proxy.config import TrainConfig
from mixlab.proxy.data import EvalSet
from proxy_helpers import demo_slice

# Light imports only: the bootstrap test's workers import this module to unpickle `WhereFitted`; torch and
# the proxy's training code are imported by the tests that use them.

SEQ_LEN = 32


@pytest.fixture(scope="module")
def streams(demo_corpus, tmp_path_factory):
    from mixlab.corpus import Corpus, load_tokenizer
    from mixlab.proxy import prepare_streams

    mp = pytest.MonkeyPatch()
    mp.setenv("MIXLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("MIXLAB_QUIET", "1")
    corpus = Corpus.open(demo_slice(demo_corpus, tmp_path_factory.mktemp("corpus")))
    yield prepare_streams(corpus, load_tokenizer("bpe:512", corpus=corpus), val_tokens=1024)
    mp.undo()


def test_subset_takes_evenly_spaced_windows_of_every_domain():
    # domain a: 8 windows, b: 3; seq_len 4. 10 tokens -> ceil(10 / 4) = 3 windows: linspace(0, 7, 3) =
    # 0, 3.5, 7 -> rows 0, 4, 7 of a (numpy rounds half to even); b has only 3, all of them
    windows = np.arange(11 * 5).reshape(11, 5)
    full = EvalSet(("a", "b"), windows, np.array([0] * 8 + [1] * 3), np.array([32, 12]))
    sub = full.subset(10)
    assert sub.windows.tolist() == windows[[0, 4, 7, 8, 9, 10]].tolist()
    assert sub.domain_index.tolist() == [0, 0, 0, 1, 1, 1]
    assert sub.targets.tolist() == [12, 12]
    assert full.subset(1).windows.tolist() == windows[[0, 8]].tolist()
    assert full.subset(10_000).windows.tolist() == windows.tolist()


def test_final_row_is_a_full_evaluation_and_earlier_rows_use_the_subset(streams, tmp_path):
    import torch

    from mixlab.proxy import train_run
    from mixlab.proxy.data import eval_set
    from mixlab.proxy.train import evaluate

    config = TrainConfig(tokens=6 * 8 * SEQ_LEN, seq_len=SEQ_LEN, batch_size=8, evals=3, eval_subset_tokens=64,
                         device="cpu", precision="fp32", threads=1)  # fmt: skip
    mixture = Mixture.from_weights("even", dict.fromkeys(streams.domains, 1.0))
    result = train_run(streams, mixture, config, tmp_path / "run", keep_model=True)
    full = eval_set(streams, streams.domains, SEQ_LEN)
    n_full = (1024 - 1) // SEQ_LEN * SEQ_LEN  # predicted tokens of a domain's 1,024 validation tokens
    assert [row["eval_tokens"] for row in result.history] == [64, 64, n_full]
    assert result.history[-1]["losses"] == evaluate(result.model, full, torch.device("cpu"))
    assert result.losses == result.meta["losses"] == result.history[-1]["losses"]
    assert result.meta["config"]["eval_subset_tokens"] == 64
    assert result.meta["eval_seconds_this_session"] > 0 and result.meta["checkpoint_seconds_this_session"] > 0
    # the full set at every evaluation: the same final losses (same training), full-size rows throughout
    every = train_run(streams, mixture, TrainConfig(**{**config.to_dict(), "eval_subset_tokens": None}))
    assert [row["eval_tokens"] for row in every.history] == [n_full] * 3
    assert every.losses == result.losses


@pytest.mark.parametrize("value", [0, -512, 1.5, True, float("nan")])
def test_eval_subset_tokens_must_be_a_positive_integer(value):
    with pytest.raises(BadInput, match="`eval_subset_tokens`"):
        TrainConfig(eval_subset_tokens=value)


class WhereFitted(BiMixLaw):
    """BiMix that remembers which process fitted it."""

    def _fit(self, obs):
        super()._fit(obs)
        self.pid_ = os.getpid()


@pytest.fixture(scope="module")
def obs():
    true = {
        "alpha": [0.08, 0.15, 0.05],
        "B": [30.0, 50.0, 20.0],
        "beta": [0.45, 0.6, 0.35],
        "C": [1.8, 2.2, 1.2],
    }
    return synthetic_bimix(dirichlet_mixtures(6, 3, seed=1), np.linspace(500, 5000, 6), **true, noise=0.003)


def test_short_bootstrap_stays_inline_and_a_running_pool_takes_the_rest(obs):
    serial, _ = bootstrap_laws(WhereFitted, obs, 4, seed=3)
    with LocalEngine(2) as engine:
        assert not engine.pays_to_spread(WORKER_START_SECONDS / 2)
        assert engine.pays_to_spread(WORKER_START_SECONDS)
        cold, _ = bootstrap_laws(WhereFitted, obs, 4, seed=3, engine=engine)  # ~0.1 s a refit: not worth it
        assert {law.pid_ for law in cold} == {os.getpid()} and engine._pool is None
        engine.map(abs, [1, 2])  # the pool is running now: nothing left to pay
        assert engine.pays_to_spread(0.0)
        warm, _ = bootstrap_laws(WhereFitted, obs, 4, seed=3, engine=engine)
    assert warm[0].pid_ == os.getpid() and os.getpid() not in {law.pid_ for law in warm[1:]}
    coefficients = [law.coefficients() for law in serial]
    assert [law.coefficients() for law in cold] == [law.coefficients() for law in warm] == coefficients
    assert not LocalEngine(1).pays_to_spread(1e9)
