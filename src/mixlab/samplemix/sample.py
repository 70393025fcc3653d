"""The corpus pass behind `mixlab sample` (Python API: `sample_corpus`).

Counts from `sampler.domain_counts` over the weights of scores.parquet, then per shard the documents are
written `count` times into random buckets, and each bucket is shuffled and appended to `SAMPLE_DIR/data/`
(memory bounded by one bucket), plus `counts.parquet`, `summary.json` and `summary.png`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mixlab.corpus import Corpus, ParquetShardWriter, Shard, read_shard
from mixlab.engine import Engine, LocalEngine
from mixlab.errors import BadInput, MixlabWarning
from mixlab.figures import load_plotting
from mixlab.files import atomic_dir, write_json
from mixlab.samplemix.plots import summary_png
from mixlab.samplemix.sampler import domain_counts, sampling_weights
from mixlab.samplemix.scores_file import read_scores

DEFAULT_MAX_REPEATS = 4
# a domain whose realised share is further than this fraction of its target share from it is reported
TARGET_TOLERANCE = 0.01


@dataclass(frozen=True)
class SampleConfig:
    """Options of `sample_corpus` (the CLI's flags). `max_repeats=None` lifts the cap on copies of a document;
    the default, 4, is the common practice for repeated pre-training data."""

    budget_tokens: float
    alpha: float = 0.8
    normalisation: str = "minmax"
    max_repeats: int | None = DEFAULT_MAX_REPEATS
    target_mixture: dict[str, float] | None = None
    min_share: dict[str, float] | None = None
    max_share: dict[str, float] | None = None
    seed: int = 0
    skip_bad_rows: bool = False
    bucket_bytes: int = 64 << 20
    rows_per_file: int = 100_000


def _write_buckets(
    item: tuple[int, Shard, np.ndarray, pa.Array], tmp: str, n_buckets: int, seed: int, skip_bad_rows: bool
) -> int:
    """Write every document of a shard `count` times into random buckets; returns rows written."""
    index, shard, counts, shard_ids = item
    expected_ids = shard_ids.to_pylist()
    rng = np.random.default_rng([seed, index])
    rows: dict[int, dict[str, list]] = {}
    position = 0
    for batch in read_shard(shard, skip_bad_rows=skip_bad_rows):
        n = len(batch.ids)
        if batch.ids != expected_ids[position : position + n]:
            j = next(
                (
                    j
                    for j, doc_id in enumerate(batch.ids)
                    if position + j >= len(expected_ids) or doc_id != expected_ids[position + j]
                ),
            )
            at = position + j
            raise BadInput(
                f"{shard.path}: document {at} (id {batch.ids[j]}) does not match scores.parquet"
                f" ({expected_ids[at] if at < len(expected_ids) else 'no more rows'}); rescore"
            )
        copies = np.repeat(np.arange(n), counts[position : position + n])  # row of each copy, in row order
        buckets = rng.integers(0, n_buckets, size=copies.size)
        order = np.argsort(buckets, kind="stable")
        bounds = np.flatnonzero(np.diff(buckets[order])) + 1
        for group in np.split(order, bounds) if copies.size else []:
            bucket = rows.setdefault(int(buckets[group[0]]), {"id": [], "domain": [], "text": []})
            picked = copies[group].tolist()
            bucket["id"].extend(batch.ids[i] for i in picked)
            bucket["domain"].extend([shard.domain] * len(picked))
            bucket["text"].extend(batch.texts[i] for i in picked)
        position += n
    if position != len(expected_ids):
        raise BadInput(f"{shard.path}: {position} documents, scores.parquet has {len(expected_ids)}; rescore")
    for b, columns in rows.items():
        path = Path(tmp) / f"bucket-{b:05d}" / f"shard-{index:05d}.arrow"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table(columns)
        # Arrow IPC, not parquet: a scratch file read once, by memory map (no encode/decode)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    return sum(len(c["id"]) for c in rows.values())


def _shard_items(corpus: Corpus, table: pa.Table, layout, scores_path, corpus_path) -> list[tuple]:
    """(index, shard, first row, rows, the shard's ids) per entry of the scores' shard layout, after checking
    that the layout names shards of this corpus, covers every row, and agrees with the `domain` column."""
    if layout is None:
        raise BadInput(f"{scores_path}: no shard layout in its metadata (write it with `mixlab score`)")
    covered = sum(int(entry["documents"]) for entry in layout)
    if covered != table.num_rows:
        raise BadInput(f"{scores_path}: shard layout covers {covered} rows, the file has {table.num_rows}")
    by_name = {(s.domain, s.name): s for s in corpus.shards()}
    ids, domain = table.column("doc_id"), table.column("domain")
    items = []
    start = 0
    for index, entry in enumerate(layout):
        shard = by_name.get((entry["domain"], entry["name"]))
        if shard is None:
            raise BadInput(
                f"{scores_path}: shard {entry['domain']}/{entry['name']} is not in corpus {corpus_path}"
            )
        n = int(entry["documents"])
        rows = domain.slice(start, n).to_numpy(zero_copy_only=False)
        wrong = np.flatnonzero(rows != shard.domain)
        if wrong.size:
            raise BadInput(
                f"{scores_path}: row {start + int(wrong[0])}: field 'domain' is '{rows[wrong[0]]}', but the"
                f" shard layout puts the row in {shard.domain}/{shard.name}"
            )
        # a compact copy of the shard's ids: a slice would pickle the whole column
        shard_ids = pa.concat_arrays(ids.slice(start, n).chunks or [pa.array([], pa.string())])
        items.append((index, shard, start, n, shard_ids))
        start += n
    return items


def sample_corpus(
    corpus_path: Corpus | str | os.PathLike[str],
    scores_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: SampleConfig,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Draw documents by SampleMix counts under a token budget and write SAMPLE_DIR (see module docstring).

    Returns the summary (also `summary.json`): budget, realised tokens, domain distribution before (pool)
    and after (sample), per-domain budgets, the histogram of copies per document.
    """
    corpus = corpus_path if isinstance(corpus_path, Corpus) else Corpus.open(corpus_path)
    engine = engine or LocalEngine(1)
    table, layout = read_scores(scores_path)
    shard_rows = _shard_items(corpus, table, layout, scores_path, corpus.root)
    # ids and domains stay Arrow arrays (no Python string per document); domains in order of appearance
    domain_col = table.column("domain").combine_chunks().dictionary_encode()
    domains = domain_col.dictionary.to_pylist()
    codes = domain_col.indices.to_numpy().astype(np.int64)
    tokens = table.column("tokens").to_numpy().astype(np.int64)
    p = sampling_weights(
        table.column("quality").to_numpy(),
        table.column("diversity").to_numpy(),
        config.alpha,
        config.normalisation,
    )
    counts, budgets = domain_counts(
        p,
        tokens,
        codes,
        domains,
        config.budget_tokens,
        np.random.default_rng(config.seed),
        config.max_repeats,
        config.target_mixture,
        config.min_share,
        config.max_share,
    )
    items = [(index, shard, counts[start : start + n], ids) for index, shard, start, n, ids in shard_rows]

    realised = int(counts @ tokens)
    mean_bytes_per_token = 4.0
    n_buckets = max(1, math.ceil(realised * mean_bytes_per_token / config.bucket_bytes))
    summary = _summary(config, domains, codes, tokens, counts, budgets, realised)
    _warn(summary, config)
    out = Path(out)
    with atomic_dir(out) as tmp, ThreadPoolExecutor(1, thread_name_prefix="mixlab-plot") as background:
        buckets_dir = tmp / ".buckets"
        fn = functools.partial(
            _write_buckets,
            tmp=str(buckets_dir),
            n_buckets=n_buckets,
            seed=config.seed,
            skip_bad_rows=config.skip_bad_rows,
        )
        # closing: an interrupt outside the map still stops the workers before the temporary directory goes
        with contextlib.closing(engine.imap(fn, items, "writing sampled documents")) as writing:
            written = next(writing, 0)  # every shard is queued on the workers now
            # While they write: this thread imports the plotting libraries, then the plot is drawn on a
            # thread that must not import (see `load_plotting`); leaving the outer `with` joins it before
            # the temporary directory goes.
            load_plotting()
            png = background.submit(summary_png, dict(summary))
            written += sum(writing)
        with ParquetShardWriter(tmp / "data", rows_per_shard=config.rows_per_file) as writer:
            for b in range(n_buckets):
                pieces = sorted((buckets_dir / f"bucket-{b:05d}").glob("*.arrow"))
                if not pieces:
                    continue
                bucket = pa.concat_tables(
                    [pa.ipc.open_file(pa.memory_map(str(p))).read_all() for p in pieces]
                )
                perm = np.random.default_rng([config.seed, 1 << 20, b]).permutation(bucket.num_rows)
                writer.write(bucket.take(pa.array(perm)))
                shutil.rmtree(buckets_dir / f"bucket-{b:05d}")
        shutil.rmtree(buckets_dir, ignore_errors=True)
        if written != int(counts.sum()):
            raise RuntimeError(f"wrote {written} documents, counts say {int(counts.sum())}")
        summary["data_files"] = len(writer.paths)
        pq.write_table(
            pa.table(
                {
                    "doc_id": table.column("doc_id"),
                    "domain": table.column("domain"),
                    "tokens": pa.array(tokens, pa.int64()),
                    "count": pa.array(counts, pa.int64()),
                }
            ),
            tmp / "counts.parquet",
        )
        (tmp / "summary.png").write_bytes(png.result())
        write_json(tmp / "summary.json", summary)
    return summary


def _summary(config, domains, codes, tokens, counts, budgets, realised) -> dict[str, Any]:
    m = len(domains)
    pool = np.bincount(codes, weights=tokens, minlength=m)
    sample = np.bincount(codes, weights=tokens * counts, minlength=m)
    copies, documents = np.unique(counts, return_counts=True)  # not bincount: its size is the largest count
    return {
        "budget_tokens": float(config.budget_tokens),
        "realised_tokens": realised,
        "realised_over_budget": realised / float(config.budget_tokens),
        "pool_tokens": int(tokens.sum()),
        "documents": int(counts.size),
        "documents_drawn": int((counts > 0).sum()),
        "copies": int(counts.sum()),
        "alpha": config.alpha,
        "normalisation": config.normalisation,
        "max_repeats": config.max_repeats,
        "seed": config.seed,
        "constraints": {
            "target_mixture": config.target_mixture,
            "min_share": config.min_share,
            "max_share": config.max_share,
        },
        "domains": {
            d: {
                "before": float(pool[j] / pool.sum()) if pool.sum() else 0.0,
                "after": float(sample[j] / sample.sum()) if sample.sum() else 0.0,
                "pool_tokens": int(pool[j]),
                "sampled_tokens": int(sample[j]),
                "budget_tokens": float(budgets.get(d, 0.0)),
                **({"target": _target_share(config.target_mixture, d)} if config.target_mixture else {}),
            }
            for j, d in enumerate(domains)
        },
        "repeats_histogram": {
            str(c): int(n) for c, n in zip(copies.tolist(), documents.tolist(), strict=True)
        },
    }


def _target_share(target: dict[str, float], domain: str) -> float:
    return float(target.get(domain, 0.0)) / float(sum(target.values()))


def _warn(summary: dict[str, Any], config: SampleConfig) -> None:
    """MixlabWarning when the sample repeats documents (the budget exceeds the pool) or misses a domain's
    target share by more than TARGET_TOLERANCE of that share."""
    budget, pool = summary["budget_tokens"], summary["pool_tokens"]
    if budget > pool:
        cap = "no cap" if config.max_repeats is None else f"at most {config.max_repeats} copies each"
        warnings.warn(
            MixlabWarning(
                f"`budget` {budget:,.0f} tokens exceeds the pool of {pool:,} tokens: documents repeat"
                f" ({budget / pool:.2f}× the pool on average, {cap}, see `max_repeats`)"
            ),
            stacklevel=3,
        )
    for name, d in summary["domains"].items():
        target = d.get("target")
        if target is not None and abs(d["after"] - target) > TARGET_TOLERANCE * target:
            warnings.warn(
                MixlabWarning(
                    f"domain {name}: realised share {d['after']:.4f} misses the `target` share {target:.4f} by"
                    f" {abs(d['after'] - target) / target:.1%} of it"
                ),
                stacklevel=3,
            )


__all__ = ["DEFAULT_MAX_REPEATS", "SampleConfig", "sample_corpus"]
