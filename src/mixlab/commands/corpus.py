"""`mixlab corpus ...`: corpus statistics and the demo corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mixlab.atomic import write_json
from mixlab.commands.common import engine, out_console
from mixlab.corpus import Corpus, corpus_stats, load_tokenizer

corpus_app = typer.Typer(help="Inspect corpora and build the demo corpus.", no_args_is_help=True)

CorpusArg = Annotated[
    Path, typer.Argument(help="Corpus directory (CORPUS/<domain>/*.jsonl|parquet) or manifest.")
]
TokenizerOpt = Annotated[str, typer.Option(help="gpt2, bpe:N, a tokenizer.json or a tokenizer directory.")]
SkipOpt = Annotated[bool, typer.Option(help="Skip malformed rows (counted and reported) instead of failing.")]


@corpus_app.command("stats")
def stats(
    ctx: typer.Context,
    corpus: CorpusArg,
    tokenizer: TokenizerOpt = "gpt2",
    text_field: Annotated[str, typer.Option(help="Field holding the document text.")] = "text",
    skip_bad_rows: SkipOpt = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")
    ] = None,
) -> None:
    """Documents, bytes and tokens per domain and their shares (the natural mixture).

    Example: mixlab corpus stats demo_corpus --tokenizer gpt2 --json stats.json
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
    out_console.print(table)
    if t["skipped"]:
        out_console.print(f"skipped {t['skipped']} bad rows, e.g. {result['skipped_examples'][0]}")
    if json_out:
        write_json(json_out, result)
    else:
        out_console.print_json(json.dumps(result))


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")
