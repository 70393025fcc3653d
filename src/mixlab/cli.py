"""The `mixlab` command line: a thin typer app. Each area registers its verbs from `mixlab.commands`.

Exit codes: 0 ok, 2 bad input (one-line cause naming the file/row/field), 1 internal error.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from typing import Annotated

import typer

from mixlab.commands import common
from mixlab.commands.options import MAX_SEED, MAX_WORKERS, integer
from mixlab.errors import BadInput, MixlabError

app = typer.Typer(
    name="mixlab",
    help="Decide what a language model is pre-trained on: domain mixtures (BiMix) and documents (SampleMix).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    engine: Annotated[
        str, typer.Option(help="Executor of corpus passes: local (process pool) or ray.")
    ] = "local",
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (default: cores, at most 8).", callback=integer(1, MAX_WORKERS)),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Join an existing Ray cluster, e.g. 'auto' or 'HOST:6379'.")
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed for every random choice; same seed, same output.", callback=integer(0, MAX_SEED)
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or chatter.")] = False,
) -> None:
    if quiet:
        os.environ["MIXLAB_QUIET"] = "1"
    ctx.obj = common.Settings(engine=engine, workers=workers, ray_address=ray_address, seed=seed, quiet=quiet)


def _register() -> None:
    """Every module of `mixlab.commands` that defines `register(app)` adds its verbs."""
    import importlib
    import pkgutil

    import mixlab.commands

    for info in sorted(pkgutil.iter_modules(mixlab.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"mixlab.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(app)


_register()


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so atomic writes delete their temporaries and pools stop their workers.

    A second SIGTERM while cleaning up kills at once (the default action is restored first)."""
    signal.signal(signum, signal.SIG_DFL)
    raise KeyboardInterrupt(f"signal {signum}")


def _redeliver_dropped_interrupt(unraisable: sys.UnraisableHookArgs) -> None:
    """CPython drops an exception raised in a weakref callback or a finalizer ("Exception ignored"), such as
    importlib's module-lock callback: a SIGTERM or Ctrl-C handled there would be lost and the command would
    run on to the end. The interrupt is delivered again 10 ms later instead."""
    if (
        isinstance(unraisable.exc_value, KeyboardInterrupt)
        and threading.current_thread() is threading.main_thread()
    ):
        signal.signal(signal.SIGALRM, _interrupt_again)
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        return
    sys.__unraisablehook__(unraisable)


def _interrupt_again(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("interrupted")


def _handle_interrupts() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    sys.unraisablehook = _redeliver_dropped_interrupt


def _interrupted() -> None:
    terminated = signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    common.err_console.print("interrupted: no partial output written; run again to resume")
    sys.exit(128 + signal.SIGTERM if terminated else 130)


def main() -> None:
    """Entry point of the `mixlab` script: maps mixlab's errors onto exit codes.

    Interrupted (SIGINT/SIGTERM): exits 130/143 after cleanup; finished work kept in a verb's work directory
    is reused by the next run."""
    _handle_interrupts()
    interrupted = False
    try:
        app(standalone_mode=True)
    except SystemExit as exc:
        if exc.code != 130:  # 130: typer's answer to KeyboardInterrupt
            raise
        interrupted = True
    except KeyboardInterrupt:
        interrupted = True
    except BadInput as exc:
        common.err_console.print(
            f"[red]error:[/red] {common.cli_message(exc)}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except MixlabError as exc:
        common.err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    if interrupted:
        # The interrupt's traceback kept the interrupted pass's frames alive until here. Collect them now, so
        # an abandoned engine generator stops its worker pool before the interpreter's exit handlers run
        # (otherwise the pool's wake-up pipe can be closed under concurrent.futures' exit hook).
        gc.collect()
        _interrupted()


if __name__ == "__main__":
    main()
