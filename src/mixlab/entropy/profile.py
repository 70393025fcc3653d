"""The entropy pass: tokenize every domain once, count unigrams and in-window pairs, embed documents.

One map over shards (`mixlab.engine`, local or Ray unchanged) and an exact merge per domain:

- Each shard's documents are tokenized and joined with EOS into one stream, cut into `seq_len`-token
  windows (windows restart at each shard: at most one window boundary per shard differs from packing
  the whole domain as one stream). Unigram counts are a dense bincount [V]; pair counts a sorted sparse
  table of int64 keys `x * V + x'` (`mixlab.entropy.measures.SparseCounts`), merged exactly, never a V x V array.
- Convergence in the same pass: every window gets a pseudo-random number u in [0, 1) from a hash of
  (seed, domain, shard, window index); counts are kept per band of u (cut at the convergence fractions,
  default 0.1 / 0.25 / 0.5 / 1). The windows with u < f are the first f of the tokens in a fixed
  shuffled order of the windows, so the cumulative band counts give the plug-in estimates on nested
  growing prefixes of ~10 / 25 / 50 / 100 % of the tokens. (A prefix of the shard order would confound
  sample size with whatever the shards are sorted by.)
- `max_tokens_per_domain` splits the budget over a domain's shards by file size (each shard reads up
  to its quota from its start), so the sample spreads over the domain; the rest of each shard is still
  read, without tokenizing, to count its text bytes, and the `natural` mixture then uses each domain's
  tokens estimated as tokens-per-byte (measured) x text bytes (all).
- VNE: the embedder (`mixlab.embed`, default `static`) turns the documents used into unit vectors
  (optionally only the first `vne_max_documents_per_domain`, split over shards by size like tokens);
  each shard returns XᵀX [d, d] and N, summed in shard order.

Results are deterministic and identical on every engine (integer counts; float grams summed in order).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from mixlab.atomic import atomic_path
from mixlab.corpus.reader import Corpus, ReadStats, Shard, read_shard
from mixlab.corpus.tokenizer import Tokenizer
from mixlab.embed import DEFAULT_EMBEDDER, Embedder, get_embedder
from mixlab.engine import Engine, LocalEngine
from mixlab.entropy.measures import (
    SparseCounts,
    embedding_gram,
    entropy_mixture,
    pair_keys,
    token_entropies,
    von_neumann_entropy_from_gram,
)
from mixlab.errors import BadInput
from mixlab.mixture import Mixture
from mixlab.progress import log

MEASURES = ("se", "ce", "je", "vne")
TOKEN_MEASURES = ("se", "ce", "je")
DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
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


def _merge(acc: dict[str, CountsStack], shard: dict[str, EntropyCounts]) -> dict[str, CountsStack]:
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


@dataclass
class EntropyProfile:
    """The result of `profile_corpus`: per-domain entropies and the settings that produced them."""

    domains: dict[str, dict[str, Any]]
    measures: tuple[str, ...]
    settings: dict[str, Any]

    def entropies(self, measure: str) -> dict[str, float]:
        return {d: float(v[measure]) for d, v in self.domains.items()}

    def natural(self) -> dict[str, float]:
        """Token share per domain, as `corpus stats` (document tokens, no EOS; estimated under a token cap)."""
        tokens = {d: float(v["domain_tokens"]) for d, v in self.domains.items()}
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
        # a d x d eigen-solve (d ~ 384) is fastest on one thread; BLAS threads only fight for the cores
        with threadpool_limits(1):
            vne = (
                von_neumann_entropy_from_gram(counts.gram, counts.embedded)
                if counts.gram is not None
                else 0.0
            )
        out["vne"] = vne
        out["embedded_documents"] = counts.embedded
    out["first_position_entropy"] = values["first"]
    if miller_madow:
        out["plug_in"] = selected(token_entropies(full_unigrams, full_pairs, vocab_size))
    # the estimate's change over the last doubling of the sample (50 % -> 100 % by default): near 0 when
    # the plug-in estimate has converged; the plug-in bias makes it positive while it has not
    convergence["last_step_change"] = {
        m: convergence[m][-1] - convergence[m][-2] if len(fractions) > 1 else 0.0
        for m in TOKEN_MEASURES
        if m in measures
    }
    out["convergence"] = convergence
    seen = counts.bytes_seen + counts.bytes_unseen
    per_byte = counts.tokens_seen / counts.bytes_seen if counts.bytes_seen else 0.0
    out["domain_tokens"] = int(round(counts.tokens_seen + counts.bytes_unseen * per_byte))
    out["domain_tokens_estimated"] = counts.bytes_unseen > 0
    out["text_bytes"] = seen
    out["skipped_rows"] = counts.read.skipped
    return out


def _pass_key(corpus: Corpus, tokenizer: Tokenizer, tasks: list[ShardTask], **settings: Any) -> str:
    """What the counts of a pass depend on: the corpus files, the tokenizer, the tasks and the settings."""
    h = hashlib.blake2b(digest_size=16)
    h.update(corpus.fingerprint().encode())
    h.update(tokenizer.hf.to_str().encode())
    budgets = [(t.shard.domain, t.shard.name, t.tokens, t.documents) for t in tasks]
    h.update(json.dumps([budgets, {k: repr(v) for k, v in sorted(settings.items())}]).encode())
    return h.hexdigest()


def _resume(checkpoint: Path | None, key: str, n_tasks: int) -> tuple[int, dict[str, CountsStack]]:
    """(shards already counted, their merged counts) from a checkpoint of the same pass; (0, {}) otherwise."""
    if checkpoint is None or not checkpoint.is_file():
        return 0, {}
    try:
        state = pickle.loads(checkpoint.read_bytes())
    except Exception:
        state = None
    if not isinstance(state, dict) or state.get("key") != key or not 0 < state.get("done", 0) < n_tasks:
        log(f"{checkpoint}: from another corpus or other settings; counting from the start")
        return 0, {}
    log(f"resuming the entropy pass: {state['done']} of {n_tasks} shards were counted before")
    return state["done"], state["stacks"]


def profile_corpus(
    corpus: Corpus,
    tokenizer: Tokenizer,
    engine: Engine | None = None,
    measures: Sequence[str] = TOKEN_MEASURES,
    seq_len: int = 1024,
    max_tokens_per_domain: int | None = None,
    embedder: str | Embedder = DEFAULT_EMBEDDER,
    vne_max_documents_per_domain: int | None = None,
    miller_madow: bool = False,
    skip_bad_rows: bool = False,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every_s: float = 60.0,
) -> EntropyProfile:
    """Run the entropy pass over `corpus` and compute the requested measures per domain (nats).

    `measures` ⊆ {se, ce, je, vne}. `embedder` (used for `vne` only) is a `mixlab.embed` name or any
    object with `.embed(texts) -> [n, d]` (picklable for multi-process engines). `seed` picks the window
    order of the convergence samples only; the full-sample entropies do not depend on it.

    With `checkpoint` (a file path) the merged counts of the shards done so far are saved there every
    `checkpoint_every_s` seconds (less often when writing them takes over 5 % of that), and a later call
    with the same corpus and settings resumes after them (the results are identical to an uninterrupted
    pass: counts merge in the same shard order).
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
    for name, value in (
        ("--max-tokens-per-domain", max_tokens_per_domain),
        ("--vne-max-documents", vne_max_documents_per_domain),
    ):
        if value is not None and value < 1:
            raise BadInput(f"{name} {value}: must be positive")
    if not checkpoint_every_s >= 0:  # also NaN, which would never save
        raise BadInput(f"--checkpoint-every {checkpoint_every_s}: must be a number of seconds ≥ 0")
    emb = None
    if "vne" in measures:
        emb = get_embedder(embedder) if isinstance(embedder, str) else embedder
    fractions = check_fractions(fractions)
    engine = engine or LocalEngine(1)
    fn = ShardCounting(
        tokenizer=tokenizer,
        seq_len=seq_len,
        fractions=fractions,
        embedder=emb,
        skip_bad_rows=skip_bad_rows,
        seed=seed,
    )
    tasks = shard_tasks(corpus, max_tokens_per_domain, vne_max_documents_per_domain if emb else None)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    key = _pass_key(
        corpus,
        tokenizer,
        tasks,
        seq_len=seq_len,
        fractions=fractions,
        embedder=emb,
        skip=skip_bad_rows,
        seed=seed,
    )
    resumed, stacks = _resume(checkpoint, key, len(tasks))
    saved, interval = time.monotonic(), checkpoint_every_s
    for done, result in enumerate(engine.imap(fn, tasks[resumed:], "entropy pass"), start=resumed + 1):
        stacks = _merge(stacks, result)
        if checkpoint is not None and done < len(tasks) and time.monotonic() - saved >= interval:
            start = time.monotonic()
            with atomic_path(checkpoint) as tmp:
                tmp.write_bytes(pickle.dumps({"key": key, "done": done, "stacks": stacks}, protocol=5))
            saved = time.monotonic()
            # the counts grow with the corpus: keep checkpointing under ~5% of the pass
            interval = max(checkpoint_every_s, 20 * (saved - start))
    merged = {domain: stack.result() for domain, stack in stacks.items()}
    domains = {}
    for domain in corpus.domains:
        if domain not in merged or merged[domain].tokens == 0:
            raise BadInput(f"{corpus.root}/{domain}: no tokens to count (every row empty or skipped)")
        domains[domain] = domain_entropies(
            merged[domain], tokenizer.vocab_size, measures, fractions, miller_madow
        )
    settings = {
        "corpus": corpus.root,
        "tokenizer": tokenizer.spec,
        "vocab_size": tokenizer.vocab_size,
        "seq_len": seq_len,
        "max_tokens_per_domain": max_tokens_per_domain,
        "miller_madow": miller_madow,
        "embedder": getattr(emb, "name", type(emb).__name__) if emb is not None else None,
        "vne_max_documents_per_domain": vne_max_documents_per_domain if emb is not None else None,
        "seed": seed,
        "units": "nats",
        "convergence_order": "windows in a fixed hash-shuffled order (nested samples)",
    }
    return EntropyProfile(domains, measures, settings)


__all__ = [
    "MEASURES",
    "Embedder",
    "CountsStack",
    "EntropyCounts",
    "EntropyProfile",
    "count_shard",
    "domain_entropies",
    "ShardCounting",
    "ShardTask",
    "profile_corpus",
    "shard_tasks",
    "split_budget",
    "window_uniforms",
]
