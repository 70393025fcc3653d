"""Commands killed mid-run (SIGTERM and SIGKILL) and run again: the second run finishes with outputs
identical to an uninterrupted run, SIGTERM exits cleanly (143, no partial output, no temporaries, no worker
left running), SIGKILL leaves no worker running, and resumable verbs redo no finished work."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from mixcli import (
    alive,
    file_digest,
    interrupt,
    reading,
    run_mixlab,
    stdlib_texts,
    temp_leftovers,
    write_jsonl,
)

SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGKILL, id="SIGKILL")]


@pytest.fixture(scope="module")
def large_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~3 MB of real text in 4 shards of 2,400 short documents: each shard is read in several batches, so a
    worker holds its shard open while it tokenizes (the signal that the pass is mid-way)."""
    root = tmp_path_factory.mktemp("large") / "corpus"
    for d, domain in enumerate(("code", "prose")):
        for k in range(2):
            texts = stdlib_texts(("code", "prose")[d], 200, offset=k * 200)
            chunks = [t[i : i + 300] for t in texts for i in range(0, 1500, 300) if t[i : i + 300].strip()]
            write_jsonl(root / domain / f"part-{k}.jsonl", (chunks * 3)[:2400])
    return root


@pytest.fixture(scope="module")
def stats_reference(large_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("ref") / "stats.json"
    result = run_mixlab("-q", "corpus", "stats", str(large_corpus), "--json", str(out))
    assert result.returncode == 0, result.stderr
    return out.read_text()


@pytest.mark.parametrize("sig", SIGNALS)
def test_corpus_stats_interrupted_then_rerun(
    sig: int, large_corpus: Path, stats_reference: str, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "stats.json"
    args = ["-q", "--workers", "2", "corpus", "stats", str(large_corpus), "--json", str(out)]
    code, stderr, workers = interrupt(args, reading(large_corpus, 2), sig)
    if sig == signal.SIGTERM:
        assert code == 143, stderr
        assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    else:
        assert code == -signal.SIGKILL
    assert workers, "the pass was not running in worker processes"
    assert alive(workers) == [], "worker processes outlived the interrupted command"
    assert not out.exists()
    assert temp_leftovers(tmp_path) == []

    result = run_mixlab(*args)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == stats_reference
    assert file_digest(tmp_path) == {"out/stats.json": file_digest(out.parent)["stats.json"]}
