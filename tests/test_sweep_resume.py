"""A sweep re-run with more mixtures: runs already trained (finished or partial) keep their weights.

mixtures.csv stores weights to 10 significant digits, so a mixture read back from it can differ in the last
bits from the weights its run trained on; the run must still count as the same run (not be retrained, its
rows not appended to runs.csv a second time).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mixlab.corpus import Corpus, load_tokenizer
from mixlab.mixture import Mixture
from mixlab.proxy import TrainConfig, run_sweep
from proxy_helpers import demo_slice

VAL_TOKENS = 1024
CONFIG = TrainConfig(model="tiny", tokens=64 * 8 * 8, seq_len=64, batch_size=8, evals=2, threads=1)
# 2/7, 3/7, 2/7: not exact in 10 digits, so mixtures.csv holds rounded weights
SEVENTHS = Mixture.from_weights("sevenths", {"code": 2, "wiki": 3, "news": 2})
ADDED = Mixture.from_weights("added", {"code": 0.5, "wiki": 0.25, "news": 0.25})


@pytest.fixture(scope="module")
def env(demo_corpus, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MIXLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("MIXLAB_QUIET", "1")
    corpus = Corpus.open(demo_slice(demo_corpus, tmp_path_factory.mktemp("corpus")))
    yield corpus, load_tokenizer("bpe:512", corpus=corpus)
    mp.undo()


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def sweep(env, mixtures, out, **kw):
    corpus, tok = env
    return run_sweep(corpus, mixtures, out, CONFIG, tokenizer=tok, val_tokens=VAL_TOKENS, **kw)


def test_adding_runs_to_a_finished_sweep_trains_only_the_new_ones(env, tmp_path):
    out = tmp_path / "sweep"
    sweep(env, [SEVENTHS], out)
    first_rows = rows(out / "runs.csv")
    meta = (out / "runs" / "sevenths" / "meta.json").read_bytes()
    results = sweep(env, [ADDED], out)
    assert [r.name for r in results] == ["sevenths", "added"]
    assert [r.steps_trained for r in results] == [0, CONFIG.steps]
    assert (out / "runs" / "sevenths" / "meta.json").read_bytes() == meta
    table = rows(out / "runs.csv")
    assert table[: len(first_rows)] == first_rows
    assert [r[0] for r in table[1:]].count("sevenths") == len(first_rows) - 1
    reference = sweep(env, [SEVENTHS, ADDED], tmp_path / "reference")
    assert table == rows(tmp_path / "reference" / "runs.csv")
    assert results[1].losses == reference[1].losses


class Interrupt(Exception):
    pass


def test_a_partial_run_resumes_from_its_checkpoint_when_runs_are_added(env, tmp_path):
    out = tmp_path / "sweep"
    first_eval = CONFIG.eval_steps()[0]

    def crash(run: str, step: int) -> None:
        if step == first_eval + 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        sweep(env, [SEVENTHS], out, on_step=crash)
    results = sweep(env, [ADDED], out)
    assert results[0].meta["resumed_from_step"] == first_eval
    assert [r.steps_trained for r in results] == [CONFIG.steps - first_eval, CONFIG.steps]
    sweep(env, [SEVENTHS, ADDED], tmp_path / "reference")
    assert rows(out / "runs.csv") == rows(tmp_path / "reference" / "runs.csv")
