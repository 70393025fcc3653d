"""Files: atomic writes, fingerprints of settings, and the one resume rule (`WorkDir`).

Atomic writes: every output goes to a temporary sibling and is renamed into place on success,
so an interrupted or failed command never leaves a half-written file or directory behind.

A temporary is named `.{name}.{pid}.{random}.tmp` after its target and the writing process. A process killed
outright (SIGKILL) cannot delete its temporary, so every atomic write first removes the temporaries of the
same target whose process is gone; a live process's temporary is never touched.

The resume rule: resumable work (a work directory, a checkpoint) belongs to one set of settings, named by
`fingerprint(settings)`. Same fingerprint: resume. Different (or unreadable): start afresh, with one log line.
The owner removes a work directory once its outputs are complete, unless the directory holds an output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mixlab.errors import BadInput
from mixlab.progress import log


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete `.{path.name}.{pid}.{random}.tmp` siblings left by processes that no longer exist."""
    prefix = f".{path.name}."
    for entry in os.scandir(path.parent):
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        parts = entry.name[len(prefix) : -len(".tmp")].split(".")
        # exactly pid.random: `.a.5.{pid}.{random}.tmp` belongs to target `a.5`, not `a`
        if len(parts) != 2 or not parts[0].isdigit() or _pid_alive(int(parts[0])):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask can only set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_name(path: Path) -> Path:
    """A fresh temporary name for `path`. The name is chosen before the file or directory is created, so a
    caller that creates it inside its `try` can always remove it, even when an interrupt (SIGTERM raised as
    KeyboardInterrupt) lands right after the creation."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it onto `path`, on error delete it.

    The final file gets the usual permissions (0666 minus the umask), not the temporary's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp_path = _temp_name(path)
    try:
        os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory next to `path`; on success it replaces `path` as a whole.

    The final directory gets the usual permissions (0777 minus the umask), not the temporary's 0700.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp_path = _temp_name(path)
    try:
        os.mkdir(tmp_path, 0o700)
        yield tmp_path
        os.chmod(tmp_path, 0o777 & ~_umask())
        if path.exists():
            old = _temp_name(path)  # its own name: two processes replacing `path` never share one
            os.replace(path, old)
            os.replace(tmp_path, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp_path, path)
    except BaseException:
        shutil.rmtree(tmp_path, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike[str], what: str = "JSON") -> Any:
    """Parse a user-supplied JSON file; a missing or malformed file is BadInput naming it (exit 2)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: {what} file does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})") from None


def fingerprint(settings: Any, digest_size: int = 10) -> str:
    """Hex blake2b of `settings` as canonical JSON (sorted keys): equal settings, equal fingerprint."""
    return hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=digest_size).hexdigest()


class WorkDir:
    """A directory of resumable work that belongs to one set of settings, recorded as JSON in `record`.

    work = WorkDir(out.with_name(out.name + ".work"), {"corpus": corpus.fingerprint(), ...})
    resumed = work.open()   # True: same settings, the finished pieces inside are reused
    ...
    work.remove()           # when the outputs are complete (unless the directory holds one)
    """

    def __init__(self, path: str | os.PathLike[str], settings: Any, record: str = "settings.json") -> None:
        self.path = Path(path)
        self.settings = settings
        self.record = self.path / record
        self.fingerprint = fingerprint(settings)

    def open(self) -> bool:
        """Create the directory; True when it already held work of the same settings (resume)."""
        if self.record.is_file():
            try:
                same = fingerprint(json.loads(self.record.read_text(encoding="utf-8"))) == self.fingerprint
            except (json.JSONDecodeError, UnicodeDecodeError):
                same = False
            if same:
                return True
        if self.path.exists() and any(self.path.iterdir()):
            log(f"{self.path}: work of other settings; starting it afresh")
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.record, self.settings)
        return False

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
