"""Packed token streams for proxy training, and the batch sampler that draws from them by mixture.

`prepare_streams` tokenizes every domain once (per shard, on the engine) into one packed stream of ids
(documents separated by EOS) and splits it by documents into a training stream and a fixed-size validation
stream, both raw numpy files (`<domain>.train.bin`, `<domain>.val.bin`, dtype uint16 or uint32 by vocabulary
size) in `cache_dir("streams", KEY)`. KEY hashes the corpus fingerprint, the tokenizer (spec and content)
and the split settings, so a second sweep on the same corpus reuses the files. The directory is written
through `atomic_dir`: an interrupted preparation leaves nothing behind.

`MixtureSampler` draws batches of `seq_len + 1`-token windows: the domain of each sequence is drawn from the
mixture's proportions (seeded), windows of a domain are visited without replacement in a seeded permutation
per epoch, and the epochs consumed per domain are tracked.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.corpus import Corpus, Shard, Tokenizer, cache_dir, read_shard
from mixlab.engine import Engine, LocalEngine
from mixlab.errors import BadInput
from mixlab.files import atomic_dir, fingerprint
from mixlab.progress import status, warn
from mixlab.proxy.config import check_stream_options

STREAMS_VERSION = 1
_COPY_CHUNK = 1 << 24  # tokens copied at a time when splitting (bounded memory)


@dataclass(frozen=True)
class Streams:
    """Prepared token streams of every domain (memory-mapped on access).

    `train(d)` / `val(d)` are 1-D read-only arrays of token ids; the validation stream of every domain has
    exactly `val_tokens` tokens, taken from whole held-out documents (the last one possibly cut).
    """

    path: Path
    domains: list[str]
    vocab_size: int
    eos_id: int | None
    dtype: str
    val_tokens: int
    info: dict[str, dict[str, int]] = field(compare=False)

    def train(self, domain: str) -> np.ndarray:
        return np.memmap(self.path / f"{domain}.train.bin", dtype=self.dtype, mode="r")

    def val(self, domain: str) -> np.ndarray:
        return np.memmap(self.path / f"{domain}.val.bin", dtype=self.dtype, mode="r")

    def train_tokens(self, domain: str) -> int:
        return self.info[domain]["train_tokens"]

    @classmethod
    def load(cls, path: Path) -> Streams:
        meta = json.loads((path / "streams.json").read_text(encoding="utf-8"))
        return cls(
            path=path,
            domains=meta["domains"],
            vocab_size=meta["vocab_size"],
            eos_id=meta["eos_id"],
            dtype=meta["dtype"],
            val_tokens=meta["val_tokens"],
            info=meta["info"],
        )


def _tokenize_shard(
    shard: Shard, tokenizer: Tokenizer, limit: int | None, skip_bad_rows: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(ids [n_tokens], document lengths [n_docs]) of one shard, EOS after each document.

    With `limit`, reading stops once `limit` tokens are collected (the stream is not cut here).
    """
    parts: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    total = 0
    for batch in read_shard(shard, batch_size=256, skip_bad_rows=skip_bad_rows):
        ids, offsets = tokenizer.encode_flat(batch.texts)
        parts.append(ids)
        lengths.append(np.diff(offsets))
        total += len(ids)
        if limit is not None and total >= limit:
            break
    if not parts:
        return np.zeros(0, dtype=tokenizer.token_dtype), np.zeros(0, dtype=np.int64)
    return np.concatenate(parts), np.concatenate(lengths)


def streams_key(
    corpus: Corpus, tokenizer: Tokenizer, val_tokens: int, max_tokens_per_domain: int | None, split_seed: int
) -> str:
    """The cache key of a preparation: corpus fingerprint, tokenizer spec and content, split settings."""
    settings = {
        "version": STREAMS_VERSION,
        "corpus": corpus.fingerprint(),
        "domains": corpus.domains,
        "tokenizer": tokenizer.spec,
        "tokenizer_hash": tokenizer.fingerprint(),
        "val_tokens": val_tokens,
        "max_tokens_per_domain": max_tokens_per_domain,
        "split_seed": split_seed,
    }
    return fingerprint(settings)


def _split_domain(
    domain: str,
    all_path: Path,
    doc_lengths: np.ndarray,
    dtype: np.dtype,
    out: Path,
    val_tokens: int,
    rng: np.random.Generator,
) -> dict[str, int]:
    """Hold out whole documents (seeded choice) for exactly `val_tokens` validation tokens; rest is train."""
    n_docs = len(doc_lengths)
    total = int(doc_lengths.sum())
    if n_docs < 2:
        raise BadInput(
            f"domain '{domain}': {n_docs} document(s); holding out validation documents needs >= 2"
        )
    if total < 2 * val_tokens:
        raise BadInput(
            f"domain '{domain}': {total} tokens, fewer than twice the validation size "
            f"({val_tokens}); lower `val_tokens` or raise `max_tokens_per_domain`"
        )
    order = rng.permutation(n_docs)
    taken = np.cumsum(doc_lengths[order])
    n_val = int(np.searchsorted(taken, val_tokens) + 1)
    val_docs = np.sort(order[:n_val])
    if n_val >= n_docs:
        raise BadInput(
            f"domain '{domain}': the validation split ({val_tokens} tokens) needs every document; "
            "lower `val_tokens`"
        )
    starts = np.concatenate([[0], np.cumsum(doc_lengths)[:-1]])
    tokens = np.memmap(all_path, dtype=dtype, mode="r")
    val = np.concatenate([tokens[starts[d] : starts[d] + doc_lengths[d]] for d in val_docs])[:val_tokens]
    val.astype(dtype).tofile(out / f"{domain}.val.bin")
    is_val = np.zeros(n_docs, dtype=bool)
    is_val[val_docs] = True
    train_tokens = 0
    with open(out / f"{domain}.train.bin", "wb") as fh:
        # contiguous runs of training documents, copied chunk by chunk
        edges = np.flatnonzero(np.diff(np.concatenate([[1], is_val.astype(np.int8), [1]])))
        for first, stop in zip(edges[::2], edges[1::2], strict=True):
            lo, hi = int(starts[first]), int(starts[stop - 1] + doc_lengths[stop - 1])
            for chunk_lo in range(lo, hi, _COPY_CHUNK):
                chunk = tokens[chunk_lo : min(hi, chunk_lo + _COPY_CHUNK)]
                fh.write(np.ascontiguousarray(chunk).tobytes())
                train_tokens += len(chunk)
    del tokens
    return {
        "documents": int(n_docs),
        "val_documents": int(n_val),
        "train_documents": int(n_docs - n_val),
        "train_tokens": int(train_tokens),
        "val_tokens": int(val_tokens),
    }


def prepare_streams(
    corpus: Corpus,
    tokenizer: Tokenizer,
    *,
    val_tokens: int = 8192,
    max_tokens_per_domain: int | None = None,
    engine: Engine | None = None,
    split_seed: int = 0,
    skip_bad_rows: bool = False,
) -> Streams:
    """Tokenize each domain once into packed train/validation streams on disk, or reuse the cached ones.

    val_tokens: validation tokens per domain (the same held-out documents for every run).
    max_tokens_per_domain: read at most this many tokens of each domain (train + validation), from the
        start of its shards in corpus order; None reads everything.
    split_seed: seed of the choice of validation documents (part of the cache key).
    Returns a `Streams` handle; files live in `cache_dir("streams", key)`.
    """
    check_stream_options(val_tokens, max_tokens_per_domain)
    key = streams_key(corpus, tokenizer, val_tokens, max_tokens_per_domain, split_seed)
    # streams read past bad rows are not those of the corpus: a later run without skipping must not reuse them
    path = cache_dir("streams") / (key + ("-skipped-bad-rows" if skip_bad_rows else ""))
    if (path / "streams.json").is_file():
        return Streams.load(path)
    engine = engine or LocalEngine(1)
    dtype = tokenizer.token_dtype
    shards = corpus.shards()
    fn = functools.partial(
        _tokenize_shard, tokenizer=tokenizer, limit=max_tokens_per_domain, skip_bad_rows=skip_bad_rows
    )
    rng = np.random.default_rng(split_seed)
    with atomic_dir(path) as tmp:
        files = {d: open(tmp / f"{d}.all.bin", "wb") for d in corpus.domains}  # noqa: SIM115
        lengths: dict[str, list[np.ndarray]] = {d: [] for d in corpus.domains}
        written = dict.fromkeys(corpus.domains, 0)
        try:
            for shard, (ids, doc_lengths) in zip(
                shards, engine.imap(fn, shards, "tokenizing domains"), strict=True
            ):
                d = shard.domain
                if max_tokens_per_domain is not None:
                    room = max_tokens_per_domain - written[d]
                    if room <= 0:
                        continue
                    if len(ids) > room:
                        ends = np.cumsum(doc_lengths)
                        keep = int(np.searchsorted(ends, room) + 1)
                        doc_lengths = doc_lengths[:keep].copy()
                        doc_lengths[-1] -= int(ends[keep - 1] - room)
                        ids = ids[:room]
                files[d].write(np.ascontiguousarray(ids, dtype=dtype).tobytes())
                lengths[d].append(doc_lengths)
                written[d] += len(ids)
        finally:
            for fh in files.values():
                fh.close()
        info = {}
        with status("splitting validation documents"):
            for d in corpus.domains:
                doc_lengths = np.concatenate(lengths[d]) if lengths[d] else np.zeros(0, np.int64)
                info[d] = _split_domain(d, tmp / f"{d}.all.bin", doc_lengths, dtype, tmp, val_tokens, rng)
                (tmp / f"{d}.all.bin").unlink()
        meta = {
            "version": STREAMS_VERSION,
            "domains": corpus.domains,
            "corpus": corpus.root,
            "tokenizer": tokenizer.spec,
            "vocab_size": tokenizer.vocab_size,
            "eos_id": tokenizer.eos_id,
            "dtype": dtype.name,
            "val_tokens": val_tokens,
            "max_tokens_per_domain": max_tokens_per_domain,
            "split_seed": split_seed,
            "info": info,
        }
        (tmp / "streams.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return Streams.load(path)


class MixtureSampler:
    """Batches of training windows drawn from domains in a mixture's proportions.

    weights: proportions over `streams.domains`, shape [n_domains], summing to 1.
    Each batch: the domain of each of `batch_size` sequences ~ Categorical(weights) (a seeded numpy
    Generator); within a domain, non-overlapping windows of `seq_len + 1` tokens are visited in a seeded
    permutation per epoch, so a domain repeats only after all its windows were used. `epochs` reports the
    fraction of each domain's training stream consumed so far (1.0 = one full pass).
    """

    def __init__(
        self, streams: Streams, weights: np.ndarray, seq_len: int, batch_size: int, seed: int = 0
    ) -> None:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (len(streams.domains),):
            raise ValueError(f"weights has shape {weights.shape}, expected ({len(streams.domains)},)")
        self.streams = streams
        self.weights = weights / weights.sum()
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.tokens = [streams.train(d) for d in streams.domains]
        self.n_windows = np.array([(len(t) - 1) // seq_len for t in self.tokens], dtype=np.int64)
        for d, n, w in zip(streams.domains, self.n_windows, self.weights, strict=True):
            if w > 0 and n < 1:
                raise BadInput(
                    f"domain '{d}': {streams.train_tokens(d)} training tokens, fewer than one "
                    f"sequence of {seq_len + 1}; lower `seq_len` or drop the domain from the mixture"
                )
        self.epoch = np.zeros(len(self.tokens), dtype=np.int64)
        self.cursor = np.zeros(len(self.tokens), dtype=np.int64)
        self._perm: dict[int, np.ndarray] = {}
        self._offsets = np.arange(seq_len + 1, dtype=np.int64)

    def _permutation(self, k: int) -> np.ndarray:
        perm = self._perm.get(k)
        if perm is None or perm[0] != self.epoch[k]:
            order = np.random.default_rng([self.seed, k, int(self.epoch[k])]).permutation(self.n_windows[k])
            perm = np.concatenate([[self.epoch[k]], order])
            self._perm[k] = perm
        return perm[1:]

    def _windows(self, k: int, n: int) -> np.ndarray:
        """Start offsets of the next `n` windows of domain k, advancing (and wrapping) its epoch."""
        out = np.empty(n, dtype=np.int64)
        filled = 0
        while filled < n:
            perm = self._permutation(k)
            take = min(n - filled, self.n_windows[k] - self.cursor[k])
            out[filled : filled + take] = perm[self.cursor[k] : self.cursor[k] + take]
            self.cursor[k] += take
            filled += take
            if self.cursor[k] == self.n_windows[k]:
                self.epoch[k] += 1
                self.cursor[k] = 0
                if self.epoch[k] == 1:
                    warn(
                        f"domain '{self.streams.domains[k]}' repeats: all its "
                        f"{self.streams.train_tokens(self.streams.domains[k]):,} training tokens were used"
                    )
        return out * self.seq_len

    def draw_domains(self, n: int) -> np.ndarray:
        """Domain index of each of `n` sequences, shape [n] (advances the generator)."""
        return self.rng.choice(len(self.weights), size=n, p=self.weights)

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(windows int64 [batch_size, seq_len + 1], domain index per row [batch_size])."""
        domains = self.draw_domains(self.batch_size)
        batch = np.empty((self.batch_size, self.seq_len + 1), dtype=np.int64)
        for k in np.unique(domains):
            rows = np.flatnonzero(domains == k)
            starts = self._windows(int(k), len(rows))
            batch[rows] = self.tokens[k][starts[:, None] + self._offsets]
        return batch, domains

    @property
    def epochs(self) -> dict[str, float]:
        """Epochs consumed per domain (0 for domains never drawn)."""
        frac = self.epoch + self.cursor / np.maximum(self.n_windows, 1)
        return {d: float(e) for d, e in zip(self.streams.domains, frac, strict=True)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "epoch": self.epoch.tolist(),
            "cursor": self.cursor.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.epoch = np.array(state["epoch"], dtype=np.int64)
        self.cursor = np.array(state["cursor"], dtype=np.int64)
        self._perm.clear()


def validation_windows(streams: Streams, domain: str, seq_len: int) -> np.ndarray:
    """The validation stream of a domain cut into windows, int64 [n_windows, seq_len + 1].

    Consecutive windows overlap by one token so every validation token but the first is predicted once.
    """
    val = np.asarray(streams.val(domain), dtype=np.int64)
    n = (len(val) - 1) // seq_len
    if n < 1:
        raise BadInput(
            f"domain '{domain}': {len(val)} validation tokens, fewer than seq_len + 1 = {seq_len + 1}"
        )
    starts = np.arange(n, dtype=np.int64) * seq_len
    return val[starts[:, None] + np.arange(seq_len + 1)]


@dataclass(frozen=True)
class EvalSet:
    """The validation windows of several domains stacked into one array, so evaluation batches across
    domains.

    windows: int64 [n_windows, seq_len + 1] (domain after domain, in `domains` order); domain_index: int64
    [n_windows], each row's position in `domains`; targets: int64 [len(domains)], predicted tokens per domain.
    """

    domains: tuple[str, ...]
    windows: np.ndarray
    domain_index: np.ndarray
    targets: np.ndarray

    def subset(self, tokens_per_domain: int) -> EvalSet:
        """Evenly spaced windows of each domain predicting at least `tokens_per_domain` tokens (all of a
        domain's windows when it has fewer): the same rows for every run and every call."""
        seq_len = self.windows.shape[1] - 1
        rows = []
        for k in range(len(self.domains)):
            own = np.flatnonzero(self.domain_index == k)
            want = min(len(own), -(-tokens_per_domain // seq_len))
            rows.append(own[np.unique(np.round(np.linspace(0, len(own) - 1, want)).astype(np.int64))])
        picked = np.concatenate(rows)
        return EvalSet(
            self.domains,
            self.windows[picked],
            self.domain_index[picked],
            np.array([len(r) * seq_len for r in rows]),
        )


@functools.lru_cache(maxsize=8)
def _eval_set(path: Path, domains: tuple[str, ...], seq_len: int) -> EvalSet:
    streams = Streams.load(path)
    parts = [validation_windows(streams, d, seq_len) for d in domains]
    windows = np.concatenate(parts)
    index = np.repeat(np.arange(len(domains)), [len(p) for p in parts])
    return EvalSet(domains, windows, index, np.array([p[:, 1:].size for p in parts]))


def eval_set(streams: Streams, domains: list[str] | tuple[str, ...], seq_len: int) -> EvalSet:
    """The stacked validation windows of `domains`, made once per stream set and sequence length (cached:
    every run of a sweep evaluates on the same windows)."""
    return _eval_set(streams.path, tuple(domains), seq_len)
