"""The entropy pass: tokenize every domain once, count unigrams and in-window pairs, embed documents.

One map over shards (`mixlab.engine`, local or Ray unchanged) and an exact merge per domain:

- Each shard's documents are tokenized and joined with EOS into one stream, cut into `seq_len`-token
  windows (windows restart at each shard: at most one window boundary per shard differs from packing
  the whole domain as one stream). Unigram counts are a dense bincount [V]; pair counts a sorted sparse
  table of int64 keys `x * V + x'` (`mixlab.entropy.SparseCounts`), merged exactly, never a V x V array.
- Convergence in the same pass: every window gets a pseudo-random number u in [0, 1) from a hash of
  (domain, shard, window index); counts are kept per band of u (cut at the convergence fractions,
  default 0.1 / 0.25 / 0.5 / 1). The windows with u < f are the first f of the tokens in a fixed
  shuffled order of the windows, so the cumulative band counts give the plug-in estimates on nested
  growing prefixes of ~10 / 25 / 50 / 100 % of the tokens. (A prefix of the shard order would confound
  sample size with whatever the shards are sorted by.)
- `max_tokens_per_domain` splits the budget over a domain's shards by file size (each shard reads up
  to its quota from its start), so the sample spreads over the domain; the rest of each shard is still
  read, without tokenizing, to count its text bytes, and the `natural` mixture then uses each domain's
  tokens estimated as tokens-per-byte (measured) x text bytes (all).
- VNE: the embedder turns the documents used into unit vectors; each shard returns XᵀX [d, d] and N,
  which add up exactly in shard order.

Results are deterministic and identical on every engine (integer counts; float grams summed in order).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mixlab.corpus.reader import Corpus, ReadStats, Shard, read_shard
from mixlab.corpus.tokenizer import Tokenizer
from mixlab.engine import Engine, LocalEngine
from mixlab.entropy import (
    SparseCounts,
    embedding_gram,
    entropy_mixture,
    pair_keys,
    token_entropies,
    von_neumann_entropy_from_gram,
)
from mixlab.errors import BadInput
from mixlab.mixture import Mixture

MEASURES = ("se", "ce", "je", "vne")
TOKEN_MEASURES = ("se", "ce", "je")
DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
FLUSH_MIN_KEYS = 1 << 21


class Embedder(Protocol):
    """What the pass needs of an embedder (`mixlab.embed.get_embedder(name)` returns one)."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim], unit-normalised rows."""


@functools.lru_cache(maxsize=4)
def load_embedder(name: str) -> Embedder:
    """The shared embedder registered under `name` (loaded once per process)."""
    try:
        from mixlab.embed import get_embedder
    except ImportError:
        raise BadInput(f"--embedder {name}: mixlab.embed is not available in this installation") from None
    return get_embedder(name)


def window_uniforms(seed: int, windows: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random u in [0, 1) per window index (splitmix64 of seed + index), float64 [n]."""
    with np.errstate(over="ignore"):
        z = np.asarray(windows, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _shard_seed(shard: Shard) -> int:
    digest = hashlib.blake2b(f"{shard.domain}\x00{shard.name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """Validated convergence fractions: strictly increasing in (0, 1], ending at 1."""
    fr = tuple(float(f) for f in fractions)
    if not fr or fr[-1] != 1.0 or any(not a < b for a, b in zip((0.0, *fr[:-1]), fr, strict=True)):
        raise BadInput(f"convergence fractions {fr}: must increase strictly in (0, 1] and end at 1")
    return fr


@dataclass
class EntropyCounts:
    """Counts of one shard or, merged, of one domain, kept per convergence band.

    `unigrams` int64 [bands, V]; `pairs` one SparseCounts per band; `gram` float64 [d, d] (XᵀX of the
    embedded documents) or None; `tokens_seen`/`bytes_seen` cover every tokenized document (also past a
    token quota), `bytes_unseen` the text bytes read but not tokenized (past the quota).
    """

    unigrams: np.ndarray
    pairs: list[SparseCounts]
    documents: int = 0
    gram: np.ndarray | None = None
    embedded: int = 0
    tokens_seen: int = 0
    bytes_seen: int = 0
    bytes_unseen: int = 0
    read: ReadStats = field(default_factory=ReadStats)

    @property
    def tokens(self) -> int:
        return int(self.unigrams.sum())

    def merge(self, other: EntropyCounts) -> EntropyCounts:
        if self.gram is None:
            gram = other.gram
        elif other.gram is None:
            gram = self.gram
        else:
            gram = self.gram + other.gram
        return EntropyCounts(
            self.unigrams + other.unigrams,
            [a.merge(b) for a, b in zip(self.pairs, other.pairs, strict=True)],
            self.documents + other.documents,
            gram,
            self.embedded + other.embedded,
            self.tokens_seen + other.tokens_seen,
            self.bytes_seen + other.bytes_seen,
            self.bytes_unseen + other.bytes_unseen,
            self.read.merge(other.read),
        )


class _PairAccumulator:
    """Per-band sparse pair tables fed with raw keys; buffers are sorted and merged in amortised bulk."""

    def __init__(self, n_bands: int) -> None:
        self.tables = [SparseCounts.empty() for _ in range(n_bands)]
        self.buffers: list[list[np.ndarray]] = [[] for _ in range(n_bands)]
        self.buffered = [0] * n_bands

    def add(self, band: int, keys: np.ndarray) -> None:
        if not len(keys):
            return
        self.buffers[band].append(keys)
        self.buffered[band] += len(keys)
        if self.buffered[band] >= max(FLUSH_MIN_KEYS, len(self.tables[band])):
            self._flush(band)

    def _flush(self, band: int) -> None:
        if self.buffers[band]:
            batch = SparseCounts.from_keys(np.concatenate(self.buffers[band]))
            self.tables[band] = self.tables[band].merge(batch)
            self.buffers[band], self.buffered[band] = [], 0

    def result(self) -> list[SparseCounts]:
        for band in range(len(self.tables)):
            self._flush(band)
        return self.tables


class _ShardCounter:
    """Counts of one shard's packed stream, fed batch by batch; only whole windows are counted until
    `finish` counts the last partial window. Windows are rows of a [k, seq_len] view: pairs never
    straddle a window and need no mask."""

    def __init__(self, vocab_size: int, seq_len: int, fractions: tuple[float, ...], seed: int, dtype) -> None:
        self.vocab_size, self.seq_len, self.seed = vocab_size, seq_len, seed
        self.cuts = np.asarray(fractions[:-1])
        self.n_bands = len(fractions)
        self.unigrams = np.zeros((self.n_bands, vocab_size), dtype=np.int64)
        self.pairs = _PairAccumulator(self.n_bands)
        self.pending = np.empty(0, dtype)
        self.next_window = 0

    def add(self, ids: np.ndarray) -> None:
        stream = np.concatenate([self.pending, ids]) if len(self.pending) else ids
        n_full = len(stream) // self.seq_len
        self._count(stream[: n_full * self.seq_len].reshape(n_full, self.seq_len))
        self.pending = stream[n_full * self.seq_len :].copy()

    def finish(self) -> tuple[np.ndarray, list[SparseCounts]]:
        if len(self.pending):
            self._count(self.pending[None, :])
            self.pending = self.pending[:0]
        return self.unigrams, self.pairs.result()

    def _count(self, windows: np.ndarray) -> None:
        if not len(windows):
            return
        index = np.arange(self.next_window, self.next_window + len(windows), dtype=np.int64)
        self.next_window += len(windows)
        bands = np.searchsorted(self.cuts, window_uniforms(self.seed, index), side="right")
        for band in range(self.n_bands):
            rows = windows if self.n_bands == 1 else windows[bands == band]
            if rows.size:
                self.unigrams[band] += np.bincount(rows.ravel(), minlength=self.vocab_size)
                self.pairs.add(band, pair_keys(rows, self.vocab_size).ravel())


def count_shard(
    task: tuple[Shard, int | None],
    tokenizer: Tokenizer,
    seq_len: int,
    fractions: tuple[float, ...],
    embedder: str | Embedder | None = None,
    skip_bad_rows: bool = False,
    batch_size: int = 1024,
) -> dict[str, EntropyCounts]:
    """Counts of one shard: `task` = (shard, token quota or None). Returns {domain: EntropyCounts}."""
    shard, quota = task
    emb = load_embedder(embedder) if isinstance(embedder, str) else embedder
    counter = _ShardCounter(
        tokenizer.vocab_size, seq_len, fractions, _shard_seed(shard), tokenizer.token_dtype
    )
    read = ReadStats()
    gram: np.ndarray | None = None
    documents = embedded = tokens_seen = bytes_seen = bytes_unseen = used = 0

    for batch in read_shard(shard, batch_size, skip_bad_rows=skip_bad_rows, stats=read):
        if quota is not None and used >= quota:
            bytes_unseen += sum(len(t.encode("utf-8")) for t in batch.texts)
            continue
        ids, offsets = tokenizer.encode_flat(batch.texts)
        tokens_seen += len(ids)
        bytes_seen += sum(len(t.encode("utf-8")) for t in batch.texts)
        texts = batch.texts
        if quota is not None and used + len(ids) > quota:
            ids = ids[: quota - used]
            texts = texts[: int(np.searchsorted(offsets[:-1], len(ids), side="left"))]
        counter.add(ids)
        used += len(ids)
        documents += len(texts)
        if emb is not None and texts:
            g, n = embedding_gram(emb.embed(list(texts)))
            gram = g if gram is None else gram + g
            embedded += n

    unigrams, pairs = counter.finish()
    counts = EntropyCounts(
        unigrams, pairs, documents, gram, embedded, tokens_seen, bytes_seen, bytes_unseen, read
    )
    return {shard.domain: counts}


def _merge(a: dict[str, EntropyCounts], b: dict[str, EntropyCounts]) -> dict[str, EntropyCounts]:
    for domain, counts in b.items():
        a[domain] = a[domain].merge(counts) if domain in a else counts
    return a


def shard_quotas(corpus: Corpus, max_tokens_per_domain: int | None) -> list[tuple[Shard, int | None]]:
    """(shard, token quota) for every shard: the domain budget split by file size, largest remainder."""
    tasks: list[tuple[Shard, int | None]] = []
    for domain in corpus.domains:
        shards = corpus.shards([domain])
        if max_tokens_per_domain is None:
            tasks.extend((s, None) for s in shards)
            continue
        sizes = np.array([max(s.size, 1) for s in shards], dtype=np.float64)
        exact = max_tokens_per_domain * sizes / sizes.sum()
        quota = np.floor(exact).astype(np.int64)
        remainder = max_tokens_per_domain - int(quota.sum())
        quota[np.argsort(-(exact - quota), kind="stable")[:remainder]] += 1
        tasks.extend((s, int(q)) for s, q in zip(shards, quota, strict=True))
    return tasks


@dataclass
class EntropyProfile:
    """The result of `profile_corpus`: per-domain entropies and the settings that produced them."""

    domains: dict[str, dict[str, Any]]
    measures: tuple[str, ...]
    settings: dict[str, Any]

    def entropies(self, measure: str) -> dict[str, float]:
        return {d: float(v[measure]) for d, v in self.domains.items()}

    def natural(self) -> dict[str, float]:
        """Token share per domain (estimated full-domain tokens when a token cap applied)."""
        tokens = {d: float(v["tokens_estimated"]) for d, v in self.domains.items()}
        total = sum(tokens.values())
        return {d: t / total for d, t in tokens.items()} if total else {d: 0.0 for d in tokens}

    def mixtures(self) -> list[Mixture]:
        """natural, uniform, then one softmax mixture per computed measure."""
        domains = list(self.domains)
        out = [
            Mixture.from_weights("natural", self.natural(), where="natural mixture"),
            Mixture.from_weights("uniform", dict.fromkeys(domains, 1.0)),
        ]
        for m in self.measures:
            out.append(Mixture.from_weights(m, entropy_mixture(self.entropies(m)), where=f"{m} mixture"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.settings,
            "measures": list(self.measures),
            "domains": self.domains,
            "mixtures": {m.name: m.weights for m in self.mixtures()},
        }


def domain_entropies(
    counts: EntropyCounts,
    vocab_size: int,
    measures: Sequence[str],
    fractions: Sequence[float],
    miller_madow: bool = False,
) -> dict[str, Any]:
    """Entropies (nats) of one domain's merged counts, plus the convergence table over the bands."""
    cumulative_unigrams = np.cumsum(counts.unigrams, axis=0)
    cumulative_pairs: list[SparseCounts] = []
    for table in counts.pairs:
        cumulative_pairs.append(cumulative_pairs[-1].merge(table) if cumulative_pairs else table)

    def selected(values: dict[str, float]) -> dict[str, float]:
        return {m: values[m] for m in TOKEN_MEASURES if m in measures}

    full_unigrams, full_pairs = cumulative_unigrams[-1], cumulative_pairs[-1]
    convergence: dict[str, list[Any]] = {"fractions": list(fractions), "tokens": []}
    convergence.update({m: [] for m in TOKEN_MEASURES if m in measures})
    for unigrams, pairs in zip(cumulative_unigrams, cumulative_pairs, strict=True):
        values = token_entropies(unigrams, pairs, vocab_size, miller_madow)
        convergence["tokens"].append(int(unigrams.sum()))
        for m, v in selected(values).items():
            convergence[m].append(v)
    out: dict[str, Any] = {
        "tokens": int(full_unigrams.sum()),
        "documents": counts.documents,
        "pairs": full_pairs.total,
        "unique_tokens": int(np.count_nonzero(full_unigrams)),
        "unique_pairs": len(full_pairs),
        **selected(values),
    }
    if "vne" in measures:
        out["vne"] = (
            von_neumann_entropy_from_gram(counts.gram, counts.embedded) if counts.gram is not None else 0.0
        )
        out["embedded_documents"] = counts.embedded
    out["first_position_entropy"] = values["first"]
    if miller_madow:
        out["plug_in"] = selected(token_entropies(full_unigrams, full_pairs, vocab_size))
    out["convergence"] = convergence
    seen = counts.bytes_seen + counts.bytes_unseen
    per_byte = counts.tokens_seen / counts.bytes_seen if counts.bytes_seen else 0.0
    out["tokens_estimated"] = int(round(counts.tokens_seen + counts.bytes_unseen * per_byte))
    out["text_bytes"] = seen
    out["skipped_rows"] = counts.read.skipped
    return out


def profile_corpus(
    corpus: Corpus,
    tokenizer: Tokenizer,
    engine: Engine | None = None,
    measures: Sequence[str] = TOKEN_MEASURES,
    seq_len: int = 1024,
    max_tokens_per_domain: int | None = None,
    embedder: str | Embedder | None = None,
    miller_madow: bool = False,
    skip_bad_rows: bool = False,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> EntropyProfile:
    """Run the entropy pass over `corpus` and compute the requested measures per domain.

    `measures` ⊆ {se, ce, je, vne}; `vne` needs `embedder` (a name for `mixlab.embed.get_embedder`, or
    an object with `.embed(texts) -> [n, d]`, picklable for multi-process engines). Entropies in nats.
    """
    measures = tuple(dict.fromkeys(m.strip().lower() for m in measures if m.strip()))
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise BadInput(f"--measures {','.join(measures)}: expected a subset of {','.join(MEASURES)}")
    if seq_len < 2:
        raise BadInput(f"--seq-len {seq_len}: must be at least 2")
    if max_tokens_per_domain is not None and max_tokens_per_domain < seq_len:
        raise BadInput(
            f"--max-tokens-per-domain {max_tokens_per_domain}: must be at least --seq-len {seq_len}"
        )
    if "vne" in measures and embedder is None:
        raise BadInput("--measures vne needs --embedder")
    fractions = check_fractions(fractions)
    engine = engine or LocalEngine(1)
    fn = functools.partial(
        count_shard,
        tokenizer=tokenizer,
        seq_len=seq_len,
        fractions=fractions,
        embedder=embedder if "vne" in measures else None,
        skip_bad_rows=skip_bad_rows,
    )
    tasks = shard_quotas(corpus, max_tokens_per_domain)
    merged = engine.map_reduce(fn, tasks, _merge, "entropy pass", initial={}) or {}
    domains = {}
    for domain in corpus.domains:
        if domain not in merged or merged[domain].tokens == 0:
            raise BadInput(f"{corpus.root}/{domain}: no tokens to count (every row empty or skipped)")
        domains[domain] = domain_entropies(
            merged[domain], tokenizer.vocab_size, measures, fractions, miller_madow
        )
    emb_name = embedder if isinstance(embedder, str) else getattr(embedder, "name", None)
    settings = {
        "corpus": corpus.root,
        "tokenizer": tokenizer.spec,
        "vocab_size": tokenizer.vocab_size,
        "seq_len": seq_len,
        "max_tokens_per_domain": max_tokens_per_domain,
        "miller_madow": miller_madow,
        "embedder": emb_name if "vne" in measures else None,
        "units": "nats",
        "convergence_order": "windows in a fixed hash-shuffled order (nested samples)",
    }
    return EntropyProfile(domains, measures, settings)


__all__ = [
    "MEASURES",
    "Embedder",
    "EntropyCounts",
    "EntropyProfile",
    "count_shard",
    "domain_entropies",
    "load_embedder",
    "profile_corpus",
    "shard_quotas",
    "window_uniforms",
]
