"""Commands killed mid-run (SIGTERM and SIGKILL) and run again: the second run finishes with outputs
identical to an uninterrupted run, SIGTERM exits cleanly (143, no partial output, no temporaries, no worker
left running), SIGKILL leaves no worker running, and resumable verbs redo no finished work."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mixcli import (
    alive,
    file_appears,
    file_digest,
    interrupt,
    reading,
    run_mixlab,
    stdlib_texts,
    temp_leftovers,
    write_jsonl,
)

SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGKILL, id="SIGKILL")]


DROPPED_SIGTERM = """
import signal, sys, time, weakref
from mixlab import cli

class Thing:
    pass

cli._handle_interrupts()
thing = Thing()
# a SIGTERM handled inside a weakref callback, where CPython drops exceptions ("Exception ignored")
ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGTERM))
try:
    del thing
    time.sleep(2)
    print("ran to the end")
except KeyboardInterrupt:
    cli._interrupted()
"""


def test_a_sigterm_dropped_by_cpython_is_delivered_again() -> None:
    result = subprocess.run(
        [sys.executable, "-c", DROPPED_SIGTERM], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 143, result.stdout + result.stderr
    assert "ran to the end" not in result.stdout
    assert "interrupted" in result.stderr and "Exception ignored" not in result.stderr, result.stderr


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
def stats_corpus(large_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`large_corpus` with every shard copied 4 times: token counting caches repeated text pieces, so
    `corpus stats` on `large_corpus` alone can finish before the test sees its workers mid-shard."""
    root = tmp_path_factory.mktemp("stats") / "corpus"
    for shard in sorted(large_corpus.glob("*/*.jsonl")):
        for copy in range(4):
            target = root / shard.parent.name / f"{shard.stem}-{copy}.jsonl"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(shard.read_bytes())
    return root


@pytest.fixture(scope="module")
def stats_reference(stats_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("ref") / "stats.json"
    result = run_mixlab("-q", "corpus", "stats", str(stats_corpus), "--tokenizer", "gpt2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    return out.read_text()


@pytest.mark.parametrize("sig", SIGNALS)
def test_corpus_stats_interrupted_then_rerun(
    sig: int, stats_corpus: Path, stats_reference: str, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "stats.json"
    # gpt2, not the default bpe:8192: no BPE to train on these 12 MB first
    args = ["-q", "--workers", "2", "corpus", "stats", str(stats_corpus), "--tokenizer", "gpt2"]
    args += ["--json", str(out)]
    code, stderr, workers = interrupt(args, reading(stats_corpus, 2), sig)
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


@pytest.mark.slow
def test_corpus_stats_on_ray_sigterm_unwinds_like_local(stats_corpus: Path, tmp_path: Path) -> None:
    """ray.init installs its own SIGTERM handler (sys.exit(15)); the engine keeps mixlab's."""
    pytest.importorskip("ray")
    out = tmp_path / "out" / "stats.json"
    # gpt2: no BPE to train in the driver first (the shard reads that trigger the signal are the Ray pass's)
    args = [
        "-q",
        "--engine",
        "ray",
        "--workers",
        "2",
        "corpus",
        "stats",
        str(stats_corpus),
        "--tokenizer",
        "gpt2",
    ]
    args += ["--json", str(out)]
    env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    # Ray's start-up before the first read takes minutes when the other test worker loads both cores
    code, stderr, ray_processes = interrupt(
        args, reading(stats_corpus, 1), signal.SIGTERM, env=env, timeout=240
    )
    assert code == 143, stderr[-3000:]
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert ray_processes, "the pass was not running in Ray worker processes"
    assert alive(ray_processes, grace=15) == [], "Ray processes outlived the interrupted command"
    assert not out.exists()
    assert temp_leftovers(tmp_path) == []


def stamps(root: Path, pattern: str) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of the files matching `pattern` under `root`: unchanged means not redone."""
    return {
        p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.glob(pattern)
    }


def interrupted_cleanly(sig: int, code: int, stderr: str, workers: list[int], tmp: Path) -> None:
    """SIGTERM: exit 143 with one note and no temporaries; both: no worker process left running."""
    if sig == signal.SIGTERM:
        assert code == 143, stderr
        assert "interrupted" in stderr and "Traceback" not in stderr, stderr
        assert temp_leftovers(tmp) == []
    else:
        assert code == -signal.SIGKILL
    assert alive(workers) == [], "worker processes outlived the interrupted command"


# --- entropy: one pass over the corpus, outputs written at the end ---------------------------------------


@pytest.fixture(scope="module")
def entropy_reference(large_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("entropy-ref") / "entropy"
    result = run_mixlab("-q", "--workers", "2", "entropy", str(large_corpus), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return file_digest(out)


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_entropy_interrupted_then_rerun(
    sig: int, large_corpus: Path, entropy_reference: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "entropy"
    args = ["--workers", "2", "entropy", str(large_corpus), "--out", str(out), "--checkpoint-every", "0"]
    checkpointed = file_appears(tmp_path / "entropy.work", "entropy.checkpoint")
    code, stderr, workers = interrupt(["-q", *args], checkpointed, sig)
    interrupted_cleanly(sig, code, stderr, workers, tmp_path)
    assert not out.exists(), "entropy left a partial output directory"
    result = run_mixlab(*args)
    assert result.returncode == 0, result.stderr
    assert re.search(r"resuming the entropy pass: [1-3] of 4 shards", result.stderr), result.stderr
    assert file_digest(out) == entropy_reference
    assert not (tmp_path / "entropy.work").exists()


# --- score: resumable per shard through <out>.work/shards ------------------------------------------------

SCORE_OPTIONS = ["--annotate-n", "300", "--clusters", "8"]


@pytest.fixture(scope="module")
def score_reference(large_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("score-ref") / "scores.parquet"
    result = run_mixlab("-q", "--workers", "2", "score", str(large_corpus), "--out", str(out), *SCORE_OPTIONS)
    assert result.returncode == 0, result.stderr
    return out


def same_table(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    return pq.read_table(a).equals(pq.read_table(b))


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_score_interrupted_resumes_without_redoing_shards(
    sig: int, large_corpus: Path, score_reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.parquet"
    shards = tmp_path / "scores.parquet.work" / "shards"
    args = ["-q", "--workers", "2", "score", str(large_corpus), "--out", str(out), *SCORE_OPTIONS]
    code, stderr, workers = interrupt(args, file_appears(shards, "*.meta.parquet"), sig)
    interrupted_cleanly(sig, code, stderr, workers, tmp_path)
    assert not out.exists()
    # a shard's embed pass is finished once its .meta.parquet (written last, after .npy and .cand.pkl) exists
    done = {name.split(".")[0] for name in stamps(shards, "*.meta.parquet")}
    finished = {name: stamp for name, stamp in stamps(shards, "*").items() if name.split(".")[0] in done}
    assert done

    result = run_mixlab(*args)
    assert result.returncode == 0, result.stderr
    assert same_table(out, score_reference)
    after = stamps(shards, "*")
    redone = [name for name, stamp in finished.items() if after.get(name) != stamp]
    assert redone == [], f"finished shard files were recomputed: {redone}"


# --- sample: one atomic SAMPLE_DIR ----------------------------------------------------------------------

SAMPLE_OPTIONS = ["--budget-tokens", "2e6", "--max-repeats", "4"]


@pytest.fixture(scope="module")
def sample_reference(
    large_corpus: Path, score_reference: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    out = tmp_path_factory.mktemp("sample-ref") / "sample"
    args = ["sample", str(large_corpus), "--scores", str(score_reference), "--out", str(out), *SAMPLE_OPTIONS]
    result = run_mixlab("-q", "--seed", "3", *args)
    assert result.returncode == 0, result.stderr
    return file_digest(out)


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_sample_interrupted_then_rerun(
    sig: int, large_corpus: Path, score_reference: Path, sample_reference: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "sample"
    args = ["-q", "--seed", "3", "sample", str(large_corpus), "--scores", str(score_reference)]
    args += ["--out", str(out), *SAMPLE_OPTIONS]
    code, stderr, workers = interrupt(args, file_appears(tmp_path, ".sample.*.tmp"), sig)
    interrupted_cleanly(sig, code, stderr, workers, tmp_path)
    assert not out.exists(), "sample left a partial SAMPLE_DIR"
    result = run_mixlab(*args)
    assert result.returncode == 0, result.stderr
    assert file_digest(out) == sample_reference
    assert temp_leftovers(tmp_path) == [], "the rerun did not remove the killed run's temporary"


# --- sweep: finished runs are kept, a partial run continues from its checkpoint ----------------------------

SWEEP_OPTIONS = ["--model", "tiny", "--tokenizer", "bpe:400", "--tokens-per-run", "16000", "--evals", "3"]
SWEEP_OPTIONS += ["--seq-len", "64", "--batch-size", "8", "--val-tokens", "512", "--threads", "1"]


@pytest.fixture(scope="module")
def sweep_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A small corpus, three mixtures, a shared cache (the bpe:400 tokenizer is trained once)."""
    root = tmp_path_factory.mktemp("sweep-in")
    corpus = root / "corpus"
    write_jsonl(corpus / "code" / "a.jsonl", stdlib_texts("code", 120))
    write_jsonl(corpus / "prose" / "a.jsonl", stdlib_texts("prose", 120))
    mixtures = root / "mixtures.csv"
    mixtures.write_text("name,code,prose\nm1,0.8,0.2\nm2,0.5,0.5\nm3,0.2,0.8\n")
    return corpus, mixtures, root / "cache"


def sweep_args(corpus: Path, mixtures: Path, out: Path) -> list[str]:
    return ["-q", "--seed", "0", "sweep", str(corpus), "--mixtures", str(mixtures), "--out", str(out)]


@pytest.fixture(scope="module")
def sweep_reference(sweep_inputs: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    corpus, mixtures, cache = sweep_inputs
    out = tmp_path_factory.mktemp("sweep-ref") / "sweep"
    result = run_mixlab(*sweep_args(corpus, mixtures, out), *SWEEP_OPTIONS, env={"MIXLAB_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    return (out / "runs.csv").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_sweep_interrupted_resumes_finished_runs_untouched(
    sig: int, sweep_inputs: tuple[Path, Path, Path], sweep_reference: str, tmp_path: Path
) -> None:
    corpus, mixtures, cache = sweep_inputs
    out = tmp_path / "sweep"
    args = [*sweep_args(corpus, mixtures, out), *SWEEP_OPTIONS]
    env = {"MIXLAB_CACHE": str(cache)}
    code, stderr, workers = interrupt(args, file_appears(out / "runs", "*/meta.json"), sig, env=env)
    interrupted_cleanly(sig, code, stderr, workers, tmp_path)
    finished = stamps(out / "runs", "*/meta.json")
    assert finished, "no run had finished when the sweep was interrupted"

    result = run_mixlab(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert (out / "runs.csv").read_text() == sweep_reference
    after = stamps(out / "runs", "*/meta.json")
    assert {name: after.get(name) for name in finished} == finished, "finished runs were trained again"
