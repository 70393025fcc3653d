"""What every CLI verb shares: global settings, the engine they select, consoles and output helpers."""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mixlab.corpus.tokenizer import DEFAULT_TOKENIZER
from mixlab.engine import Engine, get_engine
from mixlab.errors import BadInput, MixlabWarning
from mixlab.files import write_json

CorpusArg = Annotated[
    Path, typer.Argument(help="Corpus directory (CORPUS/<domain>/*.jsonl|parquet) or manifest.")
]
TokenizerOpt = Annotated[
    str,
    typer.Option(
        help="bpe:N (a BPE of N tokens trained on this corpus, cached), gpt2, a tokenizer.json or a directory"
        f" holding one; every verb's default is {DEFAULT_TOKENIZER}."
    ),
]
TextFieldOpt = Annotated[
    str,
    typer.Option(help="Field (JSONL) or column (Parquet) holding the document text; a manifest's own wins."),
]
SkipOpt = Annotated[bool, typer.Option(help="Skip malformed rows (counted and reported) instead of failing.")]


class OutConsole(Console):
    """The verbs' stdout. Under the global `--json PATH|-` (`capture_tables`) each table printed is kept as a
    JSON record instead (`write_tables` writes them once the verb succeeded) and anything else goes to stderr,
    so stdout carries only JSON. `--quiet` silences all of it but the JSON."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tables: list[dict[str, Any]] | None = None

    def capture_tables(self, capture: bool) -> None:
        self.tables = [] if capture else None

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self.tables is None:
            super().print(*objects, **kwargs)
            return
        for obj in objects:
            if isinstance(obj, Table):
                self.tables.append(table_record(obj))
            elif not self.quiet:
                err_console.print(obj, **kwargs)


out_console = OutConsole(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+")


def _cell(value: object) -> object:
    """A table cell as JSON: a number where the printed text is one (`1,234` → 1234, `0.25` → 0.25)."""
    text = str(value).strip()
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    if not _NUMBER.fullmatch(text):
        return text
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    number = float(text)
    return number if math.isfinite(number) else text


def table_record(table: Table) -> dict[str, Any]:
    """{title, columns, rows: [{column: cell}]} of a rich table, cells as printed (numbers parsed)."""
    headers = [str(column.header) for column in table.columns]
    cells = [[_cell(v) for v in column.cells] for column in table.columns]
    rows = [dict(zip(headers, row, strict=True)) for row in zip(*cells, strict=True)]
    return {"title": str(table.title or ""), "columns": headers, "rows": rows}


STDOUT = "-"
# The metavar of an output option that takes `-` for stdout (any other output option refuses `-`).
STDOUT_METAVAR = "PATH|-"


def write_json_to(target: str | Path, document: Any) -> None:
    """`document` as JSON to the file `target` (atomically) or to stdout when `target` is `-`."""
    if str(target) == STDOUT:
        sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
        sys.stdout.flush()
    else:
        write_json(target, document)


def write_tables(target: str) -> None:
    """The captured tables as `{"tables": [...]}` to the file `target` (atomically) or stdout (`-`)."""
    write_json_to(target, {"tables": out_console.tables or []})


def show_warning(warning: MixlabWarning) -> None:
    """One `warning:` line on stderr, parameters named as flags; nothing under `--quiet`."""
    if not out_console.quiet:
        err_console.print(
            f"[yellow]warning:[/yellow] {cli_message(warning)}", highlight=False, soft_wrap=True
        )


# Library parameters whose CLI flag is not `--` + the name with dashes; each `name` in a BadInput message is
# printed as its flag (see mixlab.errors).
FLAGS: dict[str, str] = {
    "n_samples": "--samples",
    "tokens": "--tokens-per-run",
    "eval_subset_tokens": "--eval-subset-tokens",
    # corpus passes (entropy, score, sample, report, demo)
    "vne_max_documents_per_domain": "--vne-max-documents",
    "checkpoint_every_s": "--checkpoint-every",
    "url": "--llm-url",
    "concurrency": "--llm-concurrency",
    "budget": "--budget-tokens",
    "target": "--target-mixture",
    "mean_tokens": "--stats",
    # laws: the evaluation step a fixed-step law is fitted at (`--steps` counts training steps)
    "step": "--eval-step",
}


def comma_list(text: str | None, flag: str) -> list[str] | None:
    """A comma-separated list option (`--domains code,wiki`): its items; None when not given."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise BadInput(f"{flag} '{text}': expected names separated by commas (no empty item)")
    return items


# A comma starts a new KEY=VALUE item only where a key follows, so JSON values may hold commas (`a=[1,2],b=3`).
_NEXT_KEY = re.compile(r",(?=\s*[A-Za-z_][\w.-]*\s*=)")


def key_values(
    values: list[str] | None, flag: str, example: str, form: str = "KEY=VALUE"
) -> list[tuple[str, str]]:
    """KEY=VALUE items (`form` in messages) of an option given as comma lists (`--min-share
    code=0.1,wiki=0.05`), once or repeated; a key twice is exit 2."""
    pairs: list[tuple[str, str]] = []
    for value in values or []:
        for item in _NEXT_KEY.split(value):
            key, sep, rest = item.partition("=")
            if not sep or not key.strip():
                raise BadInput(f"{flag} {item}: expected {form}, e.g. {flag} {example}")
            pairs.append((key.strip(), rest.strip()))
    keys = [k for k, _ in pairs]
    repeated = next((k for k in keys if keys.count(k) > 1), None)
    if repeated is not None:
        raise BadInput(f"{flag}: '{repeated}' is given twice")
    return pairs


def flag(param: str) -> str:
    return FLAGS.get(param, "--" + param.replace("_", "-"))


def cli_message(exc: BadInput | MixlabWarning) -> str:
    """A library error as the CLI says it: each parameter the message names becomes its flag."""
    return exc.naming({name: flag(name) for name in exc.params})


@dataclass(frozen=True)
class Settings:
    """The global options (`mixlab --engine ray --workers 4 --seed 1 VERB ...`)."""

    engine: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    seed: int = 0
    quiet: bool = False
    json: str | None = None


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def engine(ctx: typer.Context) -> Engine:
    s = settings(ctx)
    return get_engine(s.engine, s.workers, s.ray_address)
