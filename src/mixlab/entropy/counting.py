"""The counting half of the entropy pass: one shard's unigram and in-window pair counts, their exact merge.

Each shard's documents are tokenized and joined with EOS into one stream, cut into `seq_len`-token windows
(windows restart at each shard). Unigram counts are a dense bincount [V]; pair counts a sorted sparse table
of int64 keys `x * V + x'` (`mixlab.entropy.measures.SparseCounts`), merged exactly, never a V x V array.
Every window gets a pseudo-random u in [0, 1) from a hash of (seed, domain, shard, window index) and its
counts go to the band of u (cut at the convergence fractions), so cumulative bands are nested samples.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from mixlab.corpus.reader import Corpus, ReadStats, Shard, read_shard
from mixlab.corpus.tokenizer import Tokenizer
from mixlab.embed import Embedder
from mixlab.entropy.measures import SparseCounts, embedding_gram, pair_keys
from mixlab.errors import BadInput

FLUSH_MIN_KEYS = 1 << 19


def window_uniforms(seed: int, windows: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random u in [0, 1) per window index (splitmix64 of seed + index), float64 [n]."""
    with np.errstate(over="ignore"):
        z = np.asarray(windows, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _shard_seed(shard: Shard, seed: int) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{shard.domain}\x00{shard.name}".encode(), digest_size=8).digest()
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
    embedded documents) or None; `tokens_seen` (document tokens, no EOS) and `bytes_seen` cover every
    tokenized document (also past a token quota), `bytes_unseen` the text bytes read but not tokenized.
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
            _merge_bands(self.pairs, other.pairs),
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
    task: ShardTask,
    tokenizer: Tokenizer,
    seq_len: int,
    fractions: tuple[float, ...],
    embedder: Embedder | None = None,
    skip_bad_rows: bool = False,
    batch_size: int = 1024,
    seed: int = 0,
) -> dict[str, EntropyCounts]:
    """Counts of one shard (and the embedding gram of its first documents when `embedder` is given)."""
    shard, quota, embed_quota = task.shard, task.tokens, task.documents
    counter = _ShardCounter(
        tokenizer.vocab_size, seq_len, fractions, _shard_seed(shard, seed), tokenizer.token_dtype
    )
    read = ReadStats()
    gram: np.ndarray | None = None
    documents = embedded = embedded_docs = tokens_seen = bytes_seen = bytes_unseen = used = 0

    if quota is not None:
        batch_size = min(batch_size, 16)  # tokenize little past the quota (documents can be long)
    for batch in read_shard(shard, batch_size, skip_bad_rows=skip_bad_rows, stats=read):
        if quota is not None and used >= quota:
            bytes_unseen += sum(len(t.encode("utf-8")) for t in batch.texts)
            continue
        ids, offsets = tokenizer.encode_flat(batch.texts)
        tokens_seen += len(ids) - (len(batch) if tokenizer.eos_id is not None else 0)
        bytes_seen += sum(len(t.encode("utf-8")) for t in batch.texts)
        texts = batch.texts
        if quota is not None and used + len(ids) > quota:
            ids = ids[: quota - used]
            texts = texts[: int(np.searchsorted(offsets[:-1], len(ids), side="left"))]
        counter.add(ids)
        used += len(ids)
        documents += len(texts)
        to_embed = texts if embed_quota is None else texts[: max(embed_quota - embedded_docs, 0)]
        if embedder is not None and to_embed:
            vectors = embedder.embed(list(to_embed))
            with threadpool_limits(1):  # a [n, d] x [d, n] product: BLAS threads only fight for the cores
                g, n = embedding_gram(vectors)
            gram = g if gram is None else gram + g
            embedded += n
            embedded_docs += len(to_embed)

    unigrams, pairs = counter.finish()
    counts = EntropyCounts(
        unigrams, pairs, documents, gram, embedded, tokens_seen, bytes_seen, bytes_unseen, read
    )
    return {shard.domain: counts}


class ShardCounting:
    """The map function of the pass: `count_shard` with the pass's settings bound.

    It pickles to a content key plus the settings' bytes (made once). A worker process unpickles the
    tokenizer and the embedder for the first task only and reuses them, already loaded, for every later
    task of the same pass: rebuilding a tokenizer or reloading an embedding model per shard would cost
    more than counting the shard.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self._payload: tuple[str, bytes] | None = None

    def __call__(self, task: ShardTask) -> dict[str, EntropyCounts]:
        return count_shard(task, **self.kwargs)

    def __reduce__(self) -> tuple[Any, tuple[str, bytes]]:
        if self._payload is None:
            data = pickle.dumps(self.kwargs, protocol=pickle.HIGHEST_PROTOCOL)
            self._payload = (hashlib.blake2b(data, digest_size=16).hexdigest(), data)
        return _restore_counting, self._payload


_PROCESS_COUNTING: dict[str, ShardCounting] = {}


def _restore_counting(key: str, data: bytes) -> ShardCounting:
    fn = _PROCESS_COUNTING.get(key)
    if fn is None:
        _PROCESS_COUNTING.clear()  # keep only the current pass's tokenizer and model in a worker
        fn = _PROCESS_COUNTING[key] = ShardCounting(**pickle.loads(data))
    return fn


def _merge_bands(a: list[SparseCounts], b: list[SparseCounts]) -> list[SparseCounts]:
    return [x.merge(y) for x, y in zip(a, b, strict=True)]


class CountsStack:
    """Merges a stream of EntropyCounts. Dense parts (unigrams [bands, V], the gram, totals) are summed as
    they arrive; the sparse pair tables merge like a binary counter: the newest two whenever the newer is
    at least half the size of the older. Folding shard after shard into one growing table would cost
    O(shards x distinct pairs); this costs O(distinct pairs x log shards) and holds < 2x the final table.
    Integer counts make the result independent of the merge order."""

    def __init__(self) -> None:
        self.dense: EntropyCounts | None = None
        self.stack: list[list[SparseCounts]] = []

    def add(self, counts: EntropyCounts) -> CountsStack:
        dense = replace(counts, pairs=[SparseCounts.empty()] * len(counts.pairs))
        self.dense = dense if self.dense is None else self.dense.merge(dense)
        self.stack.append(counts.pairs)
        while len(self.stack) > 1 and 2 * _table_size(self.stack[-1]) >= _table_size(self.stack[-2]):
            newer = self.stack.pop()
            self.stack[-1] = _merge_bands(self.stack[-1], newer)
        return self

    def result(self) -> EntropyCounts:
        pairs = self.stack[-1]
        for older in reversed(self.stack[:-1]):
            pairs = _merge_bands(older, pairs)
        return replace(self.dense, pairs=pairs)


def _table_size(bands: list[SparseCounts]) -> int:
    return sum(len(p) for p in bands) + 1


def merge_counts(acc: dict[str, CountsStack], shard: dict[str, EntropyCounts]) -> dict[str, CountsStack]:
    """Fold one shard's counts into the per-domain stacks (in shard order)."""
    for domain, counts in shard.items():
        acc.setdefault(domain, CountsStack()).add(counts)
    return acc


@dataclass(frozen=True)
class ShardTask:
    """One shard and its share of the per-domain budgets (None: no limit)."""

    shard: Shard
    tokens: int | None = None
    documents: int | None = None


def split_budget(sizes: Sequence[int], budget: int) -> list[int]:
    """`budget` split in proportion to `sizes` (largest remainder; shares sum to `budget` exactly)."""
    weights = np.array([max(s, 1) for s in sizes], dtype=np.float64)
    exact = budget * weights / weights.sum()
    share = np.floor(exact).astype(np.int64)
    share[np.argsort(-(exact - share), kind="stable")[: budget - int(share.sum())]] += 1
    return [int(x) for x in share]


def shard_tasks(
    corpus: Corpus, max_tokens_per_domain: int | None = None, max_documents_per_domain: int | None = None
) -> list[ShardTask]:
    """A task per shard; each domain's token and embedding budgets are split over its shards by file size."""
    tasks: list[ShardTask] = []
    for domain in corpus.domains:
        shards = corpus.shards([domain])
        sizes = [s.size for s in shards]
        tokens = split_budget(sizes, max_tokens_per_domain) if max_tokens_per_domain else [None] * len(shards)
        docs = (
            split_budget(sizes, max_documents_per_domain)
            if max_documents_per_domain
            else [None] * len(shards)
        )
        tasks.extend(ShardTask(s, t, d) for s, t, d in zip(shards, tokens, docs, strict=True))
    return tasks


__all__ = [
    "CountsStack",
    "EntropyCounts",
    "ShardCounting",
    "ShardTask",
    "check_fractions",
    "count_shard",
    "merge_counts",
    "shard_tasks",
    "split_budget",
    "window_uniforms",
]
