"""Helpers of the reliability suites: run the real `mixlab` script, build small real-text corpora, and
check that a failed or interrupted command left nothing behind."""

from __future__ import annotations

import functools
import json
import multiprocessing
import multiprocessing.forkserver
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def mixlab_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a `mixlab` subprocess: this checkout's sources first, offline, few threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("MIXLAB_QUIET", None)
    if extra:
        env.update(extra)
    return env


def mixlab_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "mixlab.cli", *args]


def run_mixlab(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `mixlab ARGS...` as a separate process (the real script, real exit code)."""
    return subprocess.run(
        mixlab_argv(*args),
        cwd=cwd,
        env=mixlab_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_mixlab_forked(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`mixlab ARGS...` in its own process forked from a server that has imported `mixlab.cli` once.

    The same entry point (`mixlab.cli:main`), environment, exit code and output streams as `run_mixlab`,
    without ~1 s of interpreter start-up and imports per call: for suites that run a command per case.
    Interrupt tests keep `run_mixlab` (the real script)."""
    with tempfile.TemporaryDirectory(prefix="mixlab-fork-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        child = _fork_server().Process(
            target=_forked_main,
            args=(list(args), str(cwd or os.getcwd()), mixlab_env(env), str(out), str(err)),
        )
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(["mixlab", *args], timeout)
        return subprocess.CompletedProcess(
            ["mixlab", *args],
            child.exitcode,
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
        )


# what most verbs import before they can refuse their input (not torch: a fork server must stay single-threaded)
FORK_SERVER_PRELOAD = [
    "mixlab.cli", "mixlab.laws.evaluate", "mixlab.laws.optimize", "mixlab.samplemix", "mixlab.entropy",
    "mixlab.corpus.reader", "pandas", "scipy.optimize", "pyarrow.parquet",
]  # fmt: skip


@functools.cache
def _fork_server() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(FORK_SERVER_PRELOAD)
    saved = dict(os.environ)
    os.environ.update(
        mixlab_env()
    )  # the server, and so every child, starts in a `mixlab` process's environment
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return context


def _forked_main(args: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["mixlab", *args]
    from mixlab.cli import main

    main(args)


def tree(root: Path) -> dict[str, int]:
    """Every file and directory under `root` (relative path -> size, -1 for directories)."""
    return {
        p.relative_to(root).as_posix(): (-1 if p.is_dir() else p.stat().st_size)
        for p in sorted(root.rglob("*"))
    }


def assert_one_line_cause(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """Exit 2 and exactly one stderr line `error: ...` that names every string in `names`."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (
        f"exit {result.returncode}, stderr:\n{result.stderr}\nstdout:\n{result.stdout}"
    )
    assert len(lines) == 1, f"expected a one-line cause, got {len(lines)} lines:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("error: "), line
    for name in names:
        assert name in line, f"{name!r} not named in: {line}"
    return line


def file_digest(root: Path) -> dict[str, str]:
    """Relative path -> blake2b of content, for every file under `root` (outputs compared byte for byte)."""
    import hashlib

    return {
        p.relative_to(root).as_posix(): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def temp_leftovers(root: Path) -> list[str]:
    """Files or directories that look like an atomic write's temporary (`.NAME.XXXX.tmp`)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.name.endswith(".tmp"))


# --- small corpora of real text (the Python standard library's own sources and docstrings) ----------------


@functools.cache
def _stdlib_files() -> tuple[Path, ...]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return tuple(
        sorted(p for p in stdlib.glob("*.py") if p.stat().st_size > 2000 and not p.name.startswith("_"))
    )


def stdlib_texts(kind: str, n: int, offset: int = 0) -> list[str]:
    """`n` real documents: 'code' = a chunk of a stdlib module, 'prose' = a module's comment lines as text."""
    files = _stdlib_files()
    out: list[str] = []
    i = offset
    while len(out) < n:
        source = files[i % len(files)].read_text(encoding="utf-8", errors="replace")
        i += 1
        if kind == "code":
            text = source[:1500]
        else:
            lines = [
                ln.strip().lstrip("#").strip() for ln in source.splitlines() if ln.strip().startswith("#")
            ]
            text = " ".join(lines)[:1500]
        if text.strip():
            out.append(text)
    return out


def write_jsonl(path: Path, texts: Sequence[str], field: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for t in texts:
            fh.write(json.dumps({field: t}) + "\n")
    return path


def make_corpus(
    root: Path, shards: int = 2, docs_per_shard: int = 20, domains: Sequence[str] = ("code", "prose")
):
    """A real-text corpus `root/<domain>/part-K.jsonl` (different text per shard)."""
    for d, domain in enumerate(domains):
        kind = "code" if d % 2 == 0 else "prose"
        for k in range(shards):
            write_jsonl(
                root / domain / f"part-{k:03d}.jsonl",
                stdlib_texts(kind, docs_per_shard, offset=(k * docs_per_shard + d * 7)),
            )
    return root


# --- interrupting a running command -----------------------------------------------------------------------


def interrupt(
    args: Sequence[str],
    ready: Callable[[psutil.Process], bool],
    sig: int,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, str, list[int]]:
    """Start `mixlab ARGS`, wait until `ready(process)` (polled), send `sig` to the main process only.

    Returns (exit code, stderr, pids of its descendants seen at the moment of the signal). Fails if the
    command finished before it was ready, which would make the interruption test vacuous.
    """
    proc = subprocess.Popen(
        mixlab_argv(*args), env=mixlab_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        me = psutil.Process(proc.pid)
        deadline = time.monotonic() + timeout
        while not ready(me):
            if proc.poll() is not None:
                raise AssertionError(f"finished (exit {proc.returncode}) before it could be interrupted")
            if time.monotonic() > deadline:
                raise AssertionError("never became ready to interrupt")
            time.sleep(0.05)
        descendants = [p.pid for p in me.children(recursive=True)]
        os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=timeout)
        return proc.returncode, stderr, descendants
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def alive(pids: Sequence[int], grace: float = 5.0) -> list[int]:
    """The pids among `pids` still running (not zombies) after waiting up to `grace` seconds."""
    deadline = time.monotonic() + grace
    while True:
        running = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    running.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.1)


def reading(root: Path, n: int = 1) -> Callable[[psutil.Process], bool]:
    """Ready when `n` processes of the command (itself or its workers) hold a file under `root` open: the
    pass is in the middle of reading its input, past start-up."""
    prefix = str(root.resolve())

    def ready(proc: psutil.Process) -> bool:
        holding = 0
        for p in [proc, *proc.children(recursive=True)]:
            try:
                holding += any(f.path.startswith(prefix) for f in p.open_files())
            except psutil.Error:
                continue
        return holding >= n

    return ready


def file_appears(path: Path, pattern: str = "*", count: int = 1) -> Callable[[psutil.Process], bool]:
    """Ready when `path` holds at least `count` entries matching `pattern` (a verb's progress files)."""
    return lambda _proc: path.is_dir() and len(list(path.glob(pattern))) >= count
