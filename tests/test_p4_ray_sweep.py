"""`mixlab --engine ray sweep`: one Ray task per run on the loopback two-node cluster of test_cluster.py.

runs.csv must be byte-identical to the local sweep's under the same seed, also when a run's worker process
is killed in the middle of the run (Ray retries the task, which resumes from the run's checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from mixcli import run_mixlab, stdlib_texts, write_jsonl
from test_cluster import RAY_ENV, Cluster, cluster  # noqa: F401 - the cluster fixture, reused

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RUNS = ("first", "second", "third")
MIXTURES = "name,code,prose,tests\nfirst,0.6,0.2,0.2\nsecond,0.2,0.6,0.2\nthird,0.2,0.2,0.6\n"
# 40 steps of 8 x 32 tokens, 4 evaluations (local_runs has the same settings): a second or so a run on
# idle cores, killed between two evaluations
PROXY = ["--model", "tiny", "--tokenizer", "bpe:512", "--tokens-per-run", "10240", "--seq-len", "32"]
PROXY += ["--batch-size", "8", "--val-tokens", "512", "--threads", "1", "--precision", "fp32"]
TRAIN = [*PROXY, "--evals", "4"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("raysweep")
    for domain, kind, offset in (("code", "code", 0), ("prose", "prose", 0), ("tests", "code", 300)):
        write_jsonl(root / "corpus" / domain / "part-0.jsonl", stdlib_texts(kind, 40, offset))
    (root / "mixtures.csv").write_text(MIXTURES)
    env = {**RAY_ENV, "MIXLAB_CACHE": str(root / "cache")}
    return root / "corpus", root / "mixtures.csv", env


def sweep(inputs, out: Path, *engine: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    corpus, mixtures, env = inputs
    args = ("--seed", "3", *engine, "sweep", str(corpus), "--mixtures", str(mixtures), "--out", str(out))
    result = run_mixlab(*args, *TRAIN, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def local_runs(inputs, tmp_path_factory: pytest.TempPathFactory) -> bytes:  # noqa: ANN001
    """runs.csv of the same sweep on the local engine, run in this process (no second torch start-up)."""
    from mixlab.proxy import TrainConfig, run_sweep

    corpus, mixtures, env = inputs
    out = tmp_path_factory.mktemp("local") / "sweep"
    config = TrainConfig(seed=3, tokens=10240, seq_len=32, batch_size=8, evals=4, threads=1, precision="fp32")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MIXLAB_CACHE", env["MIXLAB_CACHE"])
        mp.setenv("MIXLAB_QUIET", "1")
        run_sweep(corpus, mixtures, out, config, tokenizer="bpe:512", val_tokens=512)
    return (out / "runs.csv").read_bytes()


def kill_when_checkpointed(
    ray_cluster: Cluster, run_dir: Path, stop: threading.Event, killed: list[int]
) -> None:
    """SIGKILL the worker process training `run_dir` (its process title names the run's task) once the run
    has written a checkpoint and is not finished."""
    title = f"ray::sweep run {run_dir.name}"
    while not stop.is_set():
        if (run_dir / "checkpoint.pt").is_file() and not (run_dir / "meta.json").is_file():
            for proc in ray_cluster.processes():
                try:
                    if " ".join(proc.cmdline()).strip() == title:
                        proc.send_signal(signal.SIGKILL)
                        killed.append(proc.pid)
                        return
                except psutil.Error:
                    continue
        time.sleep(0.02)


def test_a_run_whose_worker_is_killed_resumes_and_runs_csv_is_unchanged(
    cluster: Cluster,  # noqa: F811
    inputs,  # noqa: ANN001
    local_runs: bytes,
    tmp_path: Path,
) -> None:
    out = tmp_path / "sweep"
    stop, killed = threading.Event(), []
    killer = threading.Thread(
        target=kill_when_checkpointed, args=(cluster, out / "runs" / RUNS[0], stop, killed), daemon=True
    )
    killer.start()
    try:
        log = sweep(inputs, out, "--engine", "ray", "--ray-address", cluster.address).stderr
    finally:
        stop.set()
        killer.join(5)
    # the identity with a local sweep holds for a sweep with a killed worker (so for one without)
    assert "3 of 3 runs to train, as tasks of 1 CPU(s) each" in log
    assert local_runs.count(b"\n") == 1 + len(RUNS) * 4 * 3
    metas = [json.loads((out / "runs" / r / "meta.json").read_text()) for r in RUNS]
    assert all(m["threads"] == 1 and m["device"] == "cpu" for m in metas)
    assert killed, "the first run's task was not caught between a checkpoint and its end"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    meta = json.loads((out / "runs" / RUNS[0] / "meta.json").read_text())
    assert meta["resumed_from_step"] in (10, 20, 30), meta["resumed_from_step"]  # from a checkpoint
    finished = re.findall(r"run (\w+) finished", log)
    assert sorted(finished) == sorted(RUNS), log
    assert (out / "runs.csv").read_bytes() == local_runs, f"tasks finished in the order {finished}"
    # Run again: every run is done, no task is started, runs.csv stays
    again = sweep(inputs, out, "--engine", "ray", "--ray-address", cluster.address)
    trained = {cells[0]: cells[-1] for line in again.stdout.splitlines()
               if len(cells := [c.strip() for c in line.strip("│").split("│")]) == 4 and cells[0] in RUNS}  # fmt: skip
    assert trained == dict.fromkeys(RUNS, "before"), again.stdout  # the table's `trained` column
    assert "0 of 3 runs to train" in again.stderr
    assert (out / "runs.csv").read_bytes() == local_runs


def test_runs_no_node_can_hold_are_refused_before_anything_is_written(
    cluster: Cluster,  # noqa: F811
    inputs,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    corpus, mixtures, env = inputs
    out = tmp_path / "sweep"
    args = ["--engine", "ray", "--ray-address", cluster.address, "sweep", str(corpus), "--mixtures"]
    args += [str(mixtures), "--out", str(out), *TRAIN, "--threads", "2"]  # the last --threads counts
    result = run_mixlab(*args, env=env, timeout=240)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "task of 2 CPU(s)" in result.stderr and "--threads" in result.stderr, result.stderr[-3000:]
    assert not out.exists()


def watch_for_task(ray_cluster: Cluster, title: str, stop: threading.Event, seen: list[int]) -> None:
    """Note the pid of a process of the cluster whose title is `title` (a task running), until `stop`."""
    while not stop.is_set() and not seen:
        for proc in ray_cluster.processes():
            with contextlib.suppress(psutil.Error):
                if " ".join(proc.cmdline()).strip() == title:
                    seen.append(proc.pid)
        time.sleep(0.05)


def test_doremi_on_the_cluster_is_one_task_with_the_local_weights(
    cluster: Cluster,  # noqa: F811
    inputs,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    from mixlab.corpus import Corpus, load_tokenizer
    from mixlab.proxy import TrainConfig, prepare_streams
    from mixlab.proxy.doremi import run_doremi

    corpus, _, env = inputs
    config = TrainConfig(seed=3, tokens=10240, seq_len=32, batch_size=8, evals=1, threads=1, precision="fp32")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MIXLAB_CACHE", env["MIXLAB_CACHE"])
        mp.setenv("MIXLAB_QUIET", "1")
        c = Corpus.open(corpus)
        streams = prepare_streams(c, load_tokenizer("bpe:512", corpus=c), val_tokens=512)
        local = run_doremi(streams, tmp_path / "local", config)
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=watch_for_task, args=(cluster, "ray::doremi", stop, seen), daemon=True)
    watcher.start()
    try:
        args = ["--seed", "3", "--engine", "ray", "--ray-address", cluster.address, "doremi", str(corpus)]
        result = run_mixlab(*args, "--out", str(tmp_path / "ray"), *PROXY, env=env, timeout=240)
    finally:
        stop.set()
        watcher.join(5)
    assert result.returncode == 0, result.stderr[-3000:]
    assert seen, "no `doremi` task ran on the cluster"
    for name in ("mixture.json", "weights.csv"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    ray_meta = json.loads((tmp_path / "ray" / "doremi.json").read_text())
    assert ray_meta["reference_losses"] == local.meta["reference_losses"]
    assert ray_meta["proxy_losses"] == local.meta["proxy_losses"]
