"""`corpus stats`: documents, bytes and tokens per domain, and the natural (token-share) mixture."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from mixlab.corpus.reader import Corpus, ReadStats, Shard, read_shard
from mixlab.corpus.tokenizer import Tokenizer
from mixlab.engine import Engine, LocalEngine


@dataclass
class DomainCounts:
    """Counts of one shard or, merged, of one domain."""

    documents: int = 0
    bytes: int = 0
    tokens: int = 0
    read: ReadStats = field(default_factory=ReadStats)

    def merge(self, other: DomainCounts) -> DomainCounts:
        return DomainCounts(
            self.documents + other.documents,
            self.bytes + other.bytes,
            self.tokens + other.tokens,
            self.read.merge(other.read),
        )


def count_shard(
    shard: Shard, tokenizer: Tokenizer | None, skip_bad_rows: bool = False
) -> tuple[str, DomainCounts]:
    """(domain, counts) of one shard; tokens are counted only when a tokenizer is given."""
    read = ReadStats()
    counts = DomainCounts(read=read)
    for batch in read_shard(shard, skip_bad_rows=skip_bad_rows, stats=read):
        if tokenizer is not None:
            counts.tokens += sum(tokenizer.count_tokens(batch.texts))
    counts.documents, counts.bytes = read.documents, read.bytes
    return shard.domain, counts


def _merge(a: dict[str, DomainCounts], b: dict[str, DomainCounts]) -> dict[str, DomainCounts]:
    for domain, counts in b.items():
        a[domain] = a[domain].merge(counts) if domain in a else counts
    return a


def corpus_stats(
    corpus: Corpus,
    tokenizer: Tokenizer | None = None,
    engine: Engine | None = None,
    skip_bad_rows: bool = False,
) -> dict:
    """Per-domain documents/bytes/tokens and shares, as a JSON-ready dict.

    Returns {"domains": {d: {"documents", "bytes", "tokens", "token_share", "byte_share", "skipped"}},
    "total": {...}, "tokenizer": spec}. `token_share` is the natural mixture (byte share without a tokenizer).
    """
    engine = engine or LocalEngine(1)
    fn = functools.partial(_count_one, tokenizer=tokenizer, skip_bad_rows=skip_bad_rows)
    merged = engine.map_reduce(fn, corpus.shards(), _merge, "corpus stats", initial={}) or {}
    per = {d: merged.get(d, DomainCounts()) for d in corpus.domains}
    total_tokens = sum(c.tokens for c in per.values())
    total_bytes = sum(c.bytes for c in per.values())
    domains = {}
    for d, c in per.items():
        domains[d] = {
            "documents": c.documents,
            "bytes": c.bytes,
            "tokens": c.tokens if tokenizer else None,
            "token_share": c.tokens / total_tokens if tokenizer and total_tokens else None,
            "byte_share": c.bytes / total_bytes if total_bytes else 0.0,
            "skipped": c.read.skipped,
        }
    return {
        "tokenizer": tokenizer.spec if tokenizer else None,
        "domains": domains,
        "total": {
            "documents": sum(c.documents for c in per.values()),
            "bytes": total_bytes,
            "tokens": total_tokens if tokenizer else None,
            "skipped": sum(c.read.skipped for c in per.values()),
        },
        "skipped_examples": [e for c in per.values() for e in c.read.skipped_examples][:10],
    }


def natural_mixture(stats: dict) -> dict[str, float]:
    """The natural mixture from `corpus_stats` output: token shares (byte shares without tokens)."""
    key = "token_share" if stats["tokenizer"] else "byte_share"
    return {d: float(v[key]) for d, v in stats["domains"].items()}


def _count_one(shard: Shard, tokenizer: Tokenizer | None, skip_bad_rows: bool) -> dict[str, DomainCounts]:
    domain, counts = count_shard(shard, tokenizer, skip_bad_rows)
    return {domain: counts}
