"""`mixlab sample` says what it did: documents repeated past the pool, the default cap of 4 copies
(`--max-repeats none` lifts it), and target vs realised shares with a warning per missed domain."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mixcli import assert_one_line_cause, make_corpus, run_mixlab
from mixlab.errors import MixlabWarning
from mixlab.samplemix.sample import SampleConfig, sample_corpus


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple[Path, Path, int]:
    root = tmp_path_factory.mktemp("scored")
    corpus = make_corpus(root / "corpus", shards=2, docs_per_shard=5)
    scores = root / "scores.parquet"
    args = ["-q", "--workers", "1", "score", str(corpus), "--out", str(scores), "--annotate-n", "20"]
    done = run_mixlab(*args, "--clusters", "2", env={"MIXLAB_CACHE": str(root / "cache")})
    assert done.returncode == 0, done.stderr
    pool = int(pq.read_table(scores, columns=["tokens"]).column(0).to_numpy().sum())
    return corpus, scores, pool


def _sample(corpus: Path, scores: Path, out: Path, *extra: str):
    return run_mixlab(
        "--workers", "1", "sample", str(corpus), "--scores", str(scores), "--out", str(out), *extra
    )


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def test_budget_over_pool_warns_and_caps_at_four(scored, tmp_path) -> None:
    corpus, scores, pool = scored
    done = _sample(corpus, scores, tmp_path / "s", "--budget-tokens", str(2 * pool))
    assert done.returncode == 0, done.stderr
    (line,) = _warnings(done.stderr)
    assert "exceeds the pool" in line and "documents repeat" in line and "--max-repeats" in line
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["max_repeats"] == 4
    assert max(int(c) for c in summary["repeats_histogram"]) <= 4
    below = _sample(corpus, scores, tmp_path / "b", "--budget-tokens", str(pool // 2))
    assert below.returncode == 0 and _warnings(below.stderr) == [], below.stderr
    quiet = run_mixlab("-q", *_sample_args(corpus, scores, tmp_path / "q", str(2 * pool)))
    assert quiet.returncode == 0 and quiet.stderr.strip() == "" and quiet.stdout.strip() == "", quiet


def _sample_args(corpus: Path, scores: Path, out: Path, budget: str) -> list[str]:
    return [
        "--workers",
        "1",
        "sample",
        str(corpus),
        "--scores",
        str(scores),
        "--out",
        str(out),
        "--budget-tokens",
        budget,
    ]


def test_max_repeats_none_lifts_the_cap(scored, tmp_path) -> None:
    corpus, scores, pool = scored
    capped = _sample(corpus, scores, tmp_path / "c", "--budget-tokens", str(6 * pool))
    assert_one_line_cause(capped, "--max-repeats")
    assert not (tmp_path / "c").exists()
    lifted = _sample(
        corpus, scores, tmp_path / "n", "--budget-tokens", str(6 * pool), "--max-repeats", "none"
    )
    assert lifted.returncode == 0, lifted.stderr
    summary = json.loads((tmp_path / "n" / "summary.json").read_text())
    assert summary["max_repeats"] is None and max(int(c) for c in summary["repeats_histogram"]) > 4
    for bad in ("0", "four", "2.5"):
        assert_one_line_cause(
            _sample(corpus, scores, tmp_path / "x", "--budget-tokens", "100", "--max-repeats", bad),
            "--max-repeats",
        )


def test_target_vs_realised_table_and_misses(scored, tmp_path) -> None:
    corpus, scores, _ = scored
    target = tmp_path / "target.json"
    target.write_text(json.dumps({"name": "t", "weights": {"code": 0.7, "prose": 0.3}}))
    done = run_mixlab(
        "--json", "-", *_sample_args(corpus, scores, tmp_path / "s", "400"), "--target-mixture", str(target)
    )
    assert done.returncode == 0, done.stderr
    (table,) = json.loads(done.stdout)["tables"]
    rows = {row["domain"]: row for row in table["rows"]}
    assert table["columns"] == ["domain", "share before", "target", "share after", "sampled tokens"]
    assert rows["code"]["target"] == 0.7 and rows["prose"]["target"] == 0.3
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    missed = {d for d, v in summary["domains"].items() if abs(v["after"] - v["target"]) > 0.01 * v["target"]}
    assert missed, "a 400-token budget over whole documents cannot hit 0.7/0.3 within 1 %"
    warned = {line.split("domain ")[1].split(":")[0] for line in _warnings(done.stderr)}
    assert warned == missed


def test_library_warns_with_parameter_names(scored, tmp_path) -> None:
    corpus, scores, pool = scored
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = sample_corpus(corpus, scores, tmp_path / "s", SampleConfig(budget_tokens=3 * pool))
    (warning,) = [w.message for w in caught if isinstance(w.message, MixlabWarning)]
    assert warning.params == ["budget", "max_repeats"]
    assert summary["max_repeats"] == 4 and "target" not in summary["domains"]["code"]
