"""`mixlab entropy`: SE/CE/JE/VNE per domain and the training-free entropy mixtures (BiMix §1.5)."""

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
    out_console,
    settings,
)
from mixlab.corpus import Corpus, load_tokenizer
from mixlab.embed import DEFAULT_EMBEDDER
from mixlab.entropy import EntropyProfile, profile_to_dir
from mixlab.mixture import Mixture
from mixlab.progress import warn


def entropy(
    ctx: typer.Context,
    corpus: CorpusArg,
    out: Annotated[Path, typer.Option(help="Output directory: entropy.json, mixtures.csv, mixtures.png.")],
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    measures: Annotated[str, typer.Option(help="Comma-separated subset of se,ce,je,vne.")] = "se,ce,je,vne",
    seq_len: Annotated[
        int, typer.Option(help="Tokens per packed window; pairs are counted inside windows.")
    ] = 1024,
    max_tokens_per_domain: Annotated[
        int | None, typer.Option(help="Use at most N tokens per domain (spread over its shards by size).")
    ] = None,
    miller_madow: Annotated[
        bool, typer.Option(help="Add the Miller-Madow bias correction to SE/CE/JE (plug-in values kept too).")
    ] = False,
    embedder: Annotated[
        str, typer.Option(help="Document embedder for VNE: static (fast) or minilm (slow on CPU).")
    ] = DEFAULT_EMBEDDER,
    vne_max_documents: Annotated[
        int | None, typer.Option(help="Embed at most N documents per domain for VNE (spread over shards).")
    ] = None,
    text_field: TextFieldOpt = "text",
    skip_bad_rows: SkipOpt = False,
    checkpoint_every: Annotated[
        float,
        typer.Option(
            help="Save the counts of the shards done to OUT.work/ every this many seconds (less often if saving"
            " would take over 5% of the pass); a rerun with the same corpus and settings resumes there.",
        ),
    ] = 60.0,
) -> None:
    """Entropy of every domain (nats) and the mixtures r = softmax(H): natural, uniform, se, ce, je, vne.

    Example: mixlab entropy demo_corpus --out out/entropy --miller-madow --embedder static
    """
    c = Corpus.open(corpus, text_field)
    tok = load_tokenizer(tokenizer, corpus=c)
    with engine(ctx) as eng:
        profile = profile_to_dir(
            c,
            tok,
            out,
            eng,
            measures=measures.split(","),
            seq_len=seq_len,
            max_tokens_per_domain=max_tokens_per_domain,
            embedder=embedder,
            vne_max_documents_per_domain=vne_max_documents,
            miller_madow=miller_madow,
            skip_bad_rows=skip_bad_rows,
            seed=settings(ctx).seed,
            checkpoint_every_s=checkpoint_every,
        )
    domains = list(profile.domains)
    mixtures = profile.mixtures()
    skipped = sum(v["skipped_rows"] for v in profile.domains.values())
    if skipped:
        warn(f"skipped {skipped} bad rows")
    out_console.print(entropy_table(profile))
    out_console.print(mixtures_table(mixtures, domains))
    out_console.print(convergence_table(profile))
    out_console.print(f"wrote {out / 'entropy.json'}, {out / 'mixtures.csv'}, {out / 'mixtures.png'}")


def entropy_table(profile: EntropyProfile) -> Table:
    """Per domain: tokens, documents and the entropies (nats)."""
    unit = "nats, Miller-Madow" if profile.settings["miller_madow"] else "nats"
    table = Table(title=f"entropy per domain ({unit})")
    for col in ("domain", "tokens", "docs", *profile.measures, "H(first)"):
        table.add_column(col, justify="left" if col == "domain" else "right")
    for d, v in profile.domains.items():
        table.add_row(
            d,
            f"{v['tokens']:,}",
            f"{v['documents']:,}",
            *(f"{v[m]:.4f}" for m in profile.measures),
            f"{v['first_position_entropy']:.4f}",
        )
    return table


def mixtures_table(mixtures: list[Mixture], domains: list[str]) -> Table:
    """Proportion of each domain (rows) in each mixture (columns)."""
    table = Table(title="mixtures (r = softmax of entropy; natural = token share)")
    table.add_column("domain")
    for m in mixtures:
        table.add_column(m.name, justify="right")
    for d in domains:
        table.add_row(d, *(f"{m.weights[d]:.4f}" for m in mixtures))
    return table


def convergence_table(profile: EntropyProfile) -> Table:
    """Per domain and token measure: the estimate on growing nested samples of the windows."""
    first = next(iter(profile.domains.values()))["convergence"]
    fractions = first["fractions"]
    table = Table(
        title="convergence: estimate on ~" + " / ".join(f"{f:.0%}" for f in fractions) + " of tokens"
    )
    table.add_column("domain")
    table.add_column("measure")
    for f in fractions:
        table.add_column(f"{f:.0%}", justify="right")
    table.add_column("last step", justify="right")
    for d, v in profile.domains.items():
        conv = v["convergence"]
        for m in ("se", "ce", "je"):
            if m in conv:
                table.add_row(d, m, *(f"{x:.4f}" for x in conv[m]), f"{conv['last_step_change'][m]:+.4f}")
    return table


def register(app: typer.Typer) -> None:
    app.command("entropy")(entropy)
