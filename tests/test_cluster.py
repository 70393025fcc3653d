"""A real multi-process Ray cluster on loopback: a head node and a worker node (`ray start`, 1 CPU each).

Corpus passes run with `--engine ray --ray-address 127.0.0.1:PORT` must give byte-identical outputs to the
local engine, and must survive a Ray worker process killed in the middle of a task (Ray retries the task).

Cleanup kills exactly the processes of this cluster (found by its private --temp-dir), never `ray stop`, which
would also stop every other Ray runtime on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from mixcli import file_digest, mixlab_argv, mixlab_env, run_mixlab, stdlib_texts, write_jsonl

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RAY = Path(sys.executable).with_name("ray")
# A private loopback cluster: no token auth (a token in ~/.ray would otherwise switch it on), no usage stats.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    address: str
    temp_dir: Path
    worker_node_port: int  # --node-manager-port of the worker node: finds its raylet

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: those naming its temp dir, and all their descendants."""
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            try:
                cmdline = proc.info["cmdline"] or []
                if proc.pid != os.getpid() and any(f"={self.temp_dir}" in arg for arg in cmdline):
                    found[proc.pid] = proc
                    found.update((c.pid, c) for c in proc.children(recursive=True))
            except psutil.Error:
                continue
        return list(found.values())

    def worker_node_raylet(self) -> psutil.Process:
        for proc in self.processes():
            try:
                if f"--node_manager_port={self.worker_node_port}" in proc.cmdline():
                    return proc
            except psutil.Error:
                continue
        raise AssertionError("the worker node's raylet is not running")


def ray_start(*args: str) -> None:
    proc = subprocess.run(
        [str(RAY), "start", *args, "--num-cpus", "1", "--object-store-memory", str(80 << 20)]
        + ["--node-ip-address", "127.0.0.1", "--disable-usage-stats"],
        env=mixlab_env(RAY_ENV),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not RAY.exists():
        pytest.skip(f"no `ray` executable next to {sys.executable} (install mixlab[ray])")
    temp_dir = Path(tempfile.mkdtemp(prefix="mixlab-ray-"))
    port, worker_port = free_port(), free_port()
    c = Cluster(f"127.0.0.1:{port}", temp_dir, worker_port)
    try:
        ray_start("--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", str(temp_dir))
        ray_start(
            "--address", c.address, "--node-manager-port", str(worker_port), "--temp-dir", str(temp_dir)
        )
        yield c
    finally:
        for proc in c.processes():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(c.processes(), timeout=10)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 shards of real text, ~1 MB: enough tasks for both nodes, each a second or so of tokenizing."""
    root = tmp_path_factory.mktemp("cluster") / "corpus"
    for d, domain in enumerate(("code", "prose")):
        for k in range(4):
            write_jsonl(root / domain / f"part-{k}.jsonl", stdlib_texts(("code", "prose")[d], 150, k * 150))
    return root


def stats_json(tmp: Path, corpus: Path, *global_args: str) -> str:
    out = tmp / "stats.json"
    result = run_mixlab("-q", *global_args, "corpus", "stats", str(corpus), "--json", str(out), env=RAY_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return out.read_text()


@pytest.fixture(scope="module")
def local_stats(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return stats_json(tmp_path_factory.mktemp("local"), corpus, "--workers", "1")


def test_corpus_stats_on_the_cluster_matches_local(
    cluster: Cluster, corpus: Path, local_stats: str, tmp_path: Path
) -> None:
    assert stats_json(tmp_path, corpus, "--engine", "ray", "--ray-address", cluster.address) == local_stats


def kill_first_busy_task(cluster: Cluster, stop: threading.Event, killed: list[int]) -> None:
    """Kill (SIGKILL) the first worker process of the worker node caught running a map task."""
    raylet = cluster.worker_node_raylet()
    while not stop.is_set():
        for proc in raylet.children(recursive=True):
            try:
                if proc.name().startswith("ray::Map") and sum(proc.cpu_times()[:2]) > 0.3:
                    proc.send_signal(signal.SIGKILL)
                    killed.append(proc.pid)
                    return
            except psutil.Error:
                continue
        time.sleep(0.05)


def test_a_killed_worker_is_retried_and_the_output_is_identical(
    cluster: Cluster, corpus: Path, local_stats: str, tmp_path: Path
) -> None:
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=kill_first_busy_task, args=(cluster, stop, killed), daemon=True)
    killer.start()
    try:
        out = stats_json(tmp_path, corpus, "--engine", "ray", "--ray-address", cluster.address)
    finally:
        stop.set()
        killer.join(5)
    assert killed, "no task ran on the worker node long enough to be killed"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    assert out == local_stats


def test_an_engine_without_an_address_stays_private_beside_a_running_cluster(cluster: Cluster) -> None:
    """`ray start` with the default temp dir records its address in $TMPDIR/ray/ray_current_cluster, and
    `ray.init()` without an address joins that cluster (and refuses num_cpus); mixlab's engine without
    --ray-address starts its own runtime. The record is written here as `ray start` writes it, in a short
    directory (Ray's socket paths are limited to 107 bytes)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="mx-"))
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(cluster.address)
    code = (
        "import ray; from mixlab.engine.ray import RayEngine\n"
        "with RayEngine(workers=1):\n"
        "    print(ray.get_runtime_context().gcs_address)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=mixlab_env({**RAY_ENV, "TMPDIR": str(tmp_path)}),
        capture_output=True,
        text=True,
        timeout=180,
    )
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] != cluster.address


def test_bad_input_on_the_cluster_is_still_one_line(cluster: Cluster, corpus: Path, tmp_path: Path) -> None:
    broken = tmp_path / "corpus"
    shutil.copytree(corpus, broken)
    shard = broken / "prose" / "part-3.jsonl"
    shard.write_bytes(shard.read_bytes() + b'{"text": "unterminated\n')
    result = subprocess.run(
        mixlab_argv(
            "-q", "--engine", "ray", "--ray-address", cluster.address, "corpus", "stats", str(broken)
        ),
        env=mixlab_env(RAY_ENV),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{shard}:" in result.stderr and "malformed JSON" in result.stderr


def run_both(cluster: Cluster, tmp: Path, name: str, *args: str) -> tuple[Path, Path]:
    """`mixlab ARGS` with `--out OUT` on the local engine and on the cluster; returns both outputs."""
    outs = []
    for engine in (["--workers", "1"], ["--engine", "ray", "--ray-address", cluster.address]):
        out = tmp / engine[0].strip("-") / name
        result = run_mixlab("-q", "--seed", "1", *engine, *args, "--out", str(out), env=RAY_ENV)
        assert result.returncode == 0, f"{engine}: {result.stderr[-3000:]}"
        outs.append(out)
    return outs[0], outs[1]


def test_entropy_on_the_cluster_matches_local(cluster: Cluster, corpus: Path, tmp_path: Path) -> None:
    local, ray = run_both(cluster, tmp_path, "entropy", "entropy", str(corpus), "--seq-len", "256")
    assert file_digest(local) == file_digest(ray) and (local / "entropy.json").is_file()


def test_score_and_sample_on_the_cluster_match_local(cluster: Cluster, corpus: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    args = ["score", str(corpus), "--annotate-n", "100", "--clusters", "4"]
    local, ray = run_both(cluster, tmp_path, "scores.parquet", *args)
    assert pq.read_table(local).equals(pq.read_table(ray))
    args = ["sample", str(corpus), "--scores", str(local), "--budget-tokens", "3e5"]
    local, ray = run_both(cluster, tmp_path, "sample", *args)
    assert file_digest(local) == file_digest(ray) and (local / "summary.json").is_file()
