"""Engines: the same map + merge gives identical results inline, on a process pool and on real Ray."""

from __future__ import annotations

import functools
import gzip
import shutil
import threading
import time
from pathlib import Path

import pytest

from mixlab.corpus import Corpus, corpus_stats, load_tokenizer, natural_mixture
from mixlab.engine import LocalEngine, get_engine
from mixlab.engine.ray import _started_by_ray_data
from mixlab.errors import BadInput


def slow_square(x: int) -> int:
    time.sleep(0.05 * (x % 3))  # later items often finish first
    return x * x


def square_list(x: int) -> list[int]:
    return [slow_square(x)]


def concat(a: list, b: list) -> list:
    return a + b


@pytest.fixture(scope="module")
def gpt2():
    return load_tokenizer("gpt2")


@pytest.fixture(scope="module")
def stats_corpus(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four demo domains (4 shards each: work for every worker), a third of the demo corpus's bytes."""
    root = tmp_path_factory.mktemp("engines") / "corpus"
    for domain in ("wiki", "news", "email", "dialogue"):
        shutil.copytree(demo_corpus / domain, root / domain)
    return root


@pytest.fixture(scope="module")
def inline_stats(stats_corpus: Path, gpt2) -> dict:
    return corpus_stats(Corpus.open(stats_corpus), gpt2, LocalEngine(1))


@pytest.fixture
def corrupt_corpus(demo_corpus: Path, tmp_path: Path) -> Path:
    """Two demo domains, one with a malformed line in its second shard."""
    root = tmp_path / "corpus"
    for domain in ("wiki", "news"):
        shutil.copytree(demo_corpus / domain, root / domain)
    shard = sorted((root / "news").glob("*.jsonl.gz"))[1]
    lines = gzip.decompress(shard.read_bytes()).split(b"\n")
    lines[2] = b'{"text": "broken'
    shard.write_bytes(gzip.compress(b"\n".join(lines)))
    return root


def test_local_engine_keeps_input_order() -> None:
    items = list(range(9))
    for workers in (1, 2):
        with LocalEngine(workers) as engine:
            assert engine.map(slow_square, items) == [x * x for x in items]
            assert engine.map_reduce(square_list, items, concat, initial=[]) == [x * x for x in items]
            assert engine.map(functools.partial(pow, 2), items) == [2**x for x in items]
            assert engine.map(slow_square, []) == []


def test_unknown_engine() -> None:
    with pytest.raises(BadInput, match="`engine` spark: unknown engine"):
        get_engine("spark")


def test_inline_and_process_pool_stats_agree(stats_corpus: Path, gpt2, inline_stats: dict) -> None:
    inline = inline_stats
    with LocalEngine(2) as pool:
        assert corpus_stats(Corpus.open(stats_corpus), gpt2, pool) == inline
    assert list(inline["domains"]) == ["dialogue", "email", "news", "wiki"]
    assert all(v["tokens"] > 1000 for v in inline["domains"].values())
    assert sum(natural_mixture(inline).values()) == pytest.approx(1.0)
    assert inline["total"]["documents"] == sum(v["documents"] for v in inline["domains"].values())


def test_bad_row_in_a_worker_is_bad_input(corrupt_corpus: Path, gpt2) -> None:
    corpus = Corpus.open(corrupt_corpus)
    with (
        LocalEngine(2) as pool,
        pytest.raises(BadInput, match=r"news/part-00001\.jsonl\.gz:3: malformed JSON"),
    ):
        corpus_stats(corpus, gpt2, pool)
    skipped = corpus_stats(corpus, gpt2, LocalEngine(1), skip_bad_rows=True)
    assert skipped["domains"]["news"]["skipped"] == 1 and skipped["domains"]["wiki"]["skipped"] == 0


@pytest.mark.slow
def test_ray_engine_matches_local(stats_corpus: Path, corrupt_corpus: Path, gpt2, inline_stats: dict) -> None:
    pytest.importorskip("ray")
    with get_engine("ray", workers=2) as ray_engine:
        assert ray_engine.name == "ray"
        assert corpus_stats(Corpus.open(stats_corpus), gpt2, ray_engine) == inline_stats
        # test-module functions are not importable by Ray workers: a builtin shows the order is kept
        assert ray_engine.map(functools.partial(pow, 2), list(range(7))) == [2**x for x in range(7)]
        with pytest.raises(BadInput, match=r"part-00001\.jsonl\.gz:3: malformed JSON"):
            corpus_stats(Corpus.open(corrupt_corpus), gpt2, ray_engine)
    import ray

    assert not ray.is_initialized()  # the engine shut down the runtime it started
    # ...and only once Ray Data's threads were gone: one left behind (the iteration above stopped early at
    # the bad row) would touch Ray after shutdown, and Ray would end this process with status 1.
    assert not [t.name for t in threading.enumerate() if _started_by_ray_data(t)]
