"""`mixlab corpus ...` through the installed `mixlab` script: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MIXLAB = str(Path(sys.executable).with_name("mixlab"))


def mixlab(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIXLAB_QUIET": "1", "COLUMNS": "200"}
    return subprocess.run([MIXLAB, *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_stats_on_the_demo_corpus(demo_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    done = mixlab(
        "--workers", "1", "corpus", "stats", str(demo_corpus), "--tokenizer", "gpt2", "--json", str(out)
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads(out.read_text())
    assert len(stats["domains"]) >= 8 and stats["tokenizer"] == "gpt2"
    for domain, values in stats["domains"].items():
        assert values["tokens"] > 0
        assert domain in done.stdout and f"{values['tokens']:,}" in done.stdout  # the table shows the counts
    assert sum(v["token_share"] for v in stats["domains"].values()) == pytest.approx(1.0)


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    done = mixlab("corpus", "stats", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing'}: corpus path does not exist"]

    bad = tmp_path / "c" / "web" / "a.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"text": "good"}\n{"text": broken}\n{"txt": "no text"}\n{"text": "good too"}\n')
    done = mixlab("--workers", "1", "corpus", "stats", str(tmp_path / "c"), "--tokenizer", "gpt2")
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"error: {bad}:2: malformed JSON")
    assert len(done.stderr.strip().splitlines()) == 1

    out = tmp_path / "s.json"
    done = mixlab(
        "--workers", "1", "corpus", "stats", str(tmp_path / "c"), "--skip-bad-rows", "--json", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "skipped 2 bad rows" in done.stdout
    stats = json.loads(out.read_text())
    assert stats["total"]["documents"] == 2 and stats["total"]["skipped"] == 2

    for args, cause in [
        (["--engine", "spark", "corpus", "stats", str(tmp_path / "c")], "unknown engine"),
        (["corpus", "demo", "--out", str(tmp_path / "d"), "--max-mb-per-domain", "0"], "must be positive"),
    ]:
        done = mixlab(*args)
        assert done.returncode == 2 and cause in done.stderr, (args, done.stderr)
    assert not (tmp_path / "d").exists()


def test_help_has_examples() -> None:
    for verb in ("stats", "demo"):
        done = mixlab("corpus", verb, "--help")
        assert done.returncode == 0 and f"Example: mixlab corpus {verb}" in done.stdout
