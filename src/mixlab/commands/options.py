"""Checks of numeric CLI options, run by typer while it parses the command line: a NaN, an infinity, a zero
or a negative where it means nothing, or an integer too large for what it multiplies, exits 2 with one line
naming the flag, before any work is done or any file written.

    samples: Annotated[int, typer.Option(callback=integer(1, MAX_SAMPLES))] = 100_000
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import typer

from mixlab.errors import BadInput

Callback = Callable[[typer.CallbackParam, Any], Any]


def flag_name(param: typer.CallbackParam) -> str:
    return max(param.opts, key=len) if param.opts else str(param.name)


def check_number(value: float, flag: str, minimum: float = 0.0, strict: bool = True) -> float:
    """`value` if it is finite and above `minimum` (or at it, `strict=False`); else BadInput naming `flag`."""
    ok = math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        bound = f"> {minimum:g}" if strict else f"≥ {minimum:g}"
        raise BadInput(f"{flag} {value:g}: must be a finite number {bound}")
    return value


def check_integer(value: int, flag: str, minimum: int, maximum: int) -> int:
    if not minimum <= value <= maximum:
        raise BadInput(f"{flag} {value}: must be an integer in [{minimum}, {maximum}]")
    return value


def number(minimum: float = 0.0, strict: bool = True) -> Callback:
    """Callback: a finite float > minimum (≥ with `strict=False`); None (option not given) passes."""

    def callback(param: typer.CallbackParam, value: float | None) -> float | None:
        return value if value is None else check_number(value, flag_name(param), minimum, strict)

    return callback


def integer(minimum: int, maximum: int) -> Callback:
    """Callback: an integer in [minimum, maximum]; None (option not given) passes."""

    def callback(param: typer.CallbackParam, value: int | None) -> int | None:
        return value if value is None else check_integer(value, flag_name(param), minimum, maximum)

    return callback


# Seeds go to numpy, torch and LightGBM; 32 bits is what all of them take as given.
MAX_SEED = 2**32 - 1
# Workers are processes (or Ray tasks) of one machine's pool; more than this is a typo, not a machine.
MAX_WORKERS = 1024


def count_or_none(minimum: int, maximum: int) -> Callback:
    """Callback: an integer in [minimum, maximum], or `none` (no limit, None)."""

    def callback(param: typer.CallbackParam, value: str | None) -> int | None:
        if value is None or value.strip().lower() == "none":
            return None
        try:
            number = int(value)
        except ValueError:
            raise BadInput(f"{flag_name(param)} must be an integer or none, got {value!r}") from None
        return check_integer(number, flag_name(param), minimum, maximum)

    return callback


def fraction(upper_open: bool = True) -> Callback:
    """Callback: a number in [0, 1) ([0, 1] with `upper_open=False`); None (option not given) passes."""

    def callback(param: typer.CallbackParam, value: float | None) -> float | None:
        if value is None:
            return value
        ok = math.isfinite(value) and value >= 0 and (value < 1 if upper_open else value <= 1)
        if not ok:
            raise BadInput(f"{flag_name(param)} {value:g}: must be in [0, 1{')' if upper_open else ']'}")
        return value

    return callback


def renamed(new: str, check: Callback | None = None) -> Callback:
    """Callback of a hidden old spelling of an option: warns, then checks the value like `new`'s (`check`)."""

    def callback(param: typer.CallbackParam, value: Any) -> Any:
        if value is None:
            return value
        from mixlab.progress import warn

        warn(f"{flag_name(param)} is deprecated; it is now {new}")
        return value if check is None else check(param, value)

    return callback


def either(value: Any, old: Any, flag: str, old_flag: str) -> Any:
    """The value of an option given under its name or its old spelling (not both)."""
    if value is not None and old is not None:
        raise BadInput(f"{old_flag} is the old spelling of {flag}: give one of them")
    return old if old is not None else value
