"""The `mixlab` command line: a thin typer app. Each area registers its verbs from `mixlab.commands`.

Exit codes: 0 ok, 2 bad input (one-line cause naming the file/row/field), 1 internal error.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

try:  # recent typer parses with its own copy of click
    from typer._click import core as click_core
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - typer that uses click itself
    from click import core as click_core
    from click import exceptions as click_exceptions

from mixlab import __version__
from mixlab.commands import common
from mixlab.commands.options import MAX_SEED, MAX_WORKERS, integer
from mixlab.errors import BadInput, MixlabError, MixlabWarning

app = typer.Typer(
    name="mixlab",
    help="Decide what a language model is pre-trained on: domain mixtures (BiMix) and documents (SampleMix).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        common.out_console.print(f"mixlab {__version__}", highlight=False)
        raise typer.Exit()


def _write_tables(_result: object, json_out: str | None = None, **_globals: object) -> None:
    """After the verb succeeded: the tables it printed, as JSON, where `--json` says."""
    if json_out is not None:
        common.write_tables(json_out)


@app.callback(result_callback=_write_tables)
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
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Errors only: no tables, progress, warnings or chatter.")
    ] = False,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json",
            metavar=common.STDOUT_METAVAR,
            help="The verb's tables as JSON ({tables: [{title, columns, rows}]}) to PATH, or to stdout with -"
            " (then stdout carries only the JSON; other output goes to stderr).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Global options go before or after the verb: `mixlab --seed 1 sample ...` = `mixlab sample ... --seed 1`."""
    if quiet:
        # for this command only: an in-process caller (the demo, tests) is not left quiet afterwards
        before = os.environ.get("MIXLAB_QUIET")
        os.environ["MIXLAB_QUIET"] = "1"
        ctx.call_on_close(lambda: _restore_env("MIXLAB_QUIET", before))
    common.out_console.quiet = quiet
    common.out_console.capture_tables(json_out is not None)
    ctx.obj = common.Settings(
        engine=engine, workers=workers, ray_address=ray_address, seed=seed, quiet=quiet, json=json_out
    )


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


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


def _options(command: typer.core.TyperCommand) -> dict[str, typer.core.TyperOption]:
    options = [p for p in command.params if p.param_type_name == "option"]
    return {name: p for p in options for name in p.opts + p.secondary_opts}


def _is_group(command: object) -> bool:
    return hasattr(command, "commands")


def _takes_value(option: typer.core.TyperOption, token: str) -> int:
    """How many command-line tokens `token` (an occurrence of `option`) uses up, itself included."""
    return 1 if "=" in token or option.is_flag or option.count else 1 + option.nargs


def hoist_global_options(root: typer.core.TyperGroup, args: Sequence[str]) -> list[str]:
    """`mixlab VERB ... --seed 1` read as `mixlab --seed 1 VERB ...`: each global option given after the verb
    moves before it, unless the verb has an option of that name itself. `--` ends the options."""
    args = list(args)
    globals_ = _options(root)
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        option = globals_.get(args[i].partition("=")[0])
        i += _takes_value(option, args[i]) if option else 1
    verb_at = i
    command = root
    while i < len(args) and _is_group(command) and args[i] in command.commands:
        command = command.commands[args[i]]
        i += 1
    if command is root or _is_group(command):
        return args
    verb_end = i
    own = _options(command)
    hoisted: list[str] = []
    rest: list[str] = []
    while i < len(args):
        token = args[i]
        name = token.partition("=")[0]
        if token == "--":
            rest.extend(args[i:])
            break
        if name in own or name not in globals_:
            n = _takes_value(own[name], token) if name in own else 1
            rest.extend(args[i : i + n])
        else:
            n = _takes_value(globals_[name], token)
            hoisted.extend(args[i : i + n])
        i += n
    return args[:verb_at] + hoisted + args[verb_at:verb_end] + rest


def add_short_out(command: typer.core.TyperCommand) -> None:
    """`-o` for `--out` on every verb that writes (unless the verb uses `-o` for something else)."""
    if _is_group(command):
        for sub in command.commands.values():
            add_short_out(sub)
        return
    options = _options(command)
    if "--out" in options and "-o" not in options:
        options["--out"].opts.append("-o")


# Options that name a file or directory to write; `-` (stdout) only where the help says PATH|-.
OUTPUT_OPTIONS = frozenset({"--out", "--plots", "--json"})


def refuse_stdout(command: typer.core.TyperCommand) -> None:
    """`-` given to an output option that cannot write to stdout is exit 2, not a file named '-'."""
    if _is_group(command):
        for sub in command.commands.values():
            refuse_stdout(sub)
        return
    for option in _options(command).values():
        if OUTPUT_OPTIONS.intersection(option.opts) and option.metavar != common.STDOUT_METAVAR:
            option.callback = _no_stdout(option.callback)


def _no_stdout(inner: Callable[..., Any] | None) -> Callable[..., Any]:
    def callback(ctx: click_core.Context, param: click_core.Parameter, value: Any) -> Any:
        if value is not None and str(value) == common.STDOUT:
            flag = max(param.opts, key=len)
            raise BadInput(f"{flag} -: this option writes files, not stdout; give a path")
        return inner(ctx, param, value) if inner is not None else value

    return callback


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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    if isinstance(message, MixlabWarning):
        common.show_warning(message)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def _usage_error(exc: click_exceptions.UsageError) -> None:
    """A bad command line (unknown option, a value that is not an integer, a missing argument): one line."""
    if isinstance(exc, click_exceptions.NoArgsIsHelpError):
        common.out_console.print(exc.format_message(), highlight=False, markup=False)
    else:
        hint = f" (see `{exc.ctx.command_path} -h`)" if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split())
        common.err_console.print(f"[red]error:[/red] {message}{hint}", highlight=False, markup=True)
    sys.exit(exc.exit_code)


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the `mixlab` script: maps mixlab's errors onto exit codes.

    Interrupted (SIGINT/SIGTERM): exits 130/143 after cleanup; finished work kept in a verb's work directory
    is reused by the next run."""
    _handle_interrupts()
    warnings.showwarning = _show_warning
    command = typer.main.get_command(app)
    add_short_out(command)
    refuse_stdout(command)
    args = hoist_global_options(command, sys.argv[1:] if args is None else args)
    interrupted = False
    try:
        code = command.main(args=args, standalone_mode=False)
        if isinstance(code, int) and code == 130:  # typer's answer to KeyboardInterrupt
            interrupted = True
        elif isinstance(code, int) and code:
            sys.exit(code)
    except KeyboardInterrupt:
        interrupted = True
    except typer.Abort:
        common.err_console.print("[red]error:[/red] aborted", highlight=False)
        sys.exit(1)
    except click_exceptions.UsageError as exc:
        _usage_error(exc)
    except click_exceptions.ClickException as exc:
        common.err_console.print(f"[red]error:[/red] {exc.format_message()}", highlight=False, markup=True)
        sys.exit(exc.exit_code)
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
