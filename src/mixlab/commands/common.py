"""What every CLI verb shares: global settings, the engine they select, consoles and output helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mixlab.engine import Engine, get_engine
from mixlab.errors import BadInput

CorpusArg = Annotated[
    Path, typer.Argument(help="Corpus directory (CORPUS/<domain>/*.jsonl|parquet) or manifest.")
]
TokenizerOpt = Annotated[
    str, typer.Option(help="gpt2, bpe:N (trained on the corpus, cached), a tokenizer.json or directory.")
]
SkipOpt = Annotated[bool, typer.Option(help="Skip malformed rows (counted and reported) instead of failing.")]

out_console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


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


def cli_message(exc: BadInput) -> str:
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


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def engine(ctx: typer.Context) -> Engine:
    s = settings(ctx)
    return get_engine(s.engine, s.workers, s.ray_address)
