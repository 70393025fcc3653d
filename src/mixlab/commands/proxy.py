"""`mixlab sweep`, `mixlab doremi`: proxy runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from mixlab.commands.common import (
    DEFAULT_TOKENIZER,
    CorpusArg,
    SkipOpt,
    TextFieldOpt,
    TokenizerOpt,
    engine,
    out_console,
    settings,
)
from mixlab.progress import log

ModelOpt = Annotated[
    str, typer.Option(help="Model preset: tiny (CPU), small, medium, bimix-proxy (12x768, GPU).")
]
TokensOpt = Annotated[int, typer.Option(help="Training tokens per run (steps = tokens / (batch x seq-len)).")]
EvalsOpt = Annotated[int, typer.Option(help="Evaluations of every domain's validation loss, evenly spaced.")]
SeqLenOpt = Annotated[int, typer.Option(help="Sequence length in tokens.")]
BatchOpt = Annotated[int, typer.Option(help="Sequences per batch.")]
LrOpt = Annotated[float | None, typer.Option(help="Peak learning rate (default: the preset's).")]
ScheduleOpt = Annotated[
    str,
    typer.Option(help="exp10 (decay 10x over the run, the BiMix paper's), cosine (with warm-up), constant."),
]
WarmupOpt = Annotated[int | None, typer.Option(help="Warm-up steps (default: 5% for cosine, 0 otherwise).")]
DeviceOpt = Annotated[str, typer.Option(help="auto (cuda when present), cpu, cuda, cuda:N.")]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        help="auto (bf16 autocast where the GPU supports it, or the CPU has native bf16 and a probe "
        "measures it faster; else fp32), fp32, bf16. The choice and its reason go into meta.json."
    ),
]
ThreadsOpt = Annotated[
    int | None, typer.Option(help="CPU threads (default min(2, cores); fixed for reproducibility).")
]
ValTokensOpt = Annotated[int, typer.Option(help="Validation tokens held out per domain (whole documents).")]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option(help="Use at most this many tokens of each domain (from the start of its shards)."),
]


# The training options sweep and doremi share: verb parameter -> TrainConfig field.
TRAIN_OPTIONS = {
    "model": "model",
    "tokens_per_run": "tokens",
    "seq_len": "seq_len",
    "batch_size": "batch_size",
    "lr": "lr",
    "schedule": "schedule",
    "warmup": "warmup",
    "device": "device",
    "precision": "precision",
    "threads": "threads",
}


EvalSubsetOpt = Annotated[
    int | None,
    typer.Option(
        help="Validation tokens per domain of the intermediate evaluations (a fixed subset; the final one uses"
        " the full set). Default: the full set every time, so every row of a curve is measured on one set."
    ),
]


def _train_config(ctx: typer.Context, options: dict[str, object], *, evals: int, **fields: object):
    """The run settings from a verb's parameters (`options`: its locals()), checked before torch loads or
    the corpus is read."""
    from mixlab.proxy.config import TrainConfig

    fields.update({field: options[name] for name, field in TRAIN_OPTIONS.items()})
    return TrainConfig(seed=settings(ctx).seed, evals=evals, **fields)


def sweep(
    ctx: typer.Context,
    corpus: CorpusArg,
    mixtures: Annotated[
        Path,
        typer.Option(
            help="mixtures.csv (every row), FILE.csv:ROW, or one mixture (JSON, yaml/olmix export)."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Sweep directory: runs.csv, mixtures.csv, runs/<name>/meta.json.")
    ],
    model: ModelOpt = "tiny",
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    tokens_per_run: TokensOpt = 1_000_000,
    evals: EvalsOpt = 20,
    eval_subset_tokens: EvalSubsetOpt = None,
    seq_len: SeqLenOpt = 128,
    batch_size: BatchOpt = 16,
    lr: LrOpt = None,
    schedule: ScheduleOpt = "exp10",
    warmup: WarmupOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    threads: ThreadsOpt = None,
    val_tokens: ValTokensOpt = 8192,
    max_tokens_per_domain: MaxTokensOpt = None,
    text_field: TextFieldOpt = "text",
    skip_bad_rows: SkipOpt = False,
) -> None:
    """Train one small causal LM per mixture and log every domain's validation loss to DIR/runs.csv.

    Resumable: run the same command again after an interruption; finished runs are skipped and a partly
    trained run continues from its last evaluation. Deterministic under --seed on the CPU.

    Example: mixlab --seed 0 sweep demo_corpus --mixtures mixtures.csv --out sweep --tokens-per-run 500000
    """
    from mixlab.proxy.config import check_stream_options

    config = _train_config(ctx, locals(), evals=evals, eval_subset_tokens=eval_subset_tokens)
    check_stream_options(val_tokens, max_tokens_per_domain)
    from mixlab.corpus import Corpus
    from mixlab.mixture import read_mixture_set
    from mixlab.proxy import run_sweep

    opened = Corpus.open(corpus, text_field)
    with engine(ctx) as eng:
        results = run_sweep(
            opened,
            read_mixture_set(mixtures),
            out,
            config,
            tokenizer=tokenizer,
            val_tokens=val_tokens,
            max_tokens_per_domain=max_tokens_per_domain,
            engine=eng,
            skip_bad_rows=skip_bad_rows,
        )
    table = Table(title=f"{out}: {len(results)} runs")
    for col in ("run", "mean loss (nats)", "tok/s", "trained"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in results:
        mean = float(np.mean(list(r.losses.values())))
        table.add_row(
            r.name,
            f"{mean:.4f}",
            f"{r.meta['tokens_per_second']:,.0f}",
            "now" if r.steps_trained else "before",
        )
    out_console.print(table)
    log(f"wrote {out / 'runs.csv'}")


def doremi(
    ctx: typer.Context,
    corpus: CorpusArg,
    out: Annotated[
        Path, typer.Option(help="Output directory: mixture.json, weights.csv, doremi.json, reference/.")
    ],
    reference: Annotated[
        str,
        typer.Option(
            help="Reference mixture: uniform, natural, or a mixture (JSON, one-row CSV, FILE.csv:ROW, yaml)."
        ),
    ] = "uniform",
    step_size: Annotated[
        float, typer.Option(help="Exponentiated-gradient step size η on the excess loss.")
    ] = 1.0,
    smoothing: Annotated[
        float, typer.Option(help="Mix c of the uniform distribution into the weights each step.")
    ] = 1e-3,
    min_weight: Annotated[
        float, typer.Option(help="Lower bound on every domain's weight (guards against collapse).")
    ] = 0.005,
    model: ModelOpt = "tiny",
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    tokens_per_run: TokensOpt = 1_000_000,
    seq_len: SeqLenOpt = 128,
    batch_size: BatchOpt = 16,
    lr: LrOpt = None,
    schedule: ScheduleOpt = "exp10",
    warmup: WarmupOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    threads: ThreadsOpt = None,
    val_tokens: ValTokensOpt = 8192,
    max_tokens_per_domain: MaxTokensOpt = None,
    text_field: TextFieldOpt = "text",
    skip_bad_rows: SkipOpt = False,
) -> None:
    """DoReMi baseline: a reference model, then a proxy whose domain weights follow Group-DRO.

    Writes the time-averaged weights as DIR/mixture.json and the per-step trajectory as DIR/weights.csv.
    Both models use the same preset and --tokens-per-run; batches follow the reference mixture.

    Example: mixlab doremi demo_corpus --out doremi --tokens-per-run 500000 --step-size 1 --min-weight 0.01
    """
    from mixlab.corpus import Corpus, corpus_stats, load_tokenizer, natural_mixture
    from mixlab.mixture import Mixture, read_mixture_ref
    from mixlab.proxy.config import DoReMiConfig, check_stream_options

    knobs = DoReMiConfig(step_size=step_size, smoothing=smoothing, min_weight=min_weight)
    config = _train_config(ctx, locals(), evals=1)
    check_stream_options(val_tokens, max_tokens_per_domain)
    c = Corpus.open(corpus, text_field)
    knobs.check_domains(len(c.domains))
    from mixlab.proxy import prepare_streams
    from mixlab.proxy.doremi import run_doremi

    tok = load_tokenizer(tokenizer, corpus=c)
    with engine(ctx) as eng:
        if reference == "uniform":
            ref = Mixture.from_weights("uniform", dict.fromkeys(c.domains, 1.0))
        elif reference == "natural":
            counted = corpus_stats(c, tok, eng, skip_bad_rows=skip_bad_rows)
            ref = Mixture.from_weights("natural", natural_mixture(counted))
        else:
            ref = read_mixture_ref(reference)
        streams = prepare_streams(
            c, tok, val_tokens=val_tokens, max_tokens_per_domain=max_tokens_per_domain, engine=eng,
            skip_bad_rows=skip_bad_rows,
        )  # fmt: skip
        result = run_doremi(streams, out, config, knobs, ref, engine=eng)
    table = Table(title=f"DoReMi weights (time-averaged) → {out / 'mixture.json'}")
    for col in ("domain", "reference", "DoReMi"):
        table.add_column(col, justify="left" if col == "domain" else "right")
    for d, w in result.mixture.weights.items():
        table.add_row(d, f"{ref.weights.get(d, 0.0):.4f}", f"{w:.4f}")
    out_console.print(table)
    log(f"wrote {out / 'mixture.json'} and {out / 'weights.csv'}")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
    app.command("doremi")(doremi)
