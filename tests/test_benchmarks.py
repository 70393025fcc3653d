"""The benchmark runner works end to end on its cheapest benchmark (numbers are reported, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mixcli import REPO, mixlab_env


def test_run_all_quick_reader_throughput(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--quick", "--only", "reader_throughput"]
        + ["--out", str(out)],
        env=mixlab_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())["reader_throughput"]
    assert result["status"] == "ok" and result["quick"] is True
    for key in ("ratio", "peak_rss_mb", "time_growth_2x", "time_growth_4x", "memory_growth_4x"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert "reader_throughput: ok" in proc.stdout


def test_run_all_rejects_unknown_benchmark(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--only", "no_such_bench"]
        + ["--out", str(tmp_path / "r.json")],
        env=mixlab_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "no_such_bench" in proc.stderr
    assert not (tmp_path / "r.json").exists()
