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

from mixlab.engine import Engine, get_engine
from mixlab.errors import BadInput, MixlabWarning
from mixlab.files import write_json

CorpusArg = Annotated[
    Path, typer.Argument(help="Corpus directory (CORPUS/<domain>/*.jsonl|parquet) or manifest.")
]
TokenizerOpt = Annotated[
    str, typer.Option(help="gpt2, bpe:N (trained on the corpus, cached), a tokenizer.json or directory.")
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


def write_tables(target: str) -> None:
    """The captured tables as `{"tables": [...]}` to the file `target` (atomically) or stdout (`-`)."""
    document = {"tables": out_console.tables or []}
    if target == "-":
        sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
        sys.stdout.flush()
    else:
        write_json(target, document)


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
    # corpus passes (entropy, score, sample, report, demo)
    "vne_max_documents_per_domain": "--vne-max-documents",
    "checkpoint_every_s": "--checkpoint-every",
    "url": "--llm-url",
    "concurrency": "--llm-concurrency",
    "budget": "--budget-tokens",
    "target": "--target-mixture",
    "mean_tokens": "--stats",
}


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
