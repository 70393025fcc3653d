"""Errors that map onto the CLI's exit codes.

`BadInput` is the user's problem (exit 2): its message is one line that names the file, row or field.
Anything else that escapes is ours (exit 1).
"""

from __future__ import annotations


class MixlabError(Exception):
    """Base class of mixlab's own errors (exit code 1 unless a subclass says otherwise)."""

    exit_code = 1


class BadInput(MixlabError):
    """Invalid user input: a missing path, a malformed row, an unknown name. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
