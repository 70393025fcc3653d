"""`mixlab score` and `mixlab sample`: SampleMix document scores and budgeted sampling (thin wiring)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mixlab.commands.common import (
    DEFAULT_TOKENIZER,
    CorpusArg,
    SkipOpt,
    TextFieldOpt,
    TokenizerOpt,
    engine,
    key_values,
    out_console,
    settings,
)
from mixlab.commands.options import count_or_none
from mixlab.errors import BadInput
from mixlab.mixture import read_mixture_ref


def _shares(values: list[str] | None, flag: str) -> dict[str, float] | None:
    """`--min-share code=0.1,wiki=0.05` (comma list, may be repeated) as {domain: share}."""
    if not values:
        return None
    out: dict[str, float] = {}
    for name, share in key_values(values, flag, example="wiki=0.1", form="DOMAIN=SHARE"):
        try:
            out[name] = float(share)
        except ValueError:
            raise BadInput(f"{flag} {name}={share}: expected DOMAIN=SHARE, e.g. {flag} wiki=0.1") from None
    return out


def score(
    ctx: typer.Context,
    corpus: CorpusArg,
    out: Annotated[Path, typer.Option(help="Output scores.parquet (work dir <out>.work/ beside it).")],
    quality: Annotated[str, typer.Option(help="Annotator: heuristic | local | llm.")] = "heuristic",
    annotate_n: Annotated[
        int | None,
        typer.Option(
            help="Documents to annotate for the scorer (default: heuristic 2000, local 200, llm 1000)."
        ),
    ] = None,
    embedder: Annotated[str, typer.Option(help="Embedder: static (fast) | minilm.")] = "static",
    clusters: Annotated[int | None, typer.Option(help="k-means clusters (default round(sqrt(N/10)))")] = None,
    separation: Annotated[str, typer.Option(help="Cluster separation: mean | nearest.")] = "mean",
    head: Annotated[str, typer.Option(help="Scorer head: ordinal | classification.")] = "ordinal",
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    alpha: Annotated[float, typer.Option(help="α of the weight column: p = α·d + (1−α)·q.")] = 0.8,
    normalisation: Annotated[str, typer.Option(help="Normalisation of q and d: minmax | rank.")] = "minmax",
    llm_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://host:8000/v1.")
    ] = None,
    llm_model: Annotated[str | None, typer.Option(help="Model name for --llm-url.")] = None,
    llm_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the API key.")
    ] = "OPENAI_API_KEY",
    llm_concurrency: Annotated[int, typer.Option(help="Concurrent requests to --llm-url.")] = 4,
    text_field: TextFieldOpt = "text",
    skip_bad_rows: SkipOpt = False,
) -> None:
    """Score every document: quality (annotate a sample, train an ordinal scorer) and diversity (k-means).

    Writes scores.parquet with columns doc_id, domain, tokens, quality, q_<dimension>..., cluster,
    compactness, separation, diversity, weight; the scorer's held-out metrics go to <out>.work/quality_report.json.

    Example: mixlab score demo_corpus --quality heuristic --out scores.parquet
    """
    from mixlab.corpus import Corpus
    from mixlab.samplemix.score import ScoreConfig, score_corpus

    options: dict = {}
    if quality == "llm":
        # the annotator's own check names its parameter `model`, which is --model in the proxy verbs
        if not llm_url or not llm_model:
            raise BadInput("--quality llm needs --llm-url (e.g. http://host:8000/v1) and --llm-model")
        options = {"url": llm_url, "model": llm_model, "key_env": llm_key_env, "concurrency": llm_concurrency}
    config = ScoreConfig(
        quality=quality,
        annotate_n=annotate_n,
        embedder=embedder,
        clusters=clusters,
        separation=separation,
        tokenizer=tokenizer,
        head=head,
        alpha=alpha,
        normalisation=normalisation,
        seed=settings(ctx).seed,
        skip_bad_rows=skip_bad_rows,
        annotator_options=options,
    )
    with engine(ctx) as eng:
        report = score_corpus(Corpus.open(corpus, text_field), out, config, eng)
    table = Table(title=f"{out}: {report['documents']:,} documents, {report['clusters']} clusters")
    for col in ("domain", "documents", "tokens", "mean quality (0-9)", "mean weight"):
        table.add_column(col, justify="left" if col == "domain" else "right")
    for name, d in report["domains"].items():
        table.add_row(
            name,
            f"{d['documents']:,}",
            f"{d['tokens']:,}",
            f"{d['mean_quality']:.2f}",
            f"{d['mean_weight']:.3f}",
        )
    out_console.print(table)
    heads = Table(title=f"scorer on held-out annotations ({report['annotated']} annotated, {quality})")
    for col in ("head", "ACC", "MAE", "MSE", "close ACC (±1)"):
        heads.add_column(col, justify="left" if col == "head" else "right")
    for name, m in report["heads"].items():
        heads.add_row(name, f"{m['acc']:.3f}", f"{m['mae']:.3f}", f"{m['mse']:.3f}", f"{m['close_acc']:.3f}")
    out_console.print(heads)


def sample(
    ctx: typer.Context,
    corpus: CorpusArg,
    scores: Annotated[Path, typer.Option(help="scores.parquet written by `mixlab score`.")],
    budget_tokens: Annotated[float, typer.Option(help="Token budget T of the sample.")],
    out: Annotated[Path, typer.Option(help="Output SAMPLE_DIR (data/*.parquet, counts, summary, plot).")],
    alpha: Annotated[
        float, typer.Option(help="p = α·d + (1−α)·q; 0 = quality only, 1 = diversity only.")
    ] = 0.8,
    normalisation: Annotated[str, typer.Option(help="Normalisation of q and d: minmax | rank.")] = "minmax",
    max_repeats: Annotated[
        str,
        typer.Option(
            help="At most this many copies of a document; none lifts the cap.",
            callback=count_or_none(1, 2**31),
        ),
    ] = "4",
    target_mixture: Annotated[
        Path | None,
        typer.Option(
            help="Domain proportions to impose: mixture JSON, one-row CSV, FILE.csv:ROW, yaml/olmix export."
        ),
    ] = None,
    min_share: Annotated[
        list[str] | None, typer.Option(help="Lower bounds DOMAIN=SHARE,DOMAIN=SHARE on the sample's shares.")
    ] = None,
    max_share: Annotated[
        list[str] | None, typer.Option(help="Upper bounds DOMAIN=SHARE,DOMAIN=SHARE on the sample's shares.")
    ] = None,
    text_field: TextFieldOpt = "text",
    skip_bad_rows: Annotated[
        bool,
        typer.Option(help="Skip malformed rows instead of failing; give it where `score` had it."),
    ] = False,
) -> None:
    """Draw documents by SampleMix counts c = ⌊r⌋ + Bernoulli(r − ⌊r⌋) under a token budget.

    Example: mixlab --seed 1 sample demo_corpus --scores scores.parquet --budget-tokens 2e6 --alpha 0.8 --out sample
    """
    from mixlab.corpus import Corpus
    from mixlab.samplemix.sample import SampleConfig, sample_corpus

    target = None
    if target_mixture is not None:
        target = read_mixture_ref(target_mixture).weights
    config = SampleConfig(
        budget_tokens=budget_tokens,
        alpha=alpha,
        normalisation=normalisation,
        max_repeats=max_repeats,
        target_mixture=target,
        min_share=_shares(min_share, "--min-share"),
        max_share=_shares(max_share, "--max-share"),
        seed=settings(ctx).seed,
        skip_bad_rows=skip_bad_rows,
    )
    with engine(ctx) as eng:
        summary = sample_corpus(Corpus.open(corpus, text_field), scores, out, config, eng)
    table = Table(
        title=f"{out}: {summary['realised_tokens']:,} tokens for a budget of {summary['budget_tokens']:,.0f}"
    )
    targeted = target is not None
    for col in ("domain", "share before", *(["target"] if targeted else []), "share after", "sampled tokens"):
        table.add_column(col, justify="left" if col == "domain" else "right")
    for name, d in summary["domains"].items():
        aim = [f"{d['target']:.4f}"] if targeted else []
        table.add_row(name, f"{d['before']:.4f}", *aim, f"{d['after']:.4f}", f"{d['sampled_tokens']:,}")
    out_console.print(table)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("sample")(sample)
