"""`mixlab export | import | mixtures random`: mixtures in and out of other tools' formats, and candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from mixlab.commands.common import (
    DEFAULT_TOKENIZER,
    STDOUT,
    STDOUT_METAVAR,
    SkipOpt,
    TextFieldOpt,
    TokenizerOpt,
    comma_list,
    engine,
    out_console,
    settings,
)
from mixlab.commands.options import either, fraction, number, renamed
from mixlab.errors import BadInput
from mixlab.exports import EXPORT_FORMATS
from mixlab.files import atomic_dir, read_json, write_text
from mixlab.mixture import read_mixture_ref, write_mixtures
from mixlab.progress import log, warn


def export(
    ctx: typer.Context,
    mixture_spec: Annotated[
        str,
        typer.Argument(
            metavar="MIXTURE",
            help="A mixture: JSON (e.g. from optimize), a one-row CSV, FILE.csv:ROW, or mixlab's yaml/olmix "
            "exports.",
        ),
    ],
    format: Annotated[str, typer.Option("--format", "-f", help=f"{' | '.join(EXPORT_FORMATS)}.")],
    paths: Annotated[
        Path | None,
        typer.Option(
            help="JSON {domain: path | [paths] | glob} for the trainer (megatron: indexed-dataset prefixes; "
            "olmix: source paths; hf: dataset names). megatron and olmix need every domain."
        ),
    ] = None,
    stats: Annotated[
        Path | None,
        typer.Option(help="hf: `corpus stats --json` output with token counts (mean tokens per document)."),
    ] = None,
    corpus: Annotated[
        Path | None, typer.Option(help="hf: the corpus to count mean tokens per document in (no --stats).")
    ] = None,
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    text_field: TextFieldOpt = "text",
    skip_bad_rows: SkipOpt = False,
    token_counts: Annotated[
        Path | None,
        typer.Option(help="megatron: JSON {prefix: tokens} (default: each prefix's .idx header)."),
    ] = None,
    base: Annotated[
        Path | None, typer.Option(help="olmix: a launch config YAML whose other sections are kept.")
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out", "-o", metavar=STDOUT_METAVAR, help="Output file, or - for stdout (the default)."
        ),
    ] = None,
) -> None:
    """Write a mixture in a trainer's format: Megatron/NeMo blend, olmix, DoReMi, HF interleave, YAML.

    Example: mixlab export mixture.json --format megatron --paths prefixes.json --out blend.txt
    """
    from mixlab.exports import export_mixture

    if format not in EXPORT_FORMATS:
        raise BadInput(f"unknown export format '{format}' (choose from {', '.join(EXPORT_FORMATS)})")
    mixture = read_mixture_ref(mixture_spec)
    path_map = read_json(paths, "--paths") if paths else None
    if path_map is not None and not (
        isinstance(path_map, dict)
        and all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(p, str) for p in v))
            for v in path_map.values()
        )
    ):
        raise BadInput(f"{paths}: expected a JSON object {{domain: path or [paths]}}")
    mean_tokens = None
    if format == "hf":
        mean_tokens = _mean_tokens(ctx, stats, corpus, tokenizer, text_field, skip_bad_rows)
    counts = read_json(token_counts, "--token-counts") if token_counts else None
    if counts is not None and not (
        isinstance(counts, dict)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in counts.values())
    ):
        raise BadInput(f"{token_counts}: expected a JSON object {{prefix: tokens}}")
    base_config = _read_yaml_mapping(base) if base else None
    text = export_mixture(
        mixture, format, path_map, mean_tokens=mean_tokens, token_counts=counts, base=base_config
    )
    if out is None or out == STDOUT:
        typer.echo(text, nl=False)
    else:
        write_text(out, text)
        log(f"wrote {format} mixture to {out}")


def _mean_tokens(
    ctx: typer.Context,
    stats: Path | None,
    corpus: Path | None,
    tokenizer: str,
    text_field: str,
    skip_bad_rows: bool,
) -> dict[str, float]:
    """hf: mean tokens per document of each domain, from --stats or counted in --corpus; neither is exit 2."""
    from mixlab.exports.hf import mean_tokens_from_stats, read_mean_tokens

    if stats is not None:
        return read_mean_tokens(stats)
    if corpus is None:
        raise BadInput(
            "--format hf needs --stats (corpus stats --json with --tokenizer) or --corpus: "
            "interleave_datasets samples documents, so token shares need each domain's mean tokens per document"
        )
    from mixlab.corpus import Corpus, corpus_stats, load_tokenizer

    opened = Corpus.open(corpus, text_field)
    with engine(ctx) as eng:
        counted = corpus_stats(
            opened, load_tokenizer(tokenizer, corpus=opened), eng, skip_bad_rows=skip_bad_rows
        )
    return mean_tokens_from_stats(counted, where=str(corpus))


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise BadInput(f"{path}: file does not exist")
    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(obj, dict):
        raise BadInput(f"{path}: expected a YAML mapping (an olmix launch config)")
    return obj


import_app = typer.Typer(
    help="Convert other tools' sweep results into mixtures.csv + runs.csv.", no_args_is_help=True
)
PatternOpt = Annotated[
    str | None,
    typer.Option(help="Metric column per domain, e.g. 'eval/{domain}/CE loss' (default: shared affixes)."),
]
ImportStepOpt = Annotated[
    float | None,
    typer.Option(
        help="Step of each run's single evaluation, where the file has no `step` column (default 1).",
        callback=number(),
    ),
]
OldStepOpt = Annotated[
    float | None, typer.Option("--step", hidden=True, callback=renamed("--eval-step", number()))
]
OutDirOpt = Annotated[Path, typer.Option("--out", "-o", help="Directory for mixtures.csv and runs.csv.")]


def _write_import(result: Any, out: Path) -> None:
    from mixlab.laws import write_runs

    with atomic_dir(out) as tmp:
        write_mixtures(tmp / "mixtures.csv", result.mixtures)
        write_runs(tmp / "runs.csv", result.runs)
    if result.skipped_columns:
        warn(
            f"{len(result.skipped_columns)} metric columns match no domain and were skipped: {', '.join(result.skipped_columns[:5])}"
        )
    kind = "targets (metrics of the whole mixture)" if result.targets else "domains"
    out_console.print(
        f"{len(result.mixtures)} mixtures, {len(result.runs)} observations of "
        f"{result.runs['domain'].nunique()} {kind} → {out}/mixtures.csv, {out}/runs.csv"
    )


@import_app.command("olmix")
def import_olmix_cmd(
    ratios: Annotated[Path, typer.Argument(help="olmix ratios.csv (run or run_id, [name], domain columns).")],
    metrics: Annotated[
        Path, typer.Argument(help="olmix metrics.csv (run or run_id, [name], [step], metric columns).")
    ],
    out: OutDirOpt,
    eval_step: ImportStepOpt = None,
    step: OldStepOpt = None,
    metric_pattern: PatternOpt = None,
) -> None:
    """Import an olmix swarm (ratios.csv + metrics.csv joined on run or run_id).

    Metric columns that match no domain (downstream-task BPB) are imported as targets: fit them with a
    whole-mixture law (dml, regmix, transfer).

    Example: mixlab import olmix swarm/ratios.csv swarm/metrics.csv --out imported/
    """
    from mixlab.laws.importers import import_olmix

    step = either(eval_step, step, "--eval-step", "--step")
    _write_import(import_olmix(ratios, metrics, 1.0 if step is None else step, metric_pattern), out)


@import_app.command("regmix")
def import_regmix_cmd(
    mixtures: Annotated[Path, typer.Argument(help="RegMix mixture CSV (index, one column per domain).")],
    losses: Annotated[Path, typer.Argument(help="RegMix loss CSV (index, one loss column per domain).")],
    out: OutDirOpt,
    index_column: Annotated[str, typer.Option(help="Column joining the two files.")] = "index",
    eval_step: ImportStepOpt = None,
    step: OldStepOpt = None,
    metric_pattern: PatternOpt = None,
) -> None:
    """Import RegMix-style mixture/loss CSV pairs joined on an index column.

    Example: mixlab import regmix train_mixture_1m.csv train_pile_loss_1m.csv --out imported/
    """
    from mixlab.laws.importers import import_regmix

    step = either(eval_step, step, "--eval-step", "--step")
    _write_import(
        import_regmix(mixtures, losses, index_column, 1.0 if step is None else step, metric_pattern), out
    )


mixtures_app = typer.Typer(help="Make candidate mixtures.", no_args_is_help=True)


@mixtures_app.command("random")
def mixtures_random(
    ctx: typer.Context,
    n: Annotated[int, typer.Option(help="Number of mixtures.")],
    out: Annotated[Path, typer.Option(help="Output mixtures.csv.")],
    prior: Annotated[
        str,
        typer.Option(
            help="natural (token shares; needs --corpus), uniform, or a mixture (JSON, one-row CSV, FILE.csv:ROW)."
        ),
    ] = "natural",
    corpus: Annotated[
        Path | None, typer.Option(help="Corpus (domains; token shares for --prior natural).")
    ] = None,
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    text_field: TextFieldOpt = "text",
    skip_bad_rows: SkipOpt = False,
    concentration: Annotated[
        float,
        typer.Option(
            help="Dirichlet concentration around the prior (1 + uniform prior = flat).", callback=number(0.0)
        ),
    ] = 1.0,
    drop_below: Annotated[
        float | None,
        typer.Option(
            help="Weights below this are zeroed, the rest renormalised (default 0: keep all).",
            callback=fraction(),
        ),
    ] = None,
    min_weight: Annotated[
        float | None, typer.Option("--min-weight", hidden=True, callback=renamed("--drop-below", fraction()))
    ] = None,
    min_distance: Annotated[
        float,
        typer.Option(
            help="Reject a draw within this L1 distance of an accepted one (near-duplicate).",
            callback=number(0.0, strict=False),
        ),
    ] = 0.05,
    prefix: Annotated[str, typer.Option(help="Mixture names: PREFIX-000, PREFIX-001, ...")] = "random",
    domains: Annotated[
        str | None, typer.Option(help="Comma-separated domains for --prior uniform without a corpus.")
    ] = None,
) -> None:
    """Draw N mixtures from a Dirichlet around a prior (RegMix / olmix style) into mixtures.csv.

    Example: mixlab --seed 1 mixtures random --n 16 --prior natural --corpus demo_corpus --concentration 1 --drop-below 0.02 --out mixtures.csv
    """
    from mixlab.corpus import Corpus, corpus_stats, load_tokenizer, natural_mixture
    from mixlab.mixture import Mixture, write_mixtures
    from mixlab.proxy.candidates import random_mixtures

    drop_below = either(drop_below, min_weight, "--drop-below", "--min-weight")
    opened = Corpus.open(corpus, text_field) if corpus is not None else None
    if prior == "natural":
        if opened is None:
            raise BadInput("--prior natural needs --corpus (token shares of its domains)")
        with engine(ctx) as eng:
            tok = load_tokenizer(tokenizer, corpus=opened)
            weights = natural_mixture(corpus_stats(opened, tok, eng, skip_bad_rows=skip_bad_rows))
    elif prior == "uniform":
        names = opened.domains if opened is not None else comma_list(domains, "--domains") or []
        if len(names) < 2:
            raise BadInput("--prior uniform needs --corpus or --domains a,b,... (at least 2 domains)")
        weights = dict.fromkeys(names, 1.0)
    else:
        weights = read_mixture_ref(prior).weights
    names = list(weights)
    draws = random_mixtures(
        np.array([weights[d] for d in names]),
        n,
        concentration=concentration,
        min_weight=drop_below or 0.0,
        min_distance=min_distance,
        rng=np.random.default_rng(settings(ctx).seed),
    )
    mixtures = [
        Mixture.from_weights(f"{prefix}-{i:03d}", dict(zip(names, row, strict=True)))
        for i, row in enumerate(draws)
    ]
    write_mixtures(out, mixtures, names)
    out_console.print(f"wrote {len(mixtures)} mixtures over {len(names)} domains to {out}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.add_typer(import_app, name="import")
    app.add_typer(mixtures_app, name="mixtures")
