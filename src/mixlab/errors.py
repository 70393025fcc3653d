"""Errors that map onto the CLI's exit codes.

`BadInput` is the user's problem (exit 2): its message is one line that names the file, row or field.
Anything else that escapes is ours (exit 1).

The library names its parameters in backticks (``BadInput("`alpha` 1.5: must be in [0, 1]")``); the CLI
prints each as the flag that sets it (`--alpha 1.5: must be in [0, 1]`, see `mixlab.commands.common.FLAGS`).
"""

from __future__ import annotations

import re

_PARAM = re.compile(r"`([a-z_][a-z0-9_]*)`")


class MixlabError(Exception):
    """Base class of mixlab's own errors (exit code 1 unless a subclass says otherwise)."""

    exit_code = 1


class _NamesParameters:
    """A one-line message that names parameters in backticks, which the CLI prints as its flags."""

    @property
    def params(self) -> list[str]:
        """The parameters the message names, in order (each written as `name`)."""
        return _PARAM.findall(str(self))

    def naming(self, rename: dict[str, str] | None = None) -> str:
        """The message with each `name` replaced by `rename(name)` (a CLI flag); unnamed ones lose the quotes."""
        rename = rename or {}
        return _PARAM.sub(lambda m: rename.get(m.group(1), m.group(1)), str(self))


class BadInput(_NamesParameters, MixlabError):
    """Invalid user input: a missing path, a malformed row, an unknown name. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class MixlabWarning(_NamesParameters, UserWarning):
    """What a run did that its user may not expect (documents repeated, a target share missed); the CLI
    prints it as one `warning:` line on stderr (silenced by `--quiet`)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class NotFittedError(MixlabError, RuntimeError):
    """An estimator was used before `fit` (or loading) gave it its learned state."""
