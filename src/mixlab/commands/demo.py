"""`mixlab demo`: the whole flow (entropy mixtures, sweep, laws, optimum, DoReMi, SampleMix, comparison, report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mixlab.commands.common import SkipOpt, TextFieldOpt, out_console, settings
from mixlab.commands.options import either, renamed
from mixlab.errors import BadInput
from mixlab.progress import log


def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Directory for every artefact, results.json and report.html.")],
    quick: Annotated[
        bool, typer.Option(help="Tiny settings (two seeds, 16-step models): a first look.")
    ] = False,
    corpus: Annotated[
        Path | None, typer.Option(help="Use this corpus instead of building the demo corpus in OUT/corpus.")
    ] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="Tokenizer spec for every stage (default bpe:1024).")
    ] = None,
    eval_seeds: Annotated[
        str | None,
        typer.Option(
            help="Seeds of the evaluation models, comma-separated (default 0,1,2; --quick 0,1); the global"
            " --seed drives every other random choice."
        ),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", hidden=True, callback=renamed("--eval-seeds"))
    ] = None,
    eval_tokens: Annotated[int | None, typer.Option(help="Training tokens of each evaluation model.")] = None,
    sweep_tokens: Annotated[int | None, typer.Option(help="Training tokens of each proxy run.")] = None,
    max_mb_per_domain: Annotated[
        float | None, typer.Option(help="Cap of the built demo corpus per domain (MB).")
    ] = None,
    text_field: TextFieldOpt = "text",
    skip_bad_rows: SkipOpt = False,
) -> None:
    """Run both papers' recipes end to end and compare them: corpus stats, entropy mixtures, a proxy sweep,
    mixing-law fits and protocols, the BiMix optimum, DoReMi, SampleMix and the hybrid, one evaluation model per
    method, and OUT/report.html. Resumable: finished stages are skipped when rerun with the same OUT.

    Example: mixlab demo --out demo_out --quick
    """
    from mixlab.demo import run_demo

    s = settings(ctx)
    eval_seeds = either(eval_seeds, seeds, "--eval-seeds", "--seeds")
    seed_tuple = _seeds(eval_seeds, "--eval-seeds" if seeds is None else "--seeds") if eval_seeds else None
    results = run_demo(
        out, quick=quick, corpus=corpus, seed=s.seed, workers=s.workers, engine=s.engine,
        ray_address=s.ray_address,
        tokenizer=tokenizer, seeds=seed_tuple, eval_tokens=eval_tokens, sweep_tokens=sweep_tokens,
        max_mb_per_domain=max_mb_per_domain, text_field=text_field, skip_bad_rows=skip_bad_rows,
    )  # fmt: skip
    table = Table(title="mean validation loss over domains (nats) of one evaluation model per method")
    for col in ("method", "mean loss", "± std over seeds", "seeds"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for row in results.get("comparison_table", []):
        spread = f"{row['avg_std']:.4f}" if row["n_seeds"] > 1 else ""
        table.add_row(row["method"], f"{row['avg_mean']:.4f}", spread, str(row["n_seeds"]))
    out_console.print(table)
    if results.get("verdict"):
        out_console.print(results["verdict"]["decision"])
    log(f"report: {out / 'report.html'}")


def _seeds(text: str, flag: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise BadInput(f"{flag} '{text}': expected integers separated by commas") from None
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise BadInput(f"{flag} '{text}': expected distinct non-negative integers")
    return seeds


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
