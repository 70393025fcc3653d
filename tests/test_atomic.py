"""Atomic writes: temporaries named after target and pid, stale ones (dead pid) removed on the next write,
a live process's kept; final files and directories get umask permissions, not mkstemp's 0600."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mixlab
from mixlab.files import atomic_dir, atomic_path, write_json


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of another process that is running for the duration of the test."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def test_temporary_is_named_after_target_and_pid(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "out.json") as tmp:
        assert tmp.name.startswith(f".out.json.{os.getpid()}.") and tmp.name.endswith(".tmp")
        tmp.write_text("{}")
    with atomic_dir(tmp_path / "d") as tmp:
        assert tmp.name.startswith(f".d.{os.getpid()}.") and tmp.name.endswith(".tmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "out.json"]


def test_stale_temporaries_of_dead_processes_are_removed(
    tmp_path: Path, dead_pid: int, live_pid: int
) -> None:
    stale_file = tmp_path / f".out.json.{dead_pid}.abc123.tmp"
    stale_file.write_text("half")
    stale_dir = tmp_path / f".out.json.{dead_pid}.def456.tmp"
    (stale_dir / "sub").mkdir(parents=True)
    (stale_dir / "sub" / "x").write_text("x")
    kept = [
        tmp_path / f".out.json.{live_pid}.ghi789.tmp",  # another live process is writing it right now
        tmp_path / f".out.json.5.{dead_pid}.jkl012.tmp",  # the temporary of target `out.json.5`
        tmp_path / f".other.{dead_pid}.mno345.tmp",  # another target's
    ]
    for path in kept:
        path.write_text("busy")
    write_json(tmp_path / "out.json", {"a": 1})
    assert not stale_file.exists() and not stale_dir.exists()
    assert all(path.read_text() == "busy" for path in kept)
    assert (tmp_path / "out.json").read_text() == '{\n  "a": 1\n}\n'

    (tmp_path / f".out.json.{dead_pid}.pqr678.tmp").mkdir()
    with atomic_dir(tmp_path / "out.json") as tmp:
        (tmp / "f").write_text("new")
    assert not (tmp_path / f".out.json.{dead_pid}.pqr678.tmp").exists()
    assert (tmp_path / "out.json" / "f").read_text() == "new"
    assert all(path.exists() for path in kept)


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_sigkilled_write_is_cleaned_up_by_the_next(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out"
    enter = "atomic_path(t) as tmp:\n    tmp.write_text('x')" if kind == "file" else "atomic_dir(t) as tmp:"
    code = (
        "import os, signal, sys\n"
        "from mixlab.files import atomic_dir, atomic_path\n"
        "t = sys.argv[1]\n"
        f"with {enter}\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(mixlab.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", code, str(target)], env=env, capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert [p.name.endswith(".tmp") for p in tmp_path.iterdir()] == [True]
    with atomic_path(target) as tmp:
        tmp.write_text("done")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and target.read_text() == "done"


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_final_files_and_dirs_get_umask_permissions(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "report.json", {})
        with atomic_path(tmp_path / "report.html") as tmp:
            tmp.write_text("<html></html>")
        with atomic_dir(tmp_path / "sample") as tmp:
            (tmp / "data.txt").write_text("x")
    finally:
        os.umask(previous)
    for name in ("report.json", "report.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "sample").stat().st_mode) == 0o777 & ~umask


def test_fingerprint_is_canonical_json_blake2b() -> None:
    import hashlib
    import json

    from mixlab.files import fingerprint

    settings = {"b": [1, 2], "a": {"y": None, "x": 0.5}}
    expected = hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=10).hexdigest()
    assert fingerprint(settings) == expected
    assert fingerprint({"a": {"x": 0.5, "y": None}, "b": [1, 2]}) == expected
    assert fingerprint({**settings, "b": [2, 1]}) != expected


def test_workdir_resumes_same_settings_and_starts_afresh_on_others(tmp_path: Path) -> None:
    from mixlab.files import WorkDir

    path = tmp_path / "out.work"
    assert WorkDir(path, {"corpus": "c1", "seed": 0}).open() is False
    (path / "piece").write_text("done")
    assert WorkDir(path, {"seed": 0, "corpus": "c1"}).open() is True
    assert (path / "piece").read_text() == "done"
    assert WorkDir(path, {"corpus": "c2", "seed": 0}).open() is False
    assert sorted(p.name for p in path.iterdir()) == ["settings.json"]
    (path / "settings.json").write_text("{not json")
    (path / "piece").write_text("stale")
    assert WorkDir(path, {"corpus": "c2", "seed": 0}).open() is False
    assert not (path / "piece").exists()
    WorkDir(path, {}).remove()
    assert not path.exists()
